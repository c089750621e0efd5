# Integration tests against a real systemd booted in systemd-nspawn.
# Included by the top-level Makefile. Needs root; installs debootstrap and
# systemd-container with apt when missing. See integration/README.md.

IT_TIMEOUT ?= 30m
# IT_RUN selects scenarios by test name (go test -run), e.g.
# `make integration IT_RUN=TestReloadUnderLoad`.
IT_RUN ?= .
# nspawn first, so that the scenario table is the last thing printed.
IT_PKGS := ./integration/nspawn/ ./integration/
IT_WORKDIR := /var/tmp/handoff-it

.PHONY: integration
integration: ## Run the systemd scenarios in nspawn containers and print the table (root, ~3 min with a cached image)
	@start=$$(date +%s); \
	$(GO) test -tags integration -count=1 -p 1 -timeout $(IT_TIMEOUT) -run '$(IT_RUN)' -v $(IT_PKGS); rc=$$?; \
	echo "integration: $$(( $$(date +%s) - start ))s"; exit $$rc

.PHONY: integration-units
integration-units: ## Verify and security-score the units inside a Debian 12 container (root)
	$(GO) test -tags integration -count=1 -timeout 10m -run '^TestUnits$$' -v ./integration/

.PHONY: integration-image
integration-image: ## Build (or find) the cached Debian 12 root the integration tests boot
	./integration/rootfs.sh bookworm

.PHONY: integration-clean
integration-clean: ## Kill leftover integration containers (from a killed run) and remove their trees
	@for d in $(IT_WORKDIR)/m-*; do \
		[ -d "$$d" ] || continue; \
		l=$$(sed -n 's/.*leader=\([0-9][0-9]*\).*/\1/p' "$$d/owner" 2>/dev/null); \
		if [ -n "$$l" ] && [ "$$l" != 0 ] && [ "$$(cat /proc/$$l/comm 2>/dev/null)" = systemd ]; then kill -9 "$$l"; fi; \
		umount -l "$$d/root" 2>/dev/null; rm -rf "$$d"; echo "removed $$d"; \
	done; true
