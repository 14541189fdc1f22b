#!/usr/bin/env bash
# demo.sh: crier's main job, on a busybox bundle this script makes itself.
# A subscriber that is not the container's parent waits for created, the
# container starts, and the subscriber learns its exit status.
set -euo pipefail
cd "$(dirname "$0")/.."
crier="$PWD/bin/crier"
[ "$(id -u)" = 0 ] || { echo "demo: run as root (containers need it)" >&2; exit 1; }

work=$(mktemp -d /tmp/crier-demo.XXXXXX)
chmod 755 "$work"
root="$work/state"
id="demo-$$"
cleanup() { "$crier" --root "$root" delete --force "$id" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# A busybox rootfs from the OCI runtime-tools module (fetched via the Go module proxy).
mod=$(go mod download -json github.com/opencontainers/runtime-tools@v0.9.0 | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
mkdir -p "$work/bundle/rootfs"
tar xzf "$mod/rootfs-amd64.tar.gz" -C "$work/bundle/rootfs"
(cd "$work/bundle" && "$crier" spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"sh", "-c", "echo hello from $(hostname), pid $$; exit 17"/' "$work/bundle/config.json"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
say "crier event --monitor $id &    # subscribe before the container exists"
"$crier" --root "$root" event --monitor "$id" | sed -u 's/^/  [monitor] /' &
monitor=$!
say "crier create --bundle B $id &"
"$crier" --root "$root" create --bundle "$work/bundle" "$id"
say "crier event --event created $id && crier start $id"
"$crier" --root "$root" event --event created "$id" >/dev/null && "$crier" --root "$root" start "$id"
say "crier event --event stopped $id     # the exit status, without being the parent"
"$crier" --root "$root" event --event stopped "$id"
say "crier state $id"
"$crier" --root "$root" state "$id"
say "crier delete $id"
"$crier" --root "$root" delete "$id"
wait "$monitor"
echo
echo "demo: done; nothing is left behind."
