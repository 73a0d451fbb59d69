#!/bin/sh
# Benchmark: median times of short programs, bare and at each isolation level, cold and warm.
# usage: scripts/bench-sandbox.sh [RUNS]   (default 20; run after `make`, as root for the
# gVisor level, or with a cgroup parent delegated to you: AIRLOCK_CGROUP_PARENT=name)
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-20}
SANDBOX=${SANDBOX:-build/airlock-sandbox}
PARENT=${AIRLOCK_CGROUP_PARENT:-airlock}
[ -x "$SANDBOX" ] || { echo "bench-sandbox: $SANDBOX is not built (make)" >&2; exit 69; }
exec /usr/bin/python3 - "$RUNS" "$SANDBOX" "$PARENT" <<'PY'
import json, os, statistics, subprocess, sys, time

runs, sandbox, parent = int(sys.argv[1]), sys.argv[2], sys.argv[3]
# bwrap alone, with the namespaces the launcher asks for but nothing else: the part of the
# cost that is the kernel's and bwrap's, not the launcher's.
BWRAP = ["bwrap", "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net",
         "--unshare-uts", "--unshare-cgroup-try", "--disable-userns", "--ro-bind", "/usr", "/usr",
         "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
         "--symlink", "usr/bin", "/bin", "--proc", "/proc", "--dev", "/dev", "--"]
SB = [sandbox, "run", "--cgroup-parent", parent]
# The interpreters as airlockd starts them for a warm pool: loaded, then reading the
# program from descriptor 3 (gateway/code.c's boot code, in short).
WARM = {
    "sh": (["sh", "-c", '__p=$(cat <&3) && exec 3<&- && eval "$__p"', "program"], "true"),
    "python3": (["python3", "-I", "-c", "import sys\nwith open(3) as f: src = f.read()\n"
                 "exec(compile(src, '<program>', 'exec'))"], "pass"),
}


def cold_ms(argv):
    """Start to exit of a command, as its caller sees it."""
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - t0) * 1000


def bare_warm_ms(interp):
    """Hand-over to exit of an interpreter already loaded, waiting on descriptor 3."""
    argv, prog = WARM[interp]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        if r != 3:
            os.dup2(r, 3)
        os.set_inheritable(3, True)
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.execv("/usr/bin/" + argv[0], argv)
    os.close(r)
    time.sleep(0.3)
    t0 = time.perf_counter()
    os.write(w, prog.encode())
    os.close(w)
    os.waitpid(pid, 0)
    return (time.perf_counter() - t0) * 1000


def sandbox_warm_ms(level, interp):
    """Hand-over to the end of a sandbox started ahead (booted, interpreter loaded and
    waiting for its program), destroyed: what a warm pool's call waits for."""
    argv, prog = WARM[interp]
    p = subprocess.run([*SB, "--isolation", level, "--json", "--warm", "--program", prog,
                        "--", *argv], capture_output=True, text=True, check=True)
    return json.loads(p.stdout)["handover_ms"]


def median(fn, *args):
    fn(*args)
    return statistics.median(fn(*args) for _ in range(runs))


gvisor = subprocess.run([*SB, "--isolation", "gvisor", "--", "true"],
                        capture_output=True).returncode == 0
print(f"median over {runs} runs, ms; warm = from the hand-over of the program to the end")
cols = ["bare", "bare warm", "bwrap", "ns cold", "ns warm", "gvisor cold", "gvisor warm"]
print(f"{'command':<17}" + "".join(f"{c:>13}" for c in cols))
for interp, cmd in (("sh", ["sh", "-c", "true"]), ("python3", ["python3", "-c", "pass"])):
    row = [median(cold_ms, ["/usr/bin/" + cmd[0], *cmd[1:]]),
           median(bare_warm_ms, interp),
           median(cold_ms, BWRAP + cmd),
           median(cold_ms, [*SB, "--", *cmd]),
           median(sandbox_warm_ms, "namespace", interp)]
    if gvisor:
        row += [median(cold_ms, [*SB, "--isolation", "gvisor", "--", *cmd]),
                median(sandbox_warm_ms, "gvisor", interp)]
    print(f"{' '.join(cmd):<17}" + "".join(f"{v:13.1f}" for v in row) +
          ("" if gvisor else "   (gVisor cannot start here)"))
    print(f"{'  over bare warm':<17}{'':>13}{'':>13}{'':>13}{'':>13}"
          f"{row[4] - row[1]:13.1f}{'':>13}" +
          (f"{row[6] - row[1]:13.1f}" if gvisor else ""))
print("bare: exec to exit; bare warm: an interpreter already loaded, from writing its "
      "program to its exit;\nns/gvisor cold: airlock-sandbox run start to exit (launcher "
      "process included); warm: started ahead,\nfrom the hand-over to the sandbox's end "
      "(its teardown included).")
PY
