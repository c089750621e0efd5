# make conformance: the public HTTP caching suite against handoff, nginx,
# Varnish and HAProxy (pkg/cache/conformance/run.sh). Part of make test, so
# a regression against baseline.json fails CI.

.PHONY: conformance-deps
conformance-deps: ## Install node/npm and the peers the cache conformance run compares (nginx, varnish, haproxy), if missing
	@need=""; \
	command -v node >/dev/null || need="$$need nodejs"; \
	command -v npm >/dev/null || need="$$need npm"; \
	command -v nginx >/dev/null || need="$$need nginx"; \
	command -v varnishd >/dev/null || need="$$need varnish"; \
	command -v haproxy >/dev/null || need="$$need haproxy"; \
	if [ -n "$$need" ]; then \
		echo "installing:$$need"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	fi

.PHONY: conformance
conformance: conformance-deps ## Run http-cache-tests 0.4.5 against handoff's cache and nginx/Varnish/HAProxy; fail on regression against the baseline
	@bash pkg/cache/conformance/run.sh

test: conformance
