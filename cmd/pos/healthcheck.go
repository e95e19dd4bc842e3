package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// newHealthcheckCmd is `pos healthcheck`: it probes a pos process and
// exits 0 when it answers 2xx, 1 otherwise. Container images built from
// deploy/Dockerfile have no shell and no curl, so the binary probes
// itself (Docker HEALTHCHECK, compose healthcheck).
func newHealthcheckCmd(g *globals) *cobra.Command {
	var (
		target  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Probe a pos process's readiness: exit 0 on a 2xx answer, 1 otherwise",
		Long: `Probe a pos process's readiness endpoint and exit 0 when it answers 2xx,
1 otherwise (an error status, a refused connection, a timeout).
Without --url it probes /health/ready on this host at POS_ADDR's port.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if target == "" {
				target = defaultHealthURL(g.getenv("POS_ADDR"))
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			status, err := probe(ctx, target, timeout)
			if err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			_, err = fmt.Fprintf(g.stdout, "%s: %s\n", target, status)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&target, "url", "", "URL to probe (default http://127.0.0.1:<POS_ADDR port>/health/ready)")
	f.DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return cmd
}

// probe GETs url once and returns its status line when it is 2xx.
func probe(ctx context.Context, url string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	// A fresh transport: no keep-alive to reuse in a one-shot process,
	// and no proxy from the environment between a container and itself.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp.Status, nil
}

// defaultHealthURL is the readiness URL of a process listening on addr
// (POS_ADDR, default :8080), reached over loopback: the probe runs in the
// same container, and a wildcard listen address is not a destination.
func defaultHealthURL(addr string) string {
	if addr == "" {
		addr = ":8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = "", "8080"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/health/ready"
}
