# make dashboard-test: the admin dashboard in a real headless Chromium
# (integration/dashboard, build tag browser). Part of make test. The
# screenshot goes to DASHBOARD_SCREENSHOT; docs/dashboard.png is one of them.

DASHBOARD_SCREENSHOT ?= $(CURDIR)/$(BIN)/dashboard.png

.PHONY: dashboard-test
dashboard-test: ## Open the admin dashboard in headless Chromium and check the page, its console and resources (installs chromium if missing)
	@command -v chromium >/dev/null || { echo "installing: chromium"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@mkdir -p $(dir $(DASHBOARD_SCREENSHOT))
	DASHBOARD_SCREENSHOT=$(DASHBOARD_SCREENSHOT) $(GO) test -tags browser -count=1 -v -run TestDashboardInBrowser ./integration/dashboard/

test: dashboard-test
