#!/usr/bin/env bash
# run.sh - run runc's own integration suite (tests/integration/*.bats of
# runc v1.5.3) against a runtime, side by side with runc 1.5.3 itself.
#
#   test/runcsuite/run.sh [-f] [-o OUT] RUNTIME
#
#   RUNTIME  the runtime under test (make runc-suite passes bin/crier); the
#            suite calls it as runc: "$RUNTIME --root DIR <command> ...".
#   -o OUT   where the TAP files and the report go (default build/runc-suite)
#   -f       rerun the reference (runc 1.5.3) even if its results are cached
#
# Environment:
#   RUNC_SUITE_FILTER   regex on the .bats file names to run (default: all
#                       the files not in EXCLUDED below)
#   RUNC_SUITE_TESTS    regex on test names, passed to bats --filter
#   RUNC_SUITE_CACHE    scratch dir (default /var/tmp/crier-runc-suite): the
#                       suite's copy, its helper binaries, runc 1.5.3, the
#                       busybox image and the reference's cached results
#   RUNC_SUITE_TEST_TIMEOUT  seconds per test (default 60)
#
# Nothing of runc's is copied into this repository: the suite runs from a
# scratch copy of the Go module cache's tests/ (helpers.bash finds its data
# and helper binaries next to itself, so it cannot run from the read-only
# module cache). The copy gets one change: get-images.sh, which downloads
# the busybox and Debian images, is replaced by a stub naming a busybox
# rootfs made offline from Debian's busybox-static.
#
# Each test runs alone (bats --filter '^name$'), in its own pid, mount and
# network namespaces (unshare), under `timeout`: when the test ends or times
# out, the kernel kills every process it left, its mounts and network
# devices go with the namespaces, and the sweep below deletes its
# containers' cgroups and loop devices. A hanging test therefore costs RUNC_SUITE_TEST_TIMEOUT, not the
# run. Needs root. Not part of `make test`: see docs/runc-suite.md.
set -u -o pipefail

RUNC_VERSION=v1.5.3
CACHE=${RUNC_SUITE_CACHE:-/var/tmp/crier-runc-suite}
SUITE=$CACHE/runc-$RUNC_VERSION/tests/integration
REF=$CACHE/bin/runc
HERE=$(dirname "$(readlink -f -- "$0")")
TEST_TIMEOUT=${RUNC_SUITE_TEST_TIMEOUT:-60}

# Files not run, and why. Everything else in tests/integration runs.
declare -A EXCLUDED=(
	[hooks_so.bats]="needs the Debian image (network)"
	[idmap.bats]="needs the Debian image (network)"
	[ioprio.bats]="needs the Debian image (network)"
	[mounts_propagation.bats]="needs the Debian image (network)"
	[mounts_propagation_unsafe.bats]="needs the Debian image (network)"
	[mounts_recursive.bats]="needs the Debian image (network)"
	[scheduler.bats]="needs the Debian image (network)"
	[mounts_sshfs.bats]="needs sshfs and an ssh server on localhost"
	[netdev.bats]="needs udevadm (no udev on this machine)"
	[checkpoint.bats]="needs CRIU checkpointing, which crier does not offer (no command); runc's results depend on the CRIU build"
	[selinux.bats]="needs SELinux enabled (every test skips here)"
	[rlimits.bats]="its setup raises RLIMIT_NOFILE's hard limit to 65536, which needs CAP_SYS_RESOURCE, not in this machine's bounding set"
)

