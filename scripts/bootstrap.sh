#!/bin/sh
# Installs the Debian packages Airlock builds, runs and tests with; quiet when all are present.
set -eu

# xxd embeds the console's files in airlockd; wrk drives make bench; chromium is the browser the console's test
# drives (through playwright-core, which never downloads a browser of its own).
PKGS="build-essential pkg-config libmicrohttpd-dev libjansson-dev libpq-dev libbsd-dev
libseccomp-dev postgresql bubblewrap runsc python3 python3-pytest python3-requests
python3-prometheus-client curl iproute2
clang clang-format-14 libclang-rt-14-dev cppcheck xxd chromium wrk"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
# The MCP interop test runs the official SDK client under Node.js.  A node installed by
# other means (with its own npm) is used as it is; otherwise Debian's.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
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
