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
