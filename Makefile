GO ?= go
BIN := bin
# The shim is long-lived (one per container): keep it static and stripped.
SHIM_FLAGS := CGO_ENABLED=0
LDFLAGS := -s -w

.PHONY: all build install clean test unit integration demo vet fmt conformance soak soak-short

all: build

build: $(BIN)/crier $(BIN)/crier-shim

# --version's "commit:" line, as runc's (GOFLAGS may turn off -buildvcs).
COMMIT := $(shell git describe --always --dirty 2>/dev/null)

# On amd64 crier's ELF entry point forks `crier create` before the Go
# runtime starts, and the fork serves the container itself: one Go program
# start fewer on create's path (internal/prefork). Elsewhere create starts
# crier-shim.
CLI_ENTRY := $(if $(filter amd64,$(shell $(GO) env GOARCH)),-E github.com/crier-runtime/crier/internal/prefork.entry)

# Each binary is linked to a scratch file and then installed by
# internal/writebig (as `make install` installs them): each stretch of
# its data written with one write, so that the page cache holds it in
# 2 MB folios, which the kernel maps into every process that runs it one
# page-table entry per 2 MB of text or read-only data (a file the linker
# wrote through its mapping, or one read back from disk, is mapped 16
# pages a fault), and the padding between segments left as holes. About
# 40 page faults fewer per Go start here, creates some 3 ms faster
# (docs/performance-notes.md, "Kept"). It lasts as long as the page cache
# keeps the file: on these machines a binary left unused for a minute or
# so is dropped, and read back in small folios.
write_big = $(GO) run ./internal/writebig $(1) $(2)

# -R 0x200000 starts each segment on a 2 MB boundary, in the file as in
# memory, and write_big then stretches the text and the read-only data
# over the zeros up to their next boundary: each is then whole 2 MB
# blocks, all of it mapped a block at a time. Without it, the 0.2-1.3 MB
# past each one's last whole block (and, for crier, its read-only data's
# first 1.1 MB, which did not start on a boundary) took a page fault per
# 16 pages, and a page-table entry per page to tear down at exit: a run
# takes about 36 faults fewer (605 to 568), a create 0.15 ms less here.
# Each file grows to about 10 MB, 8 MB on disk.
ALIGN_LDFLAGS := -R 0x200000

$(BIN)/crier: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS) $(ALIGN_LDFLAGS) $(CLI_ENTRY) -X main.commit=$(COMMIT)' -o $@.link ./cmd/runtime
	$(call write_big,$@.link,$@) && rm -f $@.link

# On amd64 the shim's ELF entry point is a few lines of assembly that join
# user and time namespaces before the Go runtime starts
# (container/nsenter_linux.go). Elsewhere joining those is refused.
SHIM_ENTRY := $(if $(filter amd64,$(shell $(GO) env GOARCH)),-E github.com/crier-runtime/crier/container.preRuntimeEntry)

# For the shim, -R 0x200000 alone (before write_big stretched segments)
# let its read-only data (2.2 MB) hold a whole 2 MB block: the init stage
# took 31 page faults fewer; creates and runs 1.6 ms faster on the slow
# machines (docs/performance-notes.md).
$(BIN)/crier-shim: FORCE
	$(SHIM_FLAGS) $(GO) build -trimpath -ldflags '$(LDFLAGS) $(ALIGN_LDFLAGS) $(SHIM_ENTRY)' -o $@.link ./cmd/shim
	$(call write_big,$@.link,$@) && rm -f $@.link

FORCE:

# crier and crier-shim side by side (crier finds the shim beside itself).
PREFIX ?= /usr/local
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	$(call write_big,$(BIN)/crier,$(DESTDIR)$(PREFIX)/bin/crier)
	$(call write_big,$(BIN)/crier-shim,$(DESTDIR)$(PREFIX)/bin/crier-shim)

# -tags clients, -tags cri: test/clients (make test-clients) and test/cri
# (make test-cri, make critest) are vetted too.
vet:
	$(GO) vet -tags clients ./...
	$(GO) vet -tags cri ./test/cri/
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }

unit:
	$(GO) test ./container/... ./internal/... ./protocol/... ./shim/... ./statedir/... ./teardown/... ./cmd/... ./bench/

integration: build
	$(GO) test -count=1 -timeout 20m ./test/... -crier-bin $(CURDIR)/$(BIN)

test: vet unit integration soak-short test-clients test-clients-runc test-cri

# Lifecycles under fault injection (docs/reliability.md): SOAK_N lifecycles
# (default 1000, some 5 minutes here), 4 at a time, with kills of the CLI,
# the shim and the container at random points; SOAK_SEED repeats a run's
# choices. As root. `test` runs the short one (100, some 40 s).
SOAK_N ?= 1000
soak: build
	$(GO) run ./test/soak -crier-bin $(CURDIR)/$(BIN) -n $(SOAK_N)

soak-short: build
	$(MAKE) soak SOAK_N=100

demo: build
	./test/demo.sh

# The OCI runtime-tools validation suite (docs/conformance.md). Not part of
# `test`: about 25 of its assertions fail on this machine whatever the runtime.
conformance: build
	./test/conformance/run.sh $(CONFORMANCE_FLAGS) $(CURDIR)/$(BIN)/crier

