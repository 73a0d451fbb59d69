"""Helpers shared by the sandbox tests: where the program is, the cgroups it makes."""
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
