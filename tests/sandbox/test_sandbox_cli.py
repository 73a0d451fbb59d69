"""The airlock-sandbox command: options, hostile input, exit codes, stdin and output."""
import json
import subprocess

import pytest

from .sbhelpers import SANDBOX


def cli(*args, input=b"", timeout=30):
    return subprocess.run([str(SANDBOX), *args], input=input, capture_output=True,
                          timeout=timeout, cwd="/")


def test_help():
    for args in (["--help"], ["run", "--help"]):
        p = cli(*args)
        assert p.returncode == 0
        assert b"usage: airlock-sandbox run" in p.stdout and b"--allow" in p.stdout


@pytest.mark.parametrize("args, message", [
    (["run", "--time", "abc", "--", "true"], b"--time"),
    (["run", "--time", "-1", "--", "true"], b"--time"),
    (["run", "--time", "0", "--", "true"], b"--time"),
    (["run", "--time", "1.2345", "--", "true"], b"--time"),
    (["run", "--cpu", "1e9", "--", "true"], b"--cpu"),
    (["run", "--mem", "0", "--", "true"], b"--mem"),
    (["run", "--mem", "99999999999999999999", "--", "true"], b"--mem"),
    (["run", "--pids", "-5", "--", "true"], b"--pids"),
    (["run", "--nofile", "3", "--", "true"], b"--nofile"),
    (["run", "--stdout-max", "x", "--", "true"], b"--stdout-max"),
    (["run", "--allow", "nohostport", "--", "true"], b"--allow"),
    (["run", "--allow", "host:0", "--", "true"], b"--allow"),
    (["run", "--allow", "host:99999", "--", "true"], b"--allow"),
    (["run", "--allow", "a b:80", "--", "true"], b"--allow"),
    (["run", "--cgroup-parent", "../escape", "--", "true"], b"--cgroup-parent"),
    (["run"], b"no command"),
    (["run", "--"], b"no command"),
    (["run", "--bogus", "--", "true"], b"usage"),
    (["frobnicate"], b"unknown command"),
    ([], b"usage"),
])
def test_hostile_arguments_refused(args, message):
    p = cli(*args)
    assert p.returncode == 64, (args, p)
    assert message in p.stderr, (args, p.stderr)


def test_exit_status_and_outcome_line(root_parent):
    p = cli("run", "--cgroup-parent", root_parent, "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert p.returncode == 7
    assert p.stdout == b"out\n"
    assert p.stderr.startswith(b"err\nairlock-sandbox: exit 7, limit none, wall ")


def test_signal_exit_status(root_parent):
    p = cli("run", "--cgroup-parent", root_parent, "--", "sh", "-c", "kill -TERM $$")
    assert p.returncode == 128 + 15, p
    assert b"signal 15" in p.stderr


def test_missing_program(root_parent):
    p = cli("run", "--cgroup-parent", root_parent, "--json", "--", "no-such-program")
    j = json.loads(p.stdout)
    assert j["exit_code"] != 0 and "no-such-program" in j["stderr"], j


def test_stdin_passed_through(root_parent):
    data = bytes(range(256)) * 4096
    p = cli("run", "--cgroup-parent", root_parent, "--", "sha256sum", input=data)
    import hashlib
    assert p.returncode == 0, p
    assert p.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_json_fields(root_parent):
    p = cli("run", "--cgroup-parent", root_parent, "--json", "--", "python3", "-c",
            "import sys; sys.stdout.buffer.write(b'ok\\xff')")
    j = json.loads(p.stdout)
    assert j["exit_code"] == 0 and j["signal"] is None and j["limit"] == "none"
    assert j["stdout"] == "ok\ufffd" and not j["stdout_truncated"]
    assert j["wall_ms"] > 0 and j["cpu_ms"] > 0 and j["mem_peak_bytes"] > 0
    assert j["limits_hit"] == [] and j["egress"] == []


def test_limits_rejected_by_launcher_library(root_parent):
    # --tmp 0 is refused at parse time; the library checks too, for the gateway's sake.
    p = cli("run", "--cgroup-parent", root_parent, "--tmp", "0", "--", "true")
    assert p.returncode == 64 and b"--tmp" in p.stderr or b"tmp" in p.stderr, p
