"""The gVisor level through a real airlockd: the demo catalog's run_python_isolated answers
from behind gVisor's kernel with the same outcome, limits, egress record and call record as
the namespace level, warm pools serve calls at both levels and show in /metrics, and the
catalog refuses an isolation level it does not know."""
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import ROOT, Daemon, ctl
from test_code import RATES, RECORD, code_world
from world import code_manifest, ok, tool, tool_error, wait_until

sys.path.insert(0, str(ROOT / "tests"))
from sandbox.sbhelpers import runsc_unavailable  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def gvisor_runs():
    why = runsc_unavailable()
    if why:
        pytest.fail(f"gVisor cannot start a sandbox here ({why}): make bootstrap installs runsc; run as root")


def isolated(name, limits, allow=None, warm=0):
    m = code_manifest(name, "python3", limits, allow)
    m["code"]["isolation"] = "gvisor"
    if warm:
        m["code"]["warm"] = warm
    return m


@pytest.fixture(scope="module")
def world(cluster, tmp_path_factory):
    yield from code_world(cluster, tmp_path_factory, "g", lambda listener: [
        isolated("tight_gv", {"time_s": 30, "cpu_s": 1}),
        isolated("small_gv", {"time_s": 30, "cpu_s": 20, "mem_mb": 64}),
        isolated("fetch_gv", {"time_s": 20}, allow=[f"127.0.0.1:{listener.port}"])])


@pytest.fixture(scope="module")
def gw(cluster, world):
    d = Daemon(["--db", cluster.gateway_url, "--tools", str(world.tools), "--warm", "4", *RATES])
    yield d
    d.stop()


def metrics(d):
    text = requests.get(d.url + "/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(airlock_sandbox_warm\w*)(\{isolation="(\w+)"\})? (\d+)$', line)
        if m:
            out[m.group(1) + (":" + m.group(3) if m.group(3) else "")] = int(m.group(4))
    return out


def wait_warm(d, level, n=1, timeout=60):
    wait_until(lambda: metrics(d).get(f"airlock_sandbox_warm:{level}", 0) >= n, timeout=timeout,
               every=0.2, what=f"{n} warm {level} sandboxes")


def test_isolated_python_answers_from_gvisor(gw, world):
    tok = world.mint(world.a, tools=["run_python_isolated"])
    sc = ok(tool(gw, tok, "run_python_isolated", {
        "code": "import json, os, platform, sys\n"
                "d = json.load(sys.stdin)\n"
                "print(json.dumps({'sum': sum(d), 'uid': os.getuid(), "
                "'kernel': platform.release()}))",
        "input": [1, 2, 3]}))
    assert sc["stdout"]["sum"] == 6 and sc["stdout"]["uid"] == 65534, sc
    # gVisor's kernel answers, not the host's.
    assert sc["stdout"]["kernel"] != os.uname().release, sc
    assert sc["exit_code"] == 0 and sc["limit"] is None and sc["stderr"] == ""
    rec = world.record(sc["call_id"], *RECORD)
    assert rec == {"outcome": "ok", "reason": None, "dry_run": False, "egress": [],
                   "tool": "run_python_isolated"}


def test_dry_run_names_the_level(gw, world):
    tok = world.mint(world.a, tools=["run_python_isolated"])
    r = requests.post(gw.url + "/rpc", headers={"Authorization": f"Bearer {tok}"}, json={
        "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "run_python_isolated", "arguments": {"code": "print(1)"},
            "dry_run": True}}, timeout=30)
    sc = ok(r)
    assert sc["dry_run"] is True and sc["plan"]["isolation"] == "gvisor", sc


def test_limits_are_reported_the_same_way(gw, world):
    tok = world.mint(world.a, tools=["tight_gv"])
    err = tool_error(tool(gw, tok, "tight_gv", {"code": "while True: pass"}))["error"]
    assert err["reason"] == "sandbox_limit" and err["limit"] == "cpu", err
    tok = world.mint(world.a, tools=["small_gv"])
    err = tool_error(tool(gw, tok, "small_gv", {"code": "x = bytearray(400 << 20)"}))["error"]
    assert err["reason"] == "sandbox_limit" and err["limit"] == "memory", err
    err = tool_error(tool(gw, tok, "small_gv", {"code": "import sys; sys.exit(4)"}))["error"]
    assert err["reason"] == "program_failed" and err["exit_code"] == 4, err


