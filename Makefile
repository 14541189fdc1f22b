GO ?= go
BIN := bin
# The shim is long-lived (one per container): keep it static and stripped.
SHIM_FLAGS := CGO_ENABLED=0
LDFLAGS := -s -w

.PHONY: all build clean test unit integration demo vet fmt conformance

all: build

build: $(BIN)/crier $(BIN)/crier-shim

$(BIN)/crier: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/runtime

# On amd64 the shim's ELF entry point is a few lines of assembly that join
# user and time namespaces before the Go runtime starts
# (container/nsenter_linux.go). Elsewhere joining those is refused.
SHIM_ENTRY := $(if $(filter amd64,$(shell $(GO) env GOARCH)),-E github.com/crier-runtime/crier/container.preRuntimeEntry)

$(BIN)/crier-shim: FORCE
	$(SHIM_FLAGS) $(GO) build -trimpath -ldflags '$(LDFLAGS) $(SHIM_ENTRY)' -o $@ ./cmd/shim

FORCE:

# -tags clients: test/clients (make test-clients) is vetted too.
vet:
	$(GO) vet -tags clients ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }

unit:
	$(GO) test ./container/... ./internal/... ./protocol/... ./shim/... ./statedir/... ./teardown/... ./cmd/...

integration: build
	$(GO) test -count=1 -timeout 20m ./test/... -crier-bin $(CURDIR)/$(BIN)

test: vet unit integration

demo: build
	./test/demo.sh

# The OCI runtime-tools validation suite (docs/conformance.md). Not part of
# `test`: about 25 of its assertions fail on this machine whatever the runtime.
conformance: build
	./test/conformance/run.sh $(CONFORMANCE_FLAGS) $(CURDIR)/$(BIN)/crier

# The side-by-side benchmark against runc, crun, conmon and containerd
# (issue 4): writes docs/performance.md. As root; about 5 minutes.
# BENCH_FLAGS=-quick for a short development run that writes nothing.
.PHONY: bench
bench: build
	$(GO) run ./bench $(BENCH_FLAGS)

# podman, containerd (ctr) and docker driving a runtime, each client in a
# sandbox of its own (docs/supervisors.md). As root; installs the clients
# from Debian's packages if they are missing. RUNTIME picks the runtime
# (default: bin/crier); test-clients-runc runs the same scenarios against
# runc, the reference. Not part of `test` yet: crier lacks exec under a
# supervisor and pause/resume (docs/supervisors.md, "Where it stands").
RUNTIME ?= $(BIN)/crier
RUNC ?= $(firstword $(wildcard /usr/sbin/runc /usr/bin/runc /usr/local/sbin/runc /usr/local/bin/runc) /usr/sbin/runc)
.PHONY: test-clients test-clients-runc
test-clients: build
	./test/clients/install.sh
	$(GO) test -tags clients -count=1 -timeout 20m -parallel 3 ./test/clients/ -runtime $(abspath $(RUNTIME)) $(CLIENTS_FLAGS)

test-clients-runc:
	$(MAKE) test-clients RUNTIME=$(RUNC)

# runc's own integration suite (the bats files of runc v1.5.3) against
# RUNTIME (default bin/crier) and runc 1.5.3 side by side: writes
# build/runc-suite/compare.txt (docs/runc-suite.md). As root; slow (20 to
# 40 minutes per runtime here; runc's results are cached). RUNC_SUITE_FILTER
# picks .bats files by regex. Not part of `test`: crier fails most of it.
.PHONY: runc-suite
runc-suite: build
	./test/runcsuite/run.sh $(RUNC_SUITE_FLAGS) $(abspath $(RUNTIME))

clean:
	rm -rf $(BIN)
