"""The tool catalog at start and on reload (SIGHUP): a bad manifest refuses the start, a
reload adds tools, a bad reload keeps the catalog in use."""
import json
import shutil
import signal

import pytest

from conftest import ROOT
from world import READ_TOOLS, billing_world, rpc, tool, wait_until


@pytest.fixture(scope="module")
def world(cluster):
    return billing_world(cluster, "rd", READ_TOOLS)


def test_reload_on_sighup(start_daemon, world, tmp_path):
    tools = tmp_path / "tools"
    shutil.copytree(ROOT / "tools", tools)
    d = start_daemon("--tools", str(tools), "--admin-key-file", world.admin_key)
    tok = world.mint(world.a, tools=READ_TOOLS + ["count_customers"])
    names = lambda: [t["name"] for t in rpc(d, tok, "tools/list").json()["result"]["tools"]]
    assert "count_customers" not in names()
    (tools / "count_customers.json").write_text(json.dumps({
        "name": "count_customers", "description": "How many customers.", "kind": "read",
        "arguments": {"type": "object", "properties": {}, "additionalProperties": False},
        "statement": "SELECT count(*) AS n FROM billing.customers_live"}))
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "count_customers" in names(), timeout=10, what="the reloaded catalog")
    r = tool(d, tok, "count_customers")
    assert r.json()["result"]["structuredContent"]["rows"] == [{"n": "2"}]
    # A bad reload keeps the catalog in use, and says why.
    (tools / "broken.json").write_text("{ not json")
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("broken.json")
    assert "count_customers" in names()


def test_bad_manifest_refuses_start(cluster, tmp_path):
    import subprocess
    from conftest import AIRLOCKD
    tools = tmp_path / "tools"
    shutil.copytree(ROOT / "tools", tools)
    (tools / "sneaky.json").write_text(json.dumps({
        "name": "sneaky", "description": "Reads the base table.", "kind": "read",
        "arguments": {"type": "object", "properties": {}, "additionalProperties": False},
        "statement": "SELECT count(*) AS n FROM billing.customers"}))
    p = subprocess.run([str(AIRLOCKD), "--listen", "127.0.0.1:1", "--db", cluster.gateway_url,
                        "--tools", str(tools)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 78
    assert "sneaky.json" in p.stderr and "_live" in p.stderr
