#!/usr/bin/env bash
# run.sh - run the OCI runtime-tools v0.9.0 validation suite against crier.
#
#   test/conformance/run.sh [-t SECS] [-o DIR] [-T TESTS] [-F MAX] [-B] RUNTIME
#
#   RUNTIME   the runtime binary under test (make conformance passes bin/crier)
#   -t SECS   timeout per test binary (default 60)
#   -o DIR    results dir (default $CACHE/results/<date>)
#   -T TESTS  run only these test binaries (comma or space separated)
#   -F MAX    exit 1 if more than MAX assertions failed (default: no limit;
#             the exit status only reports whether the run itself worked)
#   -B        rebuild the suite even if the cache is up to date
#
# Environment: CONFORMANCE_CACHE (default /tmp/crier-conformance) holds the
# scratch Go module, the built suite and the results. Needs root, Go, the Go
# module proxy (first build only), util-linux (unshare, flock) and coreutils.
#
# This is deliberately NOT part of `make test`: its last line,
# "N passed, M failed", counts suite assertions, and about 25 of them fail on
# this kind of machine whatever the runtime does (see docs/conformance.md).
#
# Scoring (identical to the shared scorer, ../shared/tools/validate.sh, so the
# numbers compare with its runc and crun baselines):
#   - only top-level TAP lines count ("ok"/"not ok" at column 0); the indented
#     YAML carrying runtimetest's own TAP is diagnostics;
#   - "ok ... # SKIP" is skipped, "not ok ... # TODO" is todo: neither counts;
#   - a binary exiting non-zero (or timing out) gets no credit for its ok lines
#     and counts max(1, not-ok lines) failures;
#   - a binary exiting 0 with no ok/not-ok line at all (hook tests, *_fail
#     tests) counts one assertion: failed if its output has a YAML "error" key.
set -u -o pipefail

SUITE=github.com/opencontainers/runtime-tools
SUITE_VERSION=v0.9.0
CACHE=${CONFORMANCE_CACHE:-/tmp/crier-conformance}
BIN=$CACHE/suite
SELF=$(readlink -f -- "$0")

