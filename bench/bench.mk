# bench.mk — benchmark and soak targets, included by the top-level Makefile
# (`include bench/bench.mk`). Every target installs what it needs first
# (bench/install.sh is a no-op when everything is there).
#
#   make bench                      full matrix (BENCH_DURATION=10s BENCH_REPEAT=3, ~35 min)
#   make bench-smoke                every scenario once for 2s (~3 min)
#   make bench-micro                go test -bench over ./pkg/... into bench/results/micro.txt
#   make soak DURATION=10m          mixed-load soak of handoff, RSS/goroutines/fds verdict
#   make bench-profile              pprof CPU + allocation profiles of handoff's worst scenario
#   make bench-workers              3 handoff workers: one shared socket vs SO_REUSEPORT sockets
#
# BENCH_PEERS and BENCH_SCENARIOS (comma lists) narrow the matrix;
# BENCH_FLAGS passes anything else to benchrun (see `bin/benchrun -h`).

BENCH_DURATION ?= 10s
BENCH_REPEAT ?= 3
BENCH_WARMUP ?= 1s
# nice(1) adjustment of everything the benchmark starts; 0 leaves it alone.
BENCH_NICE ?= 0
BENCH_PEERS ?=
BENCH_SCENARIOS ?=
BENCH_FLAGS ?=
DURATION ?= 10m
BENCH_GO ?= go
BENCH_BIN := bin
BENCH_RESULTS := bench/results
BENCH_MICRO_COUNT ?= 6

.PHONY: bench bench-smoke bench-micro bench-profile bench-workers soak bench-deps bench-tools

bench-deps:
	@sh bench/install.sh

# The proxy under test (built like `make build` builds it: LDFLAGS comes
# from the top-level Makefile), the shared backend, the harness, the soak and
# the profiling build of handoff's server.
bench-tools:
	CGO_ENABLED=0 $(BENCH_GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BENCH_BIN)/handoff ./cmd/handoff
	$(BENCH_GO) build -o $(BENCH_BIN)/bench-backend ./bench/cmd/backend
	$(BENCH_GO) build -o $(BENCH_BIN)/benchrun ./bench/cmd/benchrun
	$(BENCH_GO) build -o $(BENCH_BIN)/bench-soak ./bench/cmd/soak
	$(BENCH_GO) build -o $(BENCH_BIN)/handoff-profile ./bench/cmd/handoff-profile
	$(BENCH_GO) build -o $(BENCH_BIN)/bench-workers ./bench/cmd/workers

bench: bench-deps bench-tools ## Benchmark handoff against direct, HAProxy, nginx, Caddy, Varnish (BENCH_DURATION, BENCH_REPEAT)
	BENCH_DURATION=$(BENCH_DURATION) BENCH_REPEAT=$(BENCH_REPEAT) BENCH_WARMUP=$(BENCH_WARMUP) BENCH_NICE=$(BENCH_NICE) \
		$(BENCH_BIN)/benchrun run -handoff $(BENCH_BIN)/handoff -backend $(BENCH_BIN)/bench-backend \
		$(if $(BENCH_PEERS),-peers $(BENCH_PEERS)) $(if $(BENCH_SCENARIOS),-scenarios $(BENCH_SCENARIOS)) \
		-out $(BENCH_RESULTS)/run-$$(date +%Y%m%d-%H%M%S) $(BENCH_FLAGS)

bench-smoke: bench-deps bench-tools ## Quick end-to-end check of the benchmark harness: every scenario once, 2s each
	BENCH_DURATION=2s BENCH_REPEAT=1 BENCH_WARMUP=1s BENCH_NICE=$(BENCH_NICE) \
		$(BENCH_BIN)/benchrun run -handoff $(BENCH_BIN)/handoff -backend $(BENCH_BIN)/bench-backend \
		$(if $(BENCH_PEERS),-peers $(BENCH_PEERS)) $(if $(BENCH_SCENARIOS),-scenarios $(BENCH_SCENARIOS)) \
		-out $(BENCH_RESULTS)/smoke-$$(date +%Y%m%d-%H%M%S) $(BENCH_FLAGS)

bench-micro: bench-deps ## Go microbenchmarks of the hot paths into bench/results/micro.txt (compare runs with benchstat)
	@mkdir -p $(BENCH_RESULTS)
	@if [ -f $(BENCH_RESULTS)/micro.txt ]; then mv $(BENCH_RESULTS)/micro.txt $(BENCH_RESULTS)/micro.old.txt; fi
	$(BENCH_GO) test -run '^$$' -bench . -benchmem -count $(BENCH_MICRO_COUNT) ./pkg/... > $(BENCH_RESULTS)/micro.txt; \
		status=$$?; cat $(BENCH_RESULTS)/micro.txt; exit $$status
	@if [ -f $(BENCH_RESULTS)/micro.old.txt ]; then \
		PATH="$$PATH:$$($(BENCH_GO) env GOPATH)/bin" benchstat $(BENCH_RESULTS)/micro.old.txt $(BENCH_RESULTS)/micro.txt || true; \
	fi

# The newest full run decides the scenario (where handoff is furthest behind
# HAProxy); BENCH_PROFILE_SCENARIO overrides it.
BENCH_PROFILE_SCENARIO ?=
bench-profile: bench-deps bench-tools ## pprof CPU and allocation profiles of handoff in its worst scenario of the newest run
	latest=$$(ls -d $(BENCH_RESULTS)/run-*/results.json $(BENCH_RESULTS)/reference/results.json 2>/dev/null | sort | tail -n 1); \
	$(BENCH_BIN)/benchrun profile -profiler $(BENCH_BIN)/handoff-profile -backend $(BENCH_BIN)/bench-backend \
		$(if $(BENCH_PROFILE_SCENARIO),-scenario $(BENCH_PROFILE_SCENARIO),$$([ -n "$$latest" ] && echo "-from $$latest"))

soak: bench-deps bench-tools ## Soak handoff under mixed load for DURATION (default 10m); fails on leaks or failed requests
	DURATION=$(DURATION) $(BENCH_BIN)/bench-soak -handoff $(BENCH_BIN)/handoff -backend $(BENCH_BIN)/bench-backend \
		-out $(BENCH_RESULTS)/soak-$$(date +%Y%m%d-%H%M%S)

bench-workers: bench-deps bench-tools ## 3 handoff workers sharing one socket vs one SO_REUSEPORT socket each: rate, p99, CPU spread
	BENCH_DURATION=$(BENCH_DURATION) BENCH_REPEAT=$(BENCH_REPEAT) BENCH_WARMUP=$(BENCH_WARMUP) BENCH_NICE=$(BENCH_NICE) \
		$(BENCH_BIN)/bench-workers -handoff $(BENCH_BIN)/handoff -backend $(BENCH_BIN)/bench-backend \
		-out $(BENCH_RESULTS)/workers-$$(date +%Y%m%d-%H%M%S)
