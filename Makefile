# sealpack build. `make` builds the installer stubs (embedded into gen) and gen.
SHELL := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/sealpack/sealpack/internal/version.Version=$(VERSION)
GO ?= go
STUB_SRC := $(shell find agent bundle rootfs stub internal cluster install registry tui cmd/stub -name '*.go' -not -name '*_test.go' 2>/dev/null) go.mod go.sum

.PHONY: all assets gen example test test-short fuzz lint bench clean

all: gen

assets: assets/stubs/stub-linux-amd64 assets/stubs/stub-linux-arm64 assets/stubs/agent-linux-amd64 assets/stubs/agent-linux-arm64

# The stub is static (no cgo) so it runs on any Linux of its architecture. It is built with
# bin/stubmod/go.mod: distribution patched not to link text/template, 6.6 MB less (scripts/stubmod.sh).
STUBMOD := bin/stubmod/go.mod
$(STUBMOD): go.mod go.sum scripts/stubmod.sh $(shell find scripts/stubmod -type f)
	GO=$(GO) ./scripts/stubmod.sh

assets/stubs/stub-linux-%: $(STUB_SRC) $(STUBMOD)
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -modfile=$(STUBMOD) -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/stub

# The host agent: what nodes get instead of the whole stub (a few MB).
assets/stubs/agent-linux-%: $(STUB_SRC) $(shell find agent -name '*.go' -not -name '*_test.go')
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/agent

gen: assets
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/gen ./cmd/gen

# End to end on the example: build the installer, inspect, verify and extract it, then (as
# root) install it on two namespaced test hosts, show the result and reset them.
example: gen
	mkdir -p example/out
	[ -f example/out/release.key ] || ./bin/gen keygen --out example/out/release --identity release@example.com
	./bin/gen -f example/Kubefile -o example/out/installer.run --sign-key example/out/release.key
	./bin/gen verify --allowed-signers example/out/release.allowed_signers example/out/installer.run
	ssh-keygen -Y verify -f example/out/release.allowed_signers -I release@example.com -n sealpack \
		-s example/out/installer.run.sig < example/out/installer.run
	./example/out/installer.run inspect
	./example/out/installer.run verify
	rm -rf example/out/rootfs
	./example/out/installer.run extract --to example/out/rootfs
	find example/out/rootfs | sort
	./scripts/example-install.sh

# Every test, then each fuzz target briefly. sealpack-nft (scripts/k8s/mod/nft) is a module of
# its own, which ./... does not reach; its test runs in a network namespace of its own (root).
test: assets
	$(GO) test -count=1 -timeout 30m ./...
	cd scripts/k8s/mod/nft && $(GO) test -count=1 ./...
	$(GO) test -count=1 -race -run 'TestSSH|TestScript|TestBlob|TestRoundTrip|TestSplit|TestConcurrent' ./install ./agent ./bundle ./registry
	./scripts/conformance.sh
	$(MAKE) fuzz FUZZTIME=15s

test-short: assets
	$(GO) test -short ./...

FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./bundle
	$(GO) test -run '^$$' -fuzz '^FuzzIndex$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./bundle
	$(GO) test -run '^$$' -fuzz '^FuzzFrames$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./bundle
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./generator/kubefile
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./cluster

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

bench: gen
	./scripts/bench/bundle.sh
	./scripts/bench/registry.sh
	./scripts/bench/images.sh
	./scripts/bench/install.sh
	./scripts/bench/pulls.sh
	./scripts/bench/detach.sh

clean:
	rm -rf bin example/out assets/stubs/stub-linux-*

# The kubernetes base cluster image kubernetes:v1.37.2 in gen's local store (images/kubernetes).
# Binaries, Debian packages and container images are cached under $(SEALPACK_CACHE)/k8s/VERSION.
# SOURCE=release: the official release binaries and images instead (scripts/k8s/base-image.sh).
SEALPACK_CACHE ?= /var/cache/sealpack
base-image: gen
	SEALPACK_CACHE=$(SEALPACK_CACHE) SOURCE=$(SOURCE) GEN=$(CURDIR)/bin/gen ./scripts/k8s/base-image.sh

# SOURCE=release against loopback stand-ins for dl.k8s.io, registry.k8s.io and the runtime's GitHub
# releases (no internet needed);
# serves the module build's binaries and images, so it runs after base-image.
test-base-image-release: gen
	SEALPACK_CACHE=$(SEALPACK_CACHE) GEN=$(CURDIR)/bin/gen ./scripts/k8s/test-release-source.sh

# Real cluster on systemd-nspawn hosts (scripts/k8s/e2e.sh). Needs root, systemd-nspawn,
# mmdebstrap and nft: without them it fails under CI=true and otherwise says why and skips.
# The cluster's life begins at OLD_K8S and a newer installer upgrades it to the base-image version.
# The upgrade life alone: e2e.sh upgrade.
OLD_K8S ?= v1.36.3
e2e-kubernetes: gen
	@if ./scripts/k8s/e2e.sh preflight; then \
	  $(MAKE) base-image && K8S_VERSION=$(OLD_K8S) $(MAKE) base-image && \
	  OLD_K8S=$(OLD_K8S) SEALPACK_CACHE=$(SEALPACK_CACHE) GEN=$(CURDIR)/bin/gen ./scripts/k8s/e2e.sh && \
	  $(MAKE) test-base-image-release; \
	else rc=$$?; [ $$rc = 3 ] || exit $$rc; fi

# Everything CI runs (.ci/run): every test, then the real-Kubernetes tier.
check: test e2e-kubernetes
.PHONY: base-image test-base-image-release e2e-kubernetes check