die() { echo "conformance: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# Inner half: runs in the private mount namespace made by the outer half.
# Arguments come through the environment (CONF_*), not the command line.
# ---------------------------------------------------------------------------
if [ "${1:-}" = __inner ]; then
    RUNTIME=$CONF_RUNTIME RESULTS=$CONF_RESULTS SCRATCH=$CONF_SCRATCH
    TIMEOUT=$CONF_TIMEOUT TESTS=$CONF_TESTS
    BUNDLES=$SCRATCH/bundles    # the tests' TMPDIR: every bundle lands here
    STATE=$SCRATCH/state        # crier --root: only this run's containers
    mkdir -m 0755 "$BUNDLES" && mkdir -m 0700 "$STATE" || exit 1

    # The suite runs "$RUNTIME <command> ..." with no global options, so it
    # gets a wrapper that adds our private --root and logs every call.
    WRAPPER=$SCRATCH/crier
    {
        echo '#!/bin/bash'
        printf 'printf "%%s: %%s\\n" "${CONF_TEST:-?}" "$*" >> %q\n' "$RESULTS/invocations.log"
        printf 'exec %q --root %q "$@"\n' "$RUNTIME" "$STATE"
    } > "$WRAPPER"
    chmod 0755 "$WRAPPER"

    {
        echo "date: $(date -Is)"
        echo "runtime: $RUNTIME ($("$RUNTIME" --version 2>&1 | head -n 1))"
        echo "suite: $SUITE $SUITE_VERSION, built in $BIN ($(cat "$CACHE/suite.stamp"))"
        echo "kernel: $(uname -r)"
        echo "CapBnd: $(awk '$1 == "CapBnd:" {print $2}' /proc/self/status)"
        echo "cgroup mounts:"
        awk '$3 ~ /^cgroup/ {print "  " $2, $3, $4}' /proc/self/mounts
    } > "$RESULTS/env.txt"

    # Cgroup dirs named by the suite's configs (cgroupsPath /cgrouptest,
    # testdir/cgrouptest/container, ...): the new ones are ours to remove.
    cgroup_dirs() {
        find /sys/fs/cgroup -mindepth 2 -maxdepth 8 -type d \
            \( -name cgrouptest -o -name testdir \) 2> /dev/null | sort
    }
    cgroup_dirs > "$SCRATCH/cgroups.before"

    # score TAPFILE RC -> "ok notok skip todo status passed failed"
    score() {
        awk -v rc="$2" '
            /^ok([ \t]|$)/     { if (tolower($0) ~ /#[ \t]*skip/) skip++; else ok++; next }
            /^not ok([ \t]|$)/ { if (tolower($0) ~ /#[ \t]*todo/) todo++; else bad++; next }
            /^ +"error":/      { yamlerr = 1 }
            END {
                ok += 0; bad += 0; skip += 0; todo += 0
                if (rc != 0) {
                    st = bad > 0 ? "FAIL" : (rc == 124 || rc == 137 ? "TIMEOUT" : "ERROR")
                    p = 0; f = bad > 0 ? bad : 1
                } else if (ok + bad + skip + todo == 0) {
                    if (yamlerr) { st = "FAIL"; p = 0; f = 1 } else { st = "PASS"; p = 1; f = 0 }
                } else {
                    st = bad > 0 ? "FAIL" : "PASS"; p = ok; f = bad
                }
                print ok, bad, skip, todo, st, p, f
            }' "$1"
    }

    # why TAPFILE: the not-ok lines with a few lines of their diagnostics,
    # or, for the tests without ok/not-ok lines, their top-level YAML block.
    why() {
        awk '
            /^not ok/ && tolower($0) !~ /#[ \t]*todo/ { show = 12; any = 1; print; next }
            /^(ok|not ok)([ \t]|$)/                    { show = 0; any = 1; next }
            /^  ---/ && !any                           { show = 12 }
            show > 0                                   { print; show-- }' "$1"
    }

    fmt='%-32s %5s %6s %5s %4s %4s %5s  %-7s %s\n'
    mdrow() { printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$@" >> "$RESULTS/results.md"; }
    printf '# %s, runtime-tools %s, timeout %ss\n' "$RUNTIME" "$SUITE_VERSION" "$TIMEOUT" \
        | tee "$RESULTS/summary.txt"
    printf "$fmt" test ok not_ok skip todo exit secs status score | tee -a "$RESULTS/summary.txt"
    echo '| test | ok | not ok | skip | exit | status | score |' > "$RESULTS/results.md"
    echo '|---|---:|---:|---:|---:|---|---|' >> "$RESULTS/results.md"
    : > "$RESULTS/failures.txt"

    passed=0 failed=0 skipped=0 todos=0 n=0 clean=0 withfail=0 errored=0 timedout=0
    for t in $TESTS; do
        [ -x "$BIN/$t" ] || { echo "$t: no such test binary" >&2; continue; }
        n=$((n + 1))
        start=$SECONDS
        ( cd "$BIN" && CONF_TEST=$t TMPDIR=$BUNDLES RUNTIME=$WRAPPER \
            exec timeout -k 10 "$TIMEOUT" "./$t" ) \
            < /dev/null > "$RESULTS/$t.tap" 2> "$RESULTS/$t.stderr"
        rc=$?
        secs=$((SECONDS - start))
        echo "$rc" > "$RESULTS/$t.rc"
        read -r ok bad skip todo st p f < <(score "$RESULTS/$t.tap" "$rc")
        passed=$((passed + p)) failed=$((failed + f))
        skipped=$((skipped + skip)) todos=$((todos + todo))
        case $st in
            PASS) clean=$((clean + 1)) ;;
            FAIL) withfail=$((withfail + 1)) ;;
            ERROR) errored=$((errored + 1)) ;;
            TIMEOUT) timedout=$((timedout + 1)) ;;
        esac
        printf "$fmt" "$t" "$ok" "$bad" "$skip" "$todo" "$rc" "$secs" "$st" "+$p/-$f" \
            | tee -a "$RESULTS/summary.txt"
        mdrow "$t" "$ok" "$bad" "$skip" "$rc" "$st" "+$p/-$f"
        if [ "$st" != PASS ]; then
            {
                echo "=== $t: $st, exit $rc"
                why "$RESULTS/$t.tap"
                if [ -s "$RESULTS/$t.stderr" ]; then
                    echo "--- stderr (last 10 lines)"
                    tail -n 10 "$RESULTS/$t.stderr"
                fi
            } >> "$RESULTS/failures.txt"
        fi
    done

    # Containers the suite left behind. Our --root holds only this run's.
    leaked=0
    for id in $("$RUNTIME" --root "$STATE" list -q 2> /dev/null); do
        leaked=$((leaked + 1))
        echo "leaked container $id: deleting it" >> "$RESULTS/failures.txt"
        "$RUNTIME" --root "$STATE" kill "$id" KILL > /dev/null 2>&1
        "$RUNTIME" --root "$STATE" delete --force "$id" > /dev/null 2>&1 \
            || echo "  could not delete $id" >> "$RESULTS/failures.txt"
    done

    # New suite cgroup dirs, and crier's default /<id> for this run's ids
    # (an older crier's /crier/<id>), deepest first; rmdir only removes
    # empty ones.
    {
        comm -13 "$SCRATCH/cgroups.before" <(cgroup_dirs)
        grep -oE '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}' "$RESULTS/invocations.log" 2> /dev/null \
            | sort -u | while read -r id; do
                for d in /sys/fs/cgroup/*/"$id" /sys/fs/cgroup/*/crier/"$id"; do [ -d "$d" ] && echo "$d"; done
            done
    } | awk -F/ '{print NF, $0}' \
        | sort -rn | cut -d' ' -f2- | while read -r d; do
            rmdir "$d" 2> /dev/null && echo "removed leftover cgroup $d" >> "$RESULTS/failures.txt"
        done

    # The same calls with ids and paths normalised, counted.
    if [ -s "$RESULTS/invocations.log" ]; then
        sed -E -e 's/^[^:]*: //' \
            -e 's/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}/<id>/g' \
            -e "s#$BUNDLES/ocitest[0-9]+#<bundle>#g" -e "s#$BUNDLES/[^ ]*#<tmpfile>#g" \
            "$RESULTS/invocations.log" | sort | uniq -c | sort -rn > "$RESULTS/invocations-summary.txt"
    fi

    {
        echo "binaries: $clean/$n clean, $withfail with not-ok, $errored errored, $timedout timed out"
        echo "assertions: $skipped skipped, $todos todo; leaked containers: $leaked; results: $RESULTS"
        echo "$passed passed, $failed failed"
    } | tee -a "$RESULTS/summary.txt"
    echo "$failed" > "$RESULTS/failed"
    exit 0
fi

# ---------------------------------------------------------------------------
# Outer half: options, build, then the inner half under unshare -m.
# ---------------------------------------------------------------------------
usage() { sed -n '3,/^# Environment/p' "$SELF" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

TIMEOUT=60 RESULTS="" ONLY="" MAXFAIL="" REBUILD=0
while getopts ":t:o:T:F:Bh" opt; do
    case $opt in
        t) TIMEOUT=$OPTARG ;;
        o) RESULTS=$OPTARG ;;
        T) ONLY=$OPTARG ;;
        F) MAXFAIL=$OPTARG ;;
        B) REBUILD=1 ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# = 1 ] || usage
