#!/bin/sh
# Benchmark: median start-to-exit time of short programs in the sandbox against bare.
# usage: scripts/bench-sandbox.sh [RUNS]   (default 50; run after `make`, as root or with
# a cgroup parent delegated to you: AIRLOCK_CGROUP_PARENT=name)
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-50}
SANDBOX=${SANDBOX:-build/airlock-sandbox}
PARENT=${AIRLOCK_CGROUP_PARENT:-airlock}
[ -x "$SANDBOX" ] || { echo "bench-sandbox: $SANDBOX is not built (make)" >&2; exit 69; }
exec /usr/bin/python3 - "$RUNS" "$SANDBOX" "$PARENT" <<'PY'
import statistics, subprocess, sys, time

runs, sandbox, parent = int(sys.argv[1]), sys.argv[2], sys.argv[3]
# bwrap alone, with the namespaces the launcher asks for but nothing else: the part of the
# cost that is the kernel's and bwrap's, not the launcher's.
BWRAP = ["bwrap", "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net",
         "--unshare-uts", "--unshare-cgroup-try", "--disable-userns", "--ro-bind", "/usr", "/usr",
         "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
         "--symlink", "usr/bin", "/bin", "--proc", "/proc", "--dev", "/dev", "--"]
SB = [sandbox, "run", "--cgroup-parent", parent, "--"]


def median_ms(argv):
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


print(f"median start-to-exit over {runs} runs (ms)")
print(f"{'command':<18}{'bare':>8}{'bwrap':>8}{'sandbox':>9}{'diff':>8}{'ratio':>7}"
      f"{'launcher':>10}")
for name, cmd in (("sh -c true", ["sh", "-c", "true"]),
                  ("python3 -c pass", ["python3", "-c", "pass"])):
    bare = median_ms(["/usr/bin/" + cmd[0], *cmd[1:]])
    bw = median_ms(BWRAP + cmd)
    sb = median_ms(SB + cmd)
    print(f"{name:<18}{bare:8.1f}{bw:8.1f}{sb:9.1f}{sb - bare:8.1f}{sb / bare:7.1f}"
          f"{sb - bw:10.1f}")
print("diff = sandbox - bare; ratio = sandbox / bare; launcher = sandbox - plain bwrap "
      "(cgroup, seccomp, limits, descriptor and argument set-up)")
PY
