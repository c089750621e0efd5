# make conformance: the public HTTP caching suite against handoff, nginx,
# Varnish and HAProxy (pkg/cache/conformance/run.sh).

.PHONY: conformance
conformance: ## Run http-cache-tests 0.4.5 against handoff's cache and nginx/Varnish/HAProxy; fail on regression against the baseline
	@bash pkg/cache/conformance/run.sh
