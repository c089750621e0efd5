# handoff — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN := bin
# Packages the unit tests cover (integration tests carry a build tag).
PKGS := ./...
FUZZTIME ?= 10s

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets with one line each
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN{FS=":.*## "}{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## Install the Debian packages the unit tests need (systemd-socket-activate, curl, redis-server), if missing
	@need=""; \
	command -v systemd-socket-activate >/dev/null || need="$$need systemd"; \
	command -v curl >/dev/null || need="$$need curl"; \
	command -v redis-server >/dev/null || need="$$need redis-server"; \
	command -v htpasswd >/dev/null || need="$$need apache2-utils"; \
	if [ -n "$$need" ]; then \
		echo "installing:$$need"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	fi

.PHONY: build
build: ## Build bin/handoff and bin/demo-backend
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/handoff ./cmd/handoff
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/demo-backend ./cmd/demo-backend

.PHONY: run
run: build ## Run two demo backends and handoff in quick mode on 127.0.0.1:8080 (no Redis, no systemd)
	@set -m; \
	$(BIN)/demo-backend -listen 127.0.0.1:9001 -name backend-1 & b1=$$!; \
	$(BIN)/demo-backend -listen 127.0.0.1:9002 -name backend-2 & b2=$$!; \
	echo "handoff on http://127.0.0.1:8080 -> 127.0.0.1:9001, 127.0.0.1:9002; admin on http://127.0.0.1:9901 (Ctrl-C stops)"; \
	$(BIN)/handoff -l 127.0.0.1:8080 -b 127.0.0.1:9001 -b 127.0.0.1:9002 -s round_robin --log-format text & h=$$!; \
	trap 'kill $$h $$b1 $$b2 2>/dev/null; wait' EXIT; trap 'exit 0' INT TERM; \
	wait $$h

.PHONY: test
test: unit integration ## The whole test suite: unit tests, then the real-systemd scenarios (root)

.PHONY: unit
unit: deps ## Run vet, the unit tests with the race detector, and the allocation tests without it (no root needed)
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	@# The race detector allocates, so the zero-allocation tests skip under
	@# -race: run them once more without it so that they run in CI.
	$(GO) test -count=1 -run 'Alloc' $(PKGS)

.PHONY: lint
lint: ## go vet, plus staticcheck when installed
	$(GO) vet $(PKGS)
	@if command -v staticcheck >/dev/null; then staticcheck -tags integration $(PKGS); else echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@v0.6.1"; fi

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME (default 10s) each
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

.PHONY: clean
clean: ## Remove build output
	rm -rf $(BIN)

-include bench/bench.mk
-include integration/integration.mk
-include packaging/packaging.mk
-include pkg/cache/conformance/conformance.mk
-include integration/dashboard/dashboard.mk