# The side-by-side benchmark against runc, crun, conmon and containerd
# (issue 4), and podman and ctr driving crier and runc (issue 10), with
# runc 1.5.3, the processes and execs of each step and the machine's exec
# floor (issue 14): writes docs/performance.md. As root; about 10 minutes
# (a minute more the first time, to go install runc 1.5.3 unless
# `make runc-suite` has).
# BENCH_FLAGS=-quick for a short development run that writes nothing;
# BENCH_FLAGS='-only clients' (or another section) to run one section.
.PHONY: bench
bench: build
	$(GO) run ./bench $(BENCH_FLAGS)

# podman, containerd (ctr) and docker driving a runtime, each client in a
# sandbox of its own (docs/supervisors.md). As root; installs the clients
# from Debian's packages if they are missing. RUNTIME picks the runtime
# (default: bin/crier); test-clients-runc runs the same scenarios against
# runc, the reference, so that a failure can be told from the harness's.
# `test` runs both (about a minute each).
RUNTIME ?= $(BIN)/crier
RUNC ?= $(firstword $(wildcard /usr/sbin/runc /usr/bin/runc /usr/local/sbin/runc /usr/local/bin/runc) /usr/sbin/runc)
.PHONY: test-clients test-clients-runc
test-clients: build
	./test/clients/install.sh
	$(GO) test -tags clients -count=1 -timeout 20m -parallel 3 ./test/clients/ -runtime $(abspath $(RUNTIME)) $(CLIENTS_FLAGS)

test-clients-runc:
	$(MAKE) test-clients RUNTIME=$(RUNC)

# Kubernetes through containerd's CRI (docs/kubernetes.md): a private
# containerd 1.6 with its CRI plugin, crier and runc as two runtime
# handlers, a CNI bridge, offline images. test-cri runs the crictl
# scenarios and checks crier's events (about a minute); critest runs the
# CRI validation suite with each handler and compares (some 8 minutes, not
# in `test`). As root. cri-tools fetches crictl and critest v1.37.0 through
# the Go module proxy into build/cri, once.
CRI_TOOLS := build/cri
CRI_TOOLS_VERSION := v1.37.0
.PHONY: cri-tools test-cri critest
cri-tools: $(CRI_TOOLS)/crictl $(CRI_TOOLS)/critest

$(CRI_TOOLS)/crictl:
	mkdir -p $(CRI_TOOLS)
	GOBIN=$(CURDIR)/$(CRI_TOOLS) $(GO) install sigs.k8s.io/cri-tools/cmd/crictl@$(CRI_TOOLS_VERSION)

# critest is a test binary: built from the module's own directory.
$(CRI_TOOLS)/critest:
	mkdir -p $(CRI_TOOLS)
	cd "$$($(GO) mod download -json sigs.k8s.io/cri-tools@$(CRI_TOOLS_VERSION) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')" && \
		$(GO) test -c -o $(CURDIR)/$(CRI_TOOLS)/critest ./cmd/critest

test-cri: build $(CRI_TOOLS)/crictl
	./test/clients/install.sh
	$(GO) test -tags cri -count=1 -timeout 10m ./test/cri/ -run 'TestCrictl' -crier-bin $(CURDIR)/$(BIN) -runc $(RUNC) $(CRI_FLAGS)

critest: build cri-tools
	./test/clients/install.sh
	$(GO) test -tags cri -count=1 -timeout 30m ./test/cri/ -run 'TestCritest' -critest -v -crier-bin $(CURDIR)/$(BIN) -runc $(RUNC) $(CRI_FLAGS)

# Fuzzing (docs/reliability.md, "The socket under a fuzzer"). Not part of
# `test`: about 5 minutes.
#   fuzz-native: every native Go fuzzer in the tree (found by its
#     `func FuzzX`), each for FUZZTIME;
#   fuzz-live: a real container's shim driven with FUZZ_LIVE_N generated
#     and mutated requests from 48 connections at once (as root; the full
#     run, a million, takes about 3 minutes);
#   fuzz: both, the live fuzzer with FUZZ_N requests.
FUZZTIME ?= 20s
FUZZ_N ?= 50000
FUZZ_LIVE_N ?= 1000000
.PHONY: fuzz fuzz-native fuzz-live
fuzz: fuzz-native
	$(MAKE) fuzz-live FUZZ_LIVE_N=$(FUZZ_N) FUZZ_LIVE_FLAGS='-idle=false $(FUZZ_LIVE_FLAGS)'

fuzz-native:
	@set -e; for f in $$(git grep -l '^func Fuzz' -- '*_test.go'); do \
		for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz: ./$$(dirname $$f) $$fn for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f); \
		done; \
	done

fuzz-live: build
	$(GO) run ./fuzzlive -n $(FUZZ_LIVE_N) -bin $(CURDIR)/$(BIN) $(FUZZ_LIVE_FLAGS)

# runc's own integration suite (the bats files of runc v1.5.3) against
# RUNTIME (default bin/crier) and runc 1.5.3 side by side: writes
# build/runc-suite/compare.txt (docs/runc-suite.md). As root; slow (20 to
# 40 minutes per runtime here; runc's results are cached). RUNC_SUITE_FILTER
# picks .bats files by regex. Not part of `test`: too slow, and crier does not pass all of it yet.
.PHONY: runc-suite
runc-suite: build
	./test/runcsuite/run.sh $(RUNC_SUITE_FLAGS) $(abspath $(RUNTIME))

clean:
	rm -rf $(BIN)
