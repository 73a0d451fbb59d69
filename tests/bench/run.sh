#!/bin/sh
# make bench: runs tests/bench/bench.py with Debian's Python (BENCH_SMOKE=1 for the few
# seconds make check spends on it).
set -eu
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tests/bench/bench.py "$@"
