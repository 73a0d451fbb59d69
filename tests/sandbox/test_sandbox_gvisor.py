"""The gVisor level beside the namespace level: which kernel each sees, what gVisor needs
to start, and that a run leaves nothing behind (processes, cgroups, bundles, mounts)."""
import os
import subprocess
import time
import uuid

import pytest

from .conftest import need_gvisor
from .sbhelpers import SANDBOX, gvisor_leftovers, leftover_sandboxes


def test_kernel_each_level_sees(sb, capsys):
    r = sb.sh("uname -r; uname -s")
    release, system = r.out.split()
    with capsys.disabled():
        print(f"\n  {sb.isolation} level as {sb.identity}: {system} {release} "
              f"(host {os.uname().release})")
    assert system == "Linux"
    if sb.is_gvisor:
        # gVisor's own kernel answers, not the host's.
        assert release != os.uname().release, r
    else:
        assert release == os.uname().release, r


def mounts():
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(line.split()[3:5]) for line in f)


def test_nothing_left_behind_after_a_run_and_a_kill(root_parent):
    need_gvisor()
    before = mounts()
    bundles = set(gvisor_leftovers())
    secs = str(100000 + uuid.uuid4().int % 800000)
    for script, limit in ((f"echo done", "none"),
                          (f"(sleep {secs} &); sleep {secs}", "wall")):
        p = subprocess.run([str(SANDBOX), "run", "--json", "--isolation", "gvisor",
                            "--cgroup-parent", root_parent, "--time", "2", "--", "sh", "-c",
                            script], capture_output=True, text=True, timeout=120)
        assert f'"limit":"{limit}"' in p.stdout, p
        assert not set(gvisor_leftovers()) - bundles
        assert not leftover_sandboxes(root_parent)
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert f"sleep {secs}" not in ps
    assert mounts() == before


def test_unprivileged_launcher_refused(delegated):
    need_gvisor()
    p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        str(SANDBOX), "run", "--isolation", "gvisor", "--cgroup-parent",
                        delegated, "--", "true"], capture_output=True, text=True, timeout=60,
                       cwd="/")
    assert p.returncode == 69, p
    assert "gvisor: runsc needs a launcher running as root" in p.stderr, p.stderr


def test_missing_runsc_refused(root_parent, tmp_path):
    p = subprocess.run([str(SANDBOX), "run", "--isolation", "gvisor", "--runsc",
                        str(tmp_path / "runsc"), "--cgroup-parent", root_parent, "--", "true"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 69, p
    assert "cannot execute" in p.stderr and "runsc" in p.stderr, p.stderr


def test_program_and_input_on_their_descriptors(sb):
    # The launcher library's contract, seen from the CLI: stdin reaches the program whole,
    # descriptors 0-2 only, at both levels.
    data = os.urandom(200000).hex().encode()
    r = sb.py("import sys, os, hashlib; d = sys.stdin.buffer.read(); "
              "print(len(d), hashlib.sha256(d).hexdigest(), sorted(os.listdir('/proc/self/fd')))",
              input=data)
    import hashlib
    n, digest, fds = r.out.split(" ", 2)
    assert int(n) == len(data) and digest == hashlib.sha256(data).hexdigest(), r
    assert fds.strip() == "['0', '1', '2', '3']", r


def test_boot_is_not_counted_against_the_wall_clock(root_parent):
    need_gvisor()
    # A 0.2 s wall limit is far less than gVisor takes to boot: the clock starts once the
    # guest runs, so the program still gets its 0.2 s.
    t0 = time.monotonic()
    p = subprocess.run([str(SANDBOX), "run", "--json", "--isolation", "gvisor",
                        "--cgroup-parent", root_parent, "--time", "0.5", "--", "sh", "-c",
                        "echo ran"], capture_output=True, text=True, timeout=120)
    assert '"stdout":"ran\\n"' in p.stdout and '"limit":"none"' in p.stdout, p
    assert time.monotonic() - t0 < 60
