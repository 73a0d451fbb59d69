"""Helpers shared by the sandbox tests: where the program is, the cgroups it makes, and
whether gVisor can start here."""
import functools
import glob
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "build" / "airlock-sandbox"
CGROUP = Path("/sys/fs/cgroup")
UNPRIV = "nobody"
UNPRIV_GROUP = "nogroup"


def cgroup_dirs(name):
    """The directories a cgroup parent `name` has on this machine (v2 or v1)."""
    if (CGROUP / "cgroup.controllers").exists():
        return [CGROUP / name]
    return [CGROUP / c / name for c in ("pids", "memory", "cpuacct") if (CGROUP / c).is_dir()]


def leftover_sandboxes(name):
    """Per-sandbox cgroups still present under a parent."""
    return [p for d in cgroup_dirs(name) if d.is_dir() for p in d.iterdir()
            if p.is_dir() and p.name.startswith("sb-")]


@functools.lru_cache(maxsize=None)
def runsc_unavailable():
    """Why a gVisor sandbox cannot start here ("" when it can): one real run of `true`."""
    if not Path("/usr/bin/runsc").exists():
        return "/usr/bin/runsc is not installed (Debian package runsc)"
    p = subprocess.run([str(SANDBOX), "run", "--isolation", "gvisor", "--", "true"],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        return p.stderr.strip()[-500:] or f"exit {p.returncode}"
    return ""


def gvisor_leftovers():
    """Bundles and runsc processes of gVisor sandboxes (a test compares them before and
    after a run: a running airlockd keeps warm ones)."""
    left = glob.glob("/tmp/airlock-gv-*")
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    left += [line for line in ps.splitlines()
             if line.startswith("runsc") and "/tmp/airlock-gv-" in line]
    return left