RUNTIME=$(readlink -f -- "$1") && [ -x "$RUNTIME" ] || die "runtime not found: $1"
[ "$(id -u)" = 0 ] || die "must run as root"
for tool in go unshare flock timeout prlimit; do
    command -v "$tool" > /dev/null || die "$tool is needed"
done

# Build recipe. runtime-tools v0.9.0 predates Go modules (it vendored with
# Godeps), so a scratch module supplies the dependency versions:
#   runtime-spec 1722abf  the commit v0.9.0 was written against (v1.3.0 turned
#                         Pids.Limit into a pointer, which breaks the build)
#   selinux v1.11.1       the last release with label.FileLabel
# and the other modules at the versions the shared scorer uses, so that both
# build the same suite.
gomod() {
    cat <<EOF
module crier-conformance

go 1.22

require (
	$SUITE $SUITE_VERSION
	github.com/opencontainers/runtime-spec v1.0.2-0.20181111125026-1722abf79c2f
	github.com/opencontainers/selinux v1.11.1
)

require (
	github.com/blang/semver v3.5.1+incompatible
	github.com/hashicorp/errwrap v1.0.0
	github.com/hashicorp/go-multierror v1.1.1
	github.com/mndrix/tap-go v0.0.0-20171203230836-629fa407e90b
	github.com/mrunalp/fileutils v0.5.1
	github.com/satori/go.uuid v1.2.0
	github.com/sirupsen/logrus v1.9.3
	github.com/syndtr/gocapability v0.0.0-20200815063812-42c35b437635
	github.com/urfave/cli v1.22.17
	github.com/xeipuuv/gojsonpointer v0.0.0-20180127040702-4e3ac2762d5f
	github.com/xeipuuv/gojsonreference v0.0.0-20180127040603-bd5ef7bd5415
	github.com/xeipuuv/gojsonschema v1.2.0
	golang.org/x/sys v0.30.0
	gopkg.in/yaml.v2 v2.4.0
)
EOF
}

