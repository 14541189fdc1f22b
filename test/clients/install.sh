#!/usr/bin/env bash
# Installs from Debian's packages the clients that `make test-clients`
# drives, if they are missing. Runs apt-get update only when a package
# cannot be found, so a machine with fresh lists stays offline.
set -euo pipefail
pkgs=(podman conmon containerd docker.io containernetworking-plugins)
missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The tests never use a system daemon the packages may start: they start
# their own, each in a sandbox.
if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
fi