def test_egress_through_the_proxy_is_recorded(gw, world):
    tok = world.mint(world.a, tools=["fetch_gv"])
    port = world.listener.port
    sc = ok(tool(gw, tok, "fetch_gv", {"code": f"""
import urllib.request
print(urllib.request.urlopen("http://127.0.0.1:{port}/from-gvisor", timeout=10).read().decode())
try:
    urllib.request.urlopen("http://127.0.0.1:1/other", timeout=10)
except Exception as e:
    print("refused")
"""}))
    assert sc["stdout"] == "hello /from-gvisor\nrefused\n", sc
    assert "/from-gvisor" in world.listener.hits
    egress = world.record(sc["call_id"])["egress"]
    assert {"host": "127.0.0.1", "port": port, "allowed": True, "reason": "allowed"} in egress
    assert any(e["port"] == 1 and not e["allowed"] for e in egress), egress


def test_warm_pools_serve_calls_at_both_levels(gw, world):
    # The demo catalog keeps one warm sandbox for run_python and one for
    # run_python_isolated.
    wait_warm(gw, "namespace")
    wait_warm(gw, "gvisor")
    before = metrics(gw)
    tok = world.mint(world.a, tools=["run_python", "run_python_isolated"])
    for name in ("run_python", "run_python_isolated"):
        sc = ok(tool(gw, tok, name, {"code": "import os; print(os.getpid())"}))
        assert sc["exit_code"] == 0
    after = metrics(gw)
    assert after["airlock_sandbox_warm_hits_total"] >= before["airlock_sandbox_warm_hits_total"] + 2
    # Each served one call and was destroyed; the pool fills again.
    wait_warm(gw, "namespace")
    wait_warm(gw, "gvisor")


def test_warm_sandbox_is_fresh_and_clocks_start_with_the_call(gw, world):
    tok = world.mint(world.a, tools=["run_python_isolated"])
    wait_warm(gw, "gvisor")
    # Waiting in the pool spent nothing of the call's wall clock or CPU: the sandbox waits
    # there a while, on purpose, before the call.
    time.sleep(1.5)
    first = ok(tool(gw, tok, "run_python_isolated", {
        "code": "open('/tmp/mark', 'w').write('x'); print('ok')"}))
    assert first["wall_ms"] < 1500, first
    wait_warm(gw, "gvisor")
    second = ok(tool(gw, tok, "run_python_isolated", {
        "code": "import os; print(os.path.exists('/tmp/mark'))"}))
    assert second["stdout"] == "False\n", second


def test_catalog_refuses_an_unknown_level(cluster, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    m = code_manifest("odd", "python3", {})
    m["code"]["isolation"] = "vm"
    (tools / "odd.json").write_text(json.dumps(m))
    p = ctl("tool", "check", "--tools", str(tools), "--db", cluster.operator_url, check=False)
    assert p.returncode != 0
    assert 'isolation must be "namespace" (bubblewrap) or "gvisor"' in p.stderr, p.stderr


def test_catalog_load_keeps_a_proof_of_this_boot(cluster):
    # A catalog with a gVisor tool is checked at load by one real sandbox, unless this boot
    # already proved this very runsc; the proof is root's, private, and names the runsc.
    st = os.stat("/usr/bin/runsc")
    proof = Path(f"/run/airlock/gvisor-{st.st_dev}-{st.st_ino}")
    proof.unlink(missing_ok=True)
    d = Daemon(["--db", cluster.gateway_url, "--tools", str(ROOT / "tools")])
    try:
        m = proof.stat()
        assert m.st_uid == 0 and (m.st_mode & 0o777) == 0o600, oct(m.st_mode)
        assert f" size {st.st_size} mtime {int(st.st_mtime)}." in proof.read_text()
    finally:
        d.stop()
    # The next start of the boot takes the proof instead of a sandbox, and serves.
    d = Daemon(["--db", cluster.gateway_url, "--tools", str(ROOT / "tools")])
    try:
        assert requests.get(d.url + "/readyz", timeout=10).status_code == 200
    finally:
        d.stop()
