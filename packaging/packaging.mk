# Packages: .deb and .rpm (nfpm), OCI image (podman), and the checks of
# those plus the quadlet and Nix files. Included by the top-level Makefile.
# See packaging/README.md.

NFPM_VERSION := v2.45.2
NFPM ?= $(shell command -v nfpm 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/nfpm)
DIST := dist
STAGE := $(DIST)/stage
# Debian and rpm versions must start with a digit; `git describe` gives a
# hash until the project has tags.
PKG_VERSION ?= 0.1.0
PKG_RELEASE ?= 1
PKG_ARCH ?= $(shell $(GO) env GOARCH)
export PKG_VERSION PKG_RELEASE PKG_ARCH

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