# The cache is rebuilt whenever the recipe or the Go toolchain changes.
stamp() {
    { gomod; go env GOVERSION GOARCH; sed -n '/^build_suite()/,/^}/p' "$SELF"; } | sha256sum | cut -c1-16
}

# runtimetest is the checker that runs inside the container. It must see the
# rlimits the runtime set, but Go >= 1.19 raises its own RLIMIT_NOFILE soft
# limit to hard-1 at start-up (syscall's init in rlimit.go), so process_rlimits
# would fail for every runtime. For runtimetest alone, `go build -overlay`
# swaps in a copy of rlimit.go whose init is renamed to an uncalled function.
build_suite() {
    local src=$CACHE/src out=$CACHE/suite.new dir rl want got
    echo "conformance: building $SUITE $SUITE_VERSION into $BIN" >&2
    rm -rf "$src" "$out" && mkdir -p "$src" "$out" || return 1
    gomod > "$src/go.mod"
    cd "$src" || return 1
    export GOFLAGS=-mod=mod GOTOOLCHAIN=local GOWORK=off
    go mod download "$SUITE" && dir=$(go list -m -f '{{.Dir}}' "$SUITE") || return 1

    rl=$(go env GOROOT)/src/syscall/rlimit.go
    if grep -q '^func init() {$' "$rl" 2> /dev/null; then
        sed 's/^func init() {$/func noStartupNofileRaise() {/' "$rl" > "$src/rlimit.go"
        printf '{"Replace":{"%s":"%s"}}\n' "$rl" "$src/rlimit.go" > "$src/overlay.json"
    else
        echo '{"Replace":{}}' > "$src/overlay.json"    # Go < 1.19: nothing to undo
    fi
    # Check that the patched std really leaves the soft limit alone.
    mkdir -p "$src/nofile" && cat > "$src/nofile/main.go" <<'EOF'
package main

import (
	"fmt"
	"syscall"
)

func main() {
	var l syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	fmt.Print(l.Cur)
}
EOF
    CGO_ENABLED=0 go build -overlay "$src/overlay.json" -o "$src/nofile/nofile" ./nofile || return 1
    got=$(prlimit --nofile=1000:4000 "$src/nofile/nofile") || return 1
    [ "$got" = 1000 ] || { echo "rlimit overlay did not work: soft limit $got, want 1000" >&2; return 1; }

    CGO_ENABLED=0 go build -overlay "$src/overlay.json" \
        -o "$out/runtimetest" "$SUITE/cmd/runtimetest" || return 1
    go build -o "$out/" "$SUITE/validation/..." || return 1
    # Every test directory must have given a binary (util is a library).
    want=$(cd "$dir/validation" && ls -d */ | tr -d / | grep -cvx util)
    got=$(cd "$out" && ls | grep -cvx runtimetest)
    [ "$want" = "$got" ] || { echo "built $got test binaries, want $want" >&2; return 1; }
    # The tests unpack ./rootfs-<GOARCH>.tar.gz (busybox) from their cwd.
    install -m 0644 "$dir/rootfs-$(go env GOARCH).tar.gz" "$out/" || return 1

    rm -rf "$BIN" && mv "$out" "$BIN" && stamp > "$CACHE/suite.stamp"
}