die() { echo "runc-suite: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# Setup: packages, the suite, its helpers, runc 1.5.3, the busybox image.
# Each step is skipped when its result is already in the cache.
# ---------------------------------------------------------------------------
install_packages() {
	local missing=() cmd pkg
	for cmd in bats:bats jq:jq gawk:gawk gcc:gcc pkg-config:pkg-config unshare:util-linux; do
		command -v "${cmd%%:*}" > /dev/null || missing+=("${cmd#*:}")
	done
	for pkg in libseccomp-dev busybox-static; do
		dpkg -s "$pkg" > /dev/null 2>&1 || missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return
	echo "runc-suite: apt-get install ${missing[*]}"
	apt-get install -y "${missing[@]}" > /dev/null || die "apt-get install ${missing[*]} failed"
}

setup_suite() {
	local dir
	dir=$(go mod download -json "github.com/opencontainers/runc@$RUNC_VERSION" |
		jq -r .Dir) || die "go mod download runc@$RUNC_VERSION failed"
	if [ ! -e "$SUITE/.ready" ]; then
		rm -rf "$CACHE/runc-$RUNC_VERSION"
		mkdir -p "$CACHE/runc-$RUNC_VERSION"
		cp -r "$dir/tests" "$CACHE/runc-$RUNC_VERSION/" || die "copy $dir/tests failed"
		# The module zip keeps no modes: the scripts the suite runs need x.
		chmod -R u+w "$CACHE/runc-$RUNC_VERSION"
		find "$CACHE/runc-$RUNC_VERSION" -name '*.sh' -exec chmod 0755 {} +
		# The helper binaries helpers.bash expects in tests/cmd/_bin.
		(cd "$dir" && CGO_ENABLED=1 go build -tags seccomp \
			-o "$CACHE/runc-$RUNC_VERSION/tests/cmd/_bin/" ./tests/cmd/...) ||
			die "building runc's tests/cmd failed"
		printf '#!/bin/sh\n# Offline stub (test/runcsuite/run.sh) for the image downloader.\n' > "$SUITE/get-images.sh"
		printf 'echo BUSYBOX_IMAGE=%s\necho DEBIAN_IMAGE=/nonexistent/debian-image.tar\n' \
			"$SUITE/testdata/busybox.tar" >> "$SUITE/get-images.sh"
		chmod 0755 "$SUITE/get-images.sh"
		touch "$SUITE/.ready"
	fi
	[ -s "$SUITE/testdata/busybox.tar" ] || make_busybox "$SUITE/testdata/busybox.tar"
	if [ ! -x "$REF" ]; then
		# runc's Makefile sets the commit from git, which the module has
		# not; version.bats wants a "commit:" line: the tag stands in.
		GOBIN=$CACHE/bin CGO_ENABLED=1 go install -tags seccomp \
			-ldflags "-X main.gitCommit=$RUNC_VERSION" \
			"github.com/opencontainers/runc@$RUNC_VERSION" || die "go install runc@$RUNC_VERSION failed"
	fi
}

# make_busybox TAR: a busybox image shaped as the suite's (docker's busybox:
# every applet in /bin, root and nobody in /etc/passwd, /root, /tmp ...; no
# /proc or /sys, which mask.bats replaces with symlinks). If this changes,
# rerun the reference (-f).
make_busybox() {
	local r applet
	r=$(mktemp -d "$CACHE/busybox.XXXXXX")
	chmod 0755 "$r"
	mkdir -p "$r"/{bin,dev,etc,home,root,tmp,usr/sbin,var/spool/mail,var/www}
	chmod 1777 "$r/tmp"
	chmod 0700 "$r/root"
	cp /bin/busybox "$r/bin/busybox"
	for applet in $("$r/bin/busybox" --list); do
		[ -e "$r/bin/$applet" ] || ln "$r/bin/busybox" "$r/bin/$applet"
	done
	cat > "$r/etc/passwd" <<-'EOF'
		root:x:0:0:root:/root:/bin/sh
		daemon:x:1:1:daemon:/usr/sbin:/bin/false
		bin:x:2:2:bin:/bin:/bin/false
		sys:x:3:3:sys:/dev:/bin/false
		sync:x:4:100:sync:/bin:/bin/sync
		mail:x:8:8:mail:/var/spool/mail:/bin/false
		www-data:x:33:33:www-data:/var/www:/bin/false
		operator:x:37:37:Operator:/var:/bin/false
		nobody:x:65534:65534:nobody:/home:/bin/false
	EOF
	cat > "$r/etc/group" <<-'EOF'
		root:x:0:
		daemon:x:1:
		bin:x:2:
		sys:x:3:
		adm:x:4:
		tty:x:5:
		disk:x:6:
		mail:x:8:
		wheel:x:10:root
		www-data:x:33:
		operator:x:37:
		users:x:100:
		nobody:x:65534:
	EOF
	tar -C "$r" -cf "$1" . || die "tar $1 failed"
	rm -rf "$r"
}

# ---------------------------------------------------------------------------
# Running one .bats file, and the sweep after it.
# ---------------------------------------------------------------------------

# cgroup_dirs: every cgroup directory near the top of each hierarchy.
cgroup_dirs() {
	find /sys/fs/cgroup -mindepth 2 -maxdepth 5 -type d 2> /dev/null | sort
}

# run_file RUNTIME BATSFILE TAPFILE: runs the file's tests one by one (each
# with its own timeout) and writes one TAP stream for the file.
run_file() {
	local runtime=$1 file=$2 tap=$3 name i=0 n
	local -a names
	mapfile -t names < <(sed -n 's/^@test "\(.*\)" {$/\1/p' "$SUITE/$file")
	n=${#names[@]}
	echo "1..$n" > "$tap.part"
	for name in "${names[@]}"; do
		i=$((i + 1))
		[[ "$name" =~ ${RUNC_SUITE_TESTS:-.} ]] || continue
		run_test "$runtime" "$file" "$name" "$tap.one"
		# bats numbers the one test 1: renumber it, drop its plan line.
		sed -e '/^1\.\.[0-9]*$/d' -e "s/^\(not \)\{0,1\}ok 1 /\1ok $i /" "$tap.one" >> "$tap.part"
		rm -f "$tap.one"
	done
	mv "$tap.part" "$tap"
}

# run_test RUNTIME BATSFILE NAME TAPFILE
# bats' own per-test timeout (BATS_TEST_TIMEOUT) cannot be used: it is a
# background job of the test's shell, so the suite's tests that `wait` for
# their background jobs would wait for it too, and always time out.
run_test() {
	local runtime=$1 file=$2 name=$3 tap=$4 tmp re cmd rc t0=$SECONDS
	tmp=$(mktemp -d "$CACHE/tmp.XXXXXX")
	chmod 0755 "$tmp"
	CURRENT=("$file" "$tmp")
	cgroup_dirs > "$tmp.cgroups"
	# script's stdin: a FIFO opened read-write never reads EOF, which
	# script would pass on to the session (a ^D or NUL that a foreground
	# `runc run` with a terminal then forwards into the container).
	mkfifo "$tmp.stdin"
	re=^$(sed 's/[][\.*^$()+?{}|/]/\\&/g' <<< "$name")\$
	# The suite expects a controlling terminal (runc spec's config has
	# terminal: true, and `runc run` in the foreground then uses the
	# caller's): script(1) gives bats a pty session, its TAP goes to $tap.
	cmd=$(printf '%q ' exec bats --tap --filter "$re" "$file")
	cmd+=$(printf '> %q 2>&1' "$tap")
	# pid 1 of the new pid namespace is bash, which reaps the orphans
	# (containers whose runtime exited); script as pid 1 does not, and a
	# container killed by `delete -f` then stays a zombie. --kill-child: if
	# timeout kills unshare, pid 1 dies, and with it every process of the test.
	(cd "$SUITE" && TMPDIR=$tmp RUNC=$runtime exec \
		timeout -k 5 "$TEST_TIMEOUT" \
		unshare --pid --fork --kill-child --mount-proc --mount --propagation private --net \
		bash -c 'script -q -e -c "$1" /dev/null <&3 & wait $!' reaper "$cmd") \
		3<> "$tmp.stdin" < /dev/null > /dev/null 2>&1 &
	RUNNING=$!
	wait "$RUNNING"
	rc=$?
	RUNNING=
	if [ $rc -eq 124 ] || [ $rc -eq 137 ] || ! grep -qE '^(not )?ok 1 ' "$tap"; then
		# Keep what the test printed, as diagnostics of a failure.
		{
			if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
				echo "not ok 1 $name # timeout after ${TEST_TIMEOUT}s"
			else
				echo "not ok 1 $name (bats reported nothing, exit $rc)"
			fi
			grep -vE '^(1\.\.|(not )?ok )' "$tap" | sed 's/^/# /'
		} > "$tap.new"
		mv "$tap.new" "$tap"
	fi
	echo "# runc-suite: $((SECONDS - t0))s" >> "$tap"
	sweep "$file" "$tmp"
	CURRENT=()
}

# interrupted: stop the running test (timeout passes the signal on, then
# kills), sweep after it, and leave.
interrupted() {
	[ -n "${RUNNING:-}" ] && kill "$RUNNING" 2> /dev/null && wait "$RUNNING"
	[ ${#CURRENT[@]} -eq 2 ] && sweep "${CURRENT[@]}"
	die "interrupted"
}

# sweep FILE TMP: removes what a test's containers left behind on the
# host: the cgroups made during the test whose name appears in the .bats
# file (container IDs, the suite's cgroupsPath), loop devices backed by its
# temp files, and the temp dir itself.
sweep() {
	local file=$1 tmp=$2 dir dev words ours=()
	words=$(grep -oE '[A-Za-z0-9_.-]+' "$SUITE/$file" | sort -u)
	while read -r dir; do
		case "${dir##*/}" in
		test-cgroup-* | runc-cgroups-integration-test* | pod_*) ;;
		*) grep -qxF -- "${dir##*/}" <<< "$words" || continue ;;
		esac
		ours+=("$dir")
	done < <(cgroup_dirs | comm -13 "$tmp.cgroups" - | sort -r)
	# A process left in a frozen cgroup (cgroups.bats freezes one) cannot
	# finish dying, even killed with its pid namespace: thaw them all first.
	for dir in "${ours[@]}"; do
		[ -e "$dir/freezer.state" ] && echo THAWED > "$dir/freezer.state"
		[ -e "$dir/cgroup.freeze" ] && echo 0 > "$dir/cgroup.freeze"
	done
	for dir in "${ours[@]}"; do rmdir_cgroup "$dir"; done
	losetup -l -n -O NAME,BACK-FILE 2> /dev/null | while read -r dev dir; do
		[[ "$dir" == "$tmp"/* ]] && losetup -d "$dev"
	done
	rm -rf "$tmp" "$tmp.cgroups" "$tmp.stdin"
}

# rmdir_cgroup DIR: removes DIR once the processes left in it (killed with
# their namespace, or thawed just now) are gone: up to 5 s.
rmdir_cgroup() {
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		rmdir "$1" 2> /dev/null && return
		[ -s "$1/cgroup.procs" ] || break
		sleep 0.5
	done
	echo "runc-suite: leftover cgroup $1 (processes: $(tr '\n' ' ' < "$1/cgroup.procs"))" >&2
}

# run_all NAME RUNTIME DIR [cache]: runs every chosen file into DIR/<file>.tap;
# with "cache", a file whose TAP is already in DIR is not run again.
run_all() {
	local name=$1 runtime=$2 dir=$3 cache=${4:-} file
	mkdir -p "$dir"
	for file in "${FILES[@]}"; do
		if [ -n "$cache" ] && [ -s "$dir/$file.tap" ] && [ -z "${RUNC_SUITE_TESTS:-}" ]; then
			continue
		fi
		echo "runc-suite: $name: $file ($(date +%T))"
		run_file "$runtime" "$file" "$dir/$file.tap"
	done
}

# leftovers: what the run may have left on the host, printed for the report.
leftovers() {
	pgrep -a -f "$CACHE" || true
	grep -F "$CACHE" /proc/self/mountinfo || true
	find "$CACHE" -maxdepth 1 -name 'tmp.*' || true
	find /sys/fs/cgroup -mindepth 2 -maxdepth 5 -type d \( -name 'runc-cgroups-integration-test*' \
		-o -name 'test-cgroup-*' -o -name 'test_*' -o -name 'pod_*' \) 2> /dev/null || true
}

# ---------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------
FRESH= OUT=build/runc-suite
while getopts fo: opt; do
	case $opt in
	f) FRESH=1 ;;
	o) OUT=$OPTARG ;;
	*) die "usage: $0 [-f] [-o OUT] RUNTIME" ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || die "usage: $0 [-f] [-o OUT] RUNTIME"
RUNTIME=$(readlink -f -- "$1")
[ -x "$RUNTIME" ] || die "$1: not an executable"
[ "$(id -u)" -eq 0 ] || die "needs root"
mkdir -p "$CACHE" "$OUT" || die "mkdir $CACHE $OUT failed"
OUT=$(readlink -f -- "$OUT")

# One run at a time: containers have fixed IDs (test_busybox ...), and so
# do their default cgroups.
exec {lock}> "$CACHE/lock"
flock -n "$lock" || { echo "runc-suite: waiting for another run ($CACHE/lock)"; flock "$lock"; }

RUNNING= CURRENT=()
trap interrupted INT TERM
install_packages
setup_suite

FILES=()
for f in "$SUITE"/*.bats; do
	f=${f##*/}
	[ -v "EXCLUDED[$f]" ] && continue
	[[ "$f" =~ ${RUNC_SUITE_FILTER:-.} ]] || continue
	FILES+=("$f")
done
[ ${#FILES[@]} -gt 0 ] || die "no .bats file matches RUNC_SUITE_FILTER=$RUNC_SUITE_FILTER"

{
	echo "date: $(date -Is)"
	echo "machine: $(nproc) cpus, $(uname -r), load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "suite: github.com/opencontainers/runc@$RUNC_VERSION tests/integration, bats $(bats --version | cut -d' ' -f2)"
	echo "reference: $("$REF" --version | head -n 1) ($REF)"
	echo "runtime: $RUNTIME ($("$RUNTIME" --version 2>&1 | head -n 1))"
	echo "files: ${FILES[*]}"
	for f in "${!EXCLUDED[@]}"; do echo "excluded: $f: ${EXCLUDED[$f]}"; done | sort
} > "$OUT/env.txt"

# The reference's results are kept in the cache (runc and the suite are
# pinned): rerun them with -f, e.g. after the machine changed.
REFDIR=$CACHE/results/runc-$RUNC_VERSION
[ -n "${RUNC_SUITE_TESTS:-}" ] && REFDIR=$OUT/runc-partial && rm -rf "$REFDIR"
[ -n "$FRESH" ] && rm -rf "$REFDIR"
run_all "runc $RUNC_VERSION" "$REF" "$REFDIR" cache
rm -rf "$OUT/runtime"
run_all "$(basename "$RUNTIME")" "$RUNTIME" "$OUT/runtime"
rm -rf "$OUT/runc" && mkdir -p "$OUT/runc"
for f in "${FILES[@]}"; do cp "$REFDIR/$f.tap" "$OUT/runc/"; done
echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/env.txt"

left=$(leftovers)
[ -n "$left" ] && printf 'leftovers:\n%s\n' "$left" >> "$OUT/env.txt"
(cd "$OUT" && gawk -f "$HERE/compare.awk" runc/*.tap runtime/*.tap) > "$OUT/compare.txt"
cat "$OUT/env.txt"
sed -n '/^== totals/,$p' "$OUT/compare.txt" | head -n 8
echo "runc-suite: report in $OUT/compare.txt"
