#!/bin/sh
# Installs the Debian packages Airlock builds, runs and tests with; quiet when all are present.
set -eu

PKGS="build-essential pkg-config libmicrohttpd-dev libjansson-dev libpq-dev libbsd-dev
libseccomp-dev postgresql bubblewrap runsc python3 python3-pytest python3-requests curl
iproute2 clang libclang-rt-14-dev cppcheck"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "bootstrap: missing packages:$missing" >&2
	echo "bootstrap: run 'make bootstrap' as root (or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "bootstrap: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian's postgresql package starts a cluster of its own; Airlock never uses it.
