# The two commands a fresh machine with Go needs: `make run` and `make test`.
GO      ?= go
BIN     := bin/pos
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

# Fuzz targets run a few seconds each as regression tests: package:target.
FUZZ_TARGETS := ./internal/product:FuzzCreateProduct ./internal/inventory:FuzzReservationInput
FUZZ_TIME    ?= 5s

.PHONY: build run seed test vet fuzz bench deploy-check clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pos

# Demo data on the embedded default, then every context on :8080.
run: build
	./$(BIN) seed
	./$(BIN) serve --all

test: vet
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz
	$(MAKE) deploy-check

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l cmd internal deploy); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$name ($(FUZZ_TIME))"; \
	  $(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZ_TIME) $$pkg || exit 1; \
	done

# Deployment checks without Docker: kong.yml against the route table,
# compose/Kong/Prometheus/Grafana consistency, dashboards, and promtool
# (config, rules, rule tests) when installed. make test runs them too.
deploy-check:
	$(GO) test -count=1 -run 'Kong|RouteTable' ./cmd/pos/
	$(GO) test -count=1 ./internal/platform/gateway/... ./deploy/

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

clean:
	rm -rf bin data
