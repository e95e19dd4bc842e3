// Package deploy holds the fleet's deployment files — the image
// (Dockerfile), compose.yaml, Kong's generated kong.yml, Prometheus's
// scrape configuration and alerts, Grafana's provisioning and
// dashboards — and, in its tests, the checks that keep them consistent
// with each other and with the code without a Docker engine: `go test
// ./deploy/` (promtool is used when it is installed).
package deploy
