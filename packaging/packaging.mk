# Packages: .deb and .rpm (nfpm), OCI image (podman), and the checks of
# those plus the quadlet and Nix files. Included by the top-level Makefile.
# README.md "Install" says how users install them.

NFPM_VERSION := v2.45.2
NFPM ?= $(shell command -v nfpm 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/nfpm)
DIST := dist
STAGE := $(DIST)/stage
# Debian and rpm versions must start with a digit; `git describe` gives a
# hash until the project has tags.
PKG_VERSION ?= 0.1.0
PKG_RELEASE ?= 1
PKG_ARCH ?= $(shell $(GO) env GOARCH)
PKG_STAGE = $(STAGE)
export PKG_VERSION PKG_RELEASE PKG_ARCH PKG_STAGE

.PHONY: packages
packages: ## Build the .deb and .rpm into dist/ with nfpm (PKG_VERSION, PKG_RELEASE)
	@command -v $(NFPM) >/dev/null || { echo "installing nfpm $(NFPM_VERSION)"; $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION); }
	@mkdir -p $(STAGE)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w -X main.version=$(PKG_VERSION)-$(PKG_RELEASE)' -o $(STAGE)/handoff ./cmd/handoff
	gzip -9n < packaging/handoff.1 > $(STAGE)/handoff.1.gz
	$(NFPM) package --config packaging/nfpm.yaml --packager deb --target $(DIST)/
	$(NFPM) package --config packaging/nfpm.yaml --packager rpm --target $(DIST)/
	@ls -l $(DIST)/*.deb $(DIST)/*.rpm

# Podman with a private store (no Docker engine, nothing in the host's
# container storage): runc because crun refuses this machine's cgroup
# mode, vfs storage, host or no networking only (bridge networking edits
# the host firewall). See ../shared/NOTES.md.
IMAGE ?= localhost/handoff
IMAGE_TAG ?= $(PKG_VERSION)
PODMAN_STATE ?= /var/tmp/handoff-podman
PODMAN = CONTAINERS_CONF=$(CURDIR)/container/containers.conf podman --root $(PODMAN_STATE)/root --runroot $(PODMAN_STATE)/run --storage-driver vfs --cgroup-manager cgroupfs --events-backend file
IMAGE_CTX := $(DIST)/image

.PHONY: image
image: ## Build the OCI image with podman (private store) and save dist/handoff-VERSION.oci.tar
	@command -v podman >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc >/dev/null; }
	@mkdir -p $(IMAGE_CTX) $(PODMAN_STATE)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w -X main.version=$(PKG_VERSION)-$(PKG_RELEASE)' -o $(IMAGE_CTX)/handoff ./cmd/handoff
	cp /etc/ssl/certs/ca-certificates.crt container/handoff.yaml $(IMAGE_CTX)/
	printf 'root:x:0:0:root:/root:/sbin/nologin\nhandoff:x:65532:65532:handoff:/var/lib/handoff:/sbin/nologin\n' > $(IMAGE_CTX)/passwd
	printf 'root:x:0:\nhandoff:x:65532:\n' > $(IMAGE_CTX)/group
	$(PODMAN) build --network none --pull=never -f container/Containerfile -t $(IMAGE):$(IMAGE_TAG) -t $(IMAGE):latest $(IMAGE_CTX)
	rm -f $(DIST)/handoff-$(IMAGE_TAG).oci.tar
	$(PODMAN) save --format oci-archive -o $(DIST)/handoff-$(IMAGE_TAG).oci.tar $(IMAGE):$(IMAGE_TAG)
	@echo "image $(IMAGE):$(IMAGE_TAG): $$($(PODMAN) image inspect --format '{{.Size}}' $(IMAGE):$(IMAGE_TAG)) B; $$(stat -c %s $(DIST)/handoff-$(IMAGE_TAG).oci.tar) B $(DIST)/handoff-$(IMAGE_TAG).oci.tar"

# Nix (Debian's nix-bin 2.8). nixpkgs cannot be fetched here, so the
# checks evaluate against nix/stub-nixpkgs and a private store: nothing is
# created under /nix.
NIX_STORE ?= /var/tmp/handoff-nix
NIX_FLAGS := --extra-experimental-features 'nix-command flakes' --store 'local?root=$(NIX_STORE)'

.PHONY: nix-vendor-hash
nix-vendor-hash: ## Recompute vendorHash in nix/package.nix (go mod vendor + nix hash path)
	@command -v nix >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nix-bin >/dev/null; }
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(GO) mod vendor -o "$$tmp/vendor" && \
	h=$$(nix $(NIX_FLAGS) hash path --type sha256 --sri "$$tmp/vendor") && \
	sed -i "s|vendorHash = \".*\";|vendorHash = \"$$h\";|" nix/package.nix && echo "nix/package.nix: vendorHash = $$h"

NIX_EVAL = nix $(NIX_FLAGS) eval --no-write-lock-file --override-input nixpkgs path:./nix/stub-nixpkgs
PKG_TEST_DIST := $(DIST)/test

.PHONY: package-test-deps
package-test-deps: ## Install what package-test needs on Debian 12 (apt, go install), if missing
	@need=""; \
	for t in lintian:lintian rpm:rpm rpmlint:rpmlint podman:podman runc:runc nix-instantiate:nix-bin \
		busybox:busybox-static systemd-socket-activate:systemd systemd-nspawn:systemd-container \
		debootstrap:debootstrap curl:curl python3:python3 man:man-db; do \
		command -v $${t%%:*} >/dev/null || need="$$need $${t#*:}"; \
	done; \
	if [ -n "$$need" ]; then echo "installing:$$need"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; fi
	@command -v $(NFPM) >/dev/null || $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)

.PHONY: package-test
package-test: package-test-deps packages image ## Check deb/rpm (lintian, rpmlint, golden lists, rpm scriptlets, install+upgrade under load in nspawn), image, quadlet, nix (root)
	@set -eo pipefail; start=$$(date +%s); deb=$$(ls $(DIST)/handoff_$(PKG_VERSION)-$(PKG_RELEASE)_*.deb); rpmf=$$(ls $(DIST)/handoff-$(PKG_VERSION)-$(PKG_RELEASE).*.rpm); \
	echo "== lintian"; lintian --fail-on error,warning --suppress-tags package-supports-alternative-init-but-no-init.d-script "$$deb"; \
	echo "== rpmlint"; w=$$(mktemp -d); printf '#!/bin/sh\nexec %s --no-absolute-filenames "$$@"\n' "$$(command -v cpio)" > "$$w/cpio"; chmod +x "$$w/cpio"; \
	PATH="$$w:$$PATH" rpmlint -r packaging/rpmlintrc "$$rpmf" | tail -1; rm -rf "$$w"; \
	echo "== golden lists"; packaging/test/golden.sh "$$deb" "$$rpmf"; \
	echo "== man page"; x=$$(mktemp -d); dpkg-deb -x "$$deb" "$$x"; MANPATH="$$x/usr/share/man" man -P cat handoff | grep -q 'handoff upgrade' && echo "man handoff: ok"; rm -rf "$$x"; \
	echo "== second build for the upgrade tests"; $(MAKE) --no-print-directory packages DIST=$(PKG_TEST_DIST) PKG_RELEASE=$$(( $(PKG_RELEASE) + 1 )) >/dev/null; \
	deb2=$$(ls $(PKG_TEST_DIST)/*.deb); rpm2=$$(ls $(PKG_TEST_DIST)/*.rpm); \
	echo "== rpm scriptlets"; packaging/test/rpm-scriptlets.sh "$$rpmf" "$$rpm2"; \
	echo "== deb install, upgrade under load, remove, purge (systemd-nspawn)"; \
	HANDOFF_IT_DEBS="$(CURDIR)/$$deb $(CURDIR)/$$deb2" $(GO) test -tags integration -count=1 -p 1 -timeout 15m -v -run '^TestPackageDeb$$' ./integration/ | sed -n '/== integration scenarios/,$$p'; \
	echo "== image (socket activation through podman)"; PODMAN="$(PODMAN)" packaging/test/image.sh $(IMAGE):$(IMAGE_TAG); \
	echo "== quadlet"; packaging/test/quadlet.sh; \
	echo "== nix"; for f in flake.nix nix/*.nix nix/*/*.nix; do nix-instantiate --parse "$$f" >/dev/null; done; echo "nix-instantiate --parse: ok"; \
	nix $(NIX_FLAGS) flake check --no-build --no-write-lock-file --override-input nixpkgs path:./nix/stub-nixpkgs . 2>&1 | grep -v '^warning:\|Added input\|stub-nixpkgs?\|^evaluating flake' || true; \
	nix $(NIX_FLAGS) flake check --no-build --no-write-lock-file --override-input nixpkgs path:./nix/stub-nixpkgs . 2>/dev/null; echo "nix flake check: ok"; \
	test "$$($(NIX_EVAL) .#nixosModules.default --apply builtins.isFunction 2>/dev/null)" = true; \
	test "$$($(NIX_EVAL) --raw .#packages.x86_64-linux.default.vendorHash 2>/dev/null)" = "$$(sed -n 's/.*vendorHash = "\(.*\)";/\1/p' nix/package.nix)"; echo "nix eval: ok"; \
	$(NIX_EVAL) --json .#checks.x86_64-linux.module-units.text 2>/dev/null | python3 -c 'import json,sys; print(json.loads(sys.stdin.read()))' | packaging/test/nix-units.py systemd; \
	echo "package-test: ok in $$(( $$(date +%s) - start ))s (plus the builds)"

# rpmlint unpacks the rpm with `rpm2cpio | cpio -id`, and nfpm's payload
# has absolute paths, which GNU cpio honours: without the wrapper above
# that adds --no-absolute-filenames, every package-test wrote the
# package's files (/etc/handoff, /usr/bin/handoff, units) onto the host.

# CI runs `make test`; package-test takes about 1-2 min once its tools and
# the nspawn root are cached (a fresh machine adds apt and go install).
test: package-test