mkdir -p "$CACHE" || exit 1
# One run at a time: the tests use fixed cgroup paths such as /cgrouptest.
# Also wait for the shared scorer (validate.sh) when it is running.
exec 8> "$CACHE/run.lock"
flock -w 1800 8 || die "another conformance run holds $CACHE/run.lock"
if [ -d /tmp/rtval-cache ]; then
    exec 7>> /tmp/rtval-cache/run.lock
    flock -w 1800 7 || die "validate.sh holds /tmp/rtval-cache/run.lock"
fi

if [ "$REBUILD" = 1 ] || [ ! -f "$CACHE/suite.stamp" ] || [ "$(cat "$CACHE/suite.stamp")" != "$(stamp)" ]; then
    t0=$SECONDS
    ( build_suite ) || die "building the suite failed"
    echo "conformance: suite built in $((SECONDS - t0))s" >&2
fi

if [ -n "$ONLY" ]; then
    TESTS=$(echo "$ONLY" | tr ', ' '\n\n' | sed '/^$/d')
else
    TESTS=$(cd "$BIN" && ls | grep -vx -e runtimetest -e 'rootfs-.*')
fi
[ -n "$RESULTS" ] || RESULTS=$CACHE/results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RESULTS" && RESULTS=$(readlink -f -- "$RESULTS") || exit 1
rm -f "$RESULTS"/*.tap "$RESULTS"/*.stderr "$RESULTS"/*.rc "$RESULTS"/invocations.log "$RESULTS"/failed

# Bundles and crier's state live in a scratch dir that is 0755 all the way
# down to the bundles (linux_uid_mappings and linux_ns_nopath run the container
# as uid 1000, which must be able to reach its bundle). The private mount
# namespace keeps mounts made for containers without a mount namespace
# (linux_ns_itype) away from the host; they vanish with it.
SCRATCH=$(mktemp -d /tmp/crier-conformance.XXXXXX) && chmod 0755 "$SCRATCH" || exit 1
trap 'rm -rf --one-file-system "$SCRATCH"' EXIT
CONF_RUNTIME=$RUNTIME CONF_RESULTS=$RESULTS CONF_SCRATCH=$SCRATCH \
CONF_TIMEOUT=$TIMEOUT CONF_TESTS=$TESTS \
    unshare --mount --propagation private -- bash "$SELF" __inner 7>&- 8>&-
rc=$?
[ "$rc" = 0 ] && [ -f "$RESULTS/failed" ] || die "the run did not complete (exit $rc)"
if [ -n "$MAXFAIL" ] && [ "$(cat "$RESULTS/failed")" -gt "$MAXFAIL" ]; then
    die "$(cat "$RESULTS/failed") assertions failed, more than $MAXFAIL"
fi
exit 0
