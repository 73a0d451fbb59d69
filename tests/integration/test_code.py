"""Code tools against a real airlockd, PostgreSQL and bwrap: the program's outcome, tool
errors for failures and limits, dry-runs, input and input_tool, the per-tenant cap, fresh
namespaces, the egress allowlist, and the call record of every code call."""
import json
import secrets
import shutil
import socket
import threading
import time

import pytest
import requests

from conftest import ROOT, Daemon, ctl
from world import (JSON, Listener, World, code_manifest, err, ok, rpc, tool, tool_error,
                   wait_until)

RATES = ["--rate-token", "1000/1000", "--rate-tenant", "1000/1000"]
# What the tests compare of a call record.
RECORD = ("outcome", "reason", "dry_run", "egress", "tool")


def code_world(cluster, tmp_path_factory, prefix, manifests):
    """The world of a code tools' test file: the demo catalog plus manifests(listener) (a
    listener for egress, closed after), two tenants named with prefix granted run_python,
    a customer each, and two invoices of tenant a's."""
    listener = Listener()
    tools = tmp_path_factory.mktemp(prefix) / "tools"
    shutil.copytree(ROOT / "tools", tools)
    for m in manifests(listener):
        (tools / f"{m['name']}.json").write_text(json.dumps(m))
    w = World(cluster, prefix, tenants=2, tools=tools, grant=["run_python"])
    w.listener = listener
    for t in w.tenants:
        w.add_customer(t, email=f"x@{t}.example", name=f"Customer of {t}", company="Co")
    w.add_invoice(w.a, number=f"{w.a}-1", amount="10.50")
    w.add_invoice(w.a, number=f"{w.a}-2", status="paid", amount="99.00", issued="now()")
    yield w
    listener.close()


@pytest.fixture(scope="module")
def world(cluster, tmp_path_factory):
    yield from code_world(cluster, tmp_path_factory, "c", lambda listener: [
        # Wall limits far above the CPU limit, so that on a loaded machine the CPU limit is
        # still the one that stops the spinning program.
        code_manifest("tight_py", "python3", {"time_s": 30, "cpu_s": 1, "stdout_max": 4096,
                                              "stderr_max": 4096}),
        code_manifest("tight_sh", "sh", {"time_s": 3}),
        code_manifest("fetch_allowed", "python3", {"time_s": 10},
                      allow=[f"127.0.0.1:{listener.port}"]),
    ])


@pytest.fixture(scope="module")
def gw(cluster, world):
    d = Daemon(["--db", cluster.gateway_url, "--tools", str(world.tools), *RATES])
    yield d
    d.stop()


def test_python_prints_json(gw, world):
    tok = world.mint(world.a)
    listing = rpc(gw, tok, "tools/list").json()["result"]["tools"]
    entry = [t for t in listing if t["name"] == "run_python"][0]
    assert entry["annotations"]["readOnlyHint"] is False
    assert {"exit_code", "stdout", "stderr", "limit", "wall_ms"} <= set(entry["outputSchema"]["properties"])
    sc = ok(tool(gw, tok, "run_python", {
        "code": "import json, sys\nprint(json.dumps({'sum': 1 + 2, 'v': sys.version_info[0]}))"}))
    assert sc["stdout"] == {"sum": 3, "v": 3}
    assert sc["exit_code"] == 0 and sc["signal"] == 0 and sc["limit"] is None
    assert sc["dry_run"] is False and sc["stderr"] == ""
    assert sc["stdout_truncated"] is False and sc["stderr_truncated"] is False
    assert sc["wall_ms"] >= 0 and sc["peak_memory_bytes"] > 0
    assert len(sc["call_id"]) == 36
    rec = world.record(sc["call_id"], *RECORD)
    assert rec == {"outcome": "ok", "reason": None, "dry_run": False, "egress": [],
                   "tool": "run_python"}


def test_sh_prints_text(gw, world):
    tok = world.mint(world.a, tools=["run_sh"])
    sc = ok(tool(gw, tok, "run_sh", {"code": "echo hello from $(id -u); echo note >&2"}))
    assert sc["stdout"] == "hello from 65534\n"     # text: not JSON
    assert sc["stderr"] == "note\n"
    assert world.record(sc["call_id"])["outcome"] == "ok"


def test_nonzero_exit_is_program_failed(gw, world):
    tok = world.mint(world.a)
    r = tool(gw, tok, "run_python", {
        "code": "import sys\nprint('partial')\nsys.stderr.write('boom\\n')\nsys.exit(3)"})
    e = tool_error(r)["error"]
    assert e["reason"] == "program_failed" and "status 3" in e["message"]
    assert e["exit_code"] == 3 and e["stdout"] == "partial\n" and e["stderr"] == "boom\n"
    assert e["limit"] is None
    call_id = r.json()["result"]["structuredContent"]["call_id"]
    assert world.record(call_id)["outcome"] == "tool_error"
    assert world.record(call_id)["reason"] == "program_failed"
    # An exception: its traceback is the stderr the model sees.
    e = tool_error(tool(gw, tok, "run_python", {"code": "1 / 0"}))["error"]
    assert e["reason"] == "program_failed" and e["exit_code"] == 1
    assert "ZeroDivisionError" in e["stderr"]


def test_limits_stop_the_program(gw, world):
    tok = world.mint(world.a, tools=["tight_py", "tight_sh"])
    r = tool(gw, tok, "tight_py", {"code": "while True:\n    pass"})
    e = tool_error(r)["error"]
    assert e["reason"] == "sandbox_limit" and e["limit"] == "cpu" and "cpu" in e["message"]
    assert "cpu" in e["limits_hit"]
    rec = world.record(r.json()["result"]["structuredContent"]["call_id"], *RECORD)
    assert (rec["outcome"], rec["reason"]) == ("tool_error", "sandbox_limit")
    t0 = time.monotonic()
    e = tool_error(tool(gw, tok, "tight_sh", {"code": "echo started; sleep 30"}))["error"]
    assert e["reason"] == "sandbox_limit" and e["limit"] == "wall"
    assert e["stdout"] == "started\n" and e["exit_code"] is None and e["signal"] != 0
    assert time.monotonic() - t0 < 20


def test_huge_output_is_truncated(gw, world):
    tok = world.mint(world.a, tools=["tight_py"])
    e = tool_error(tool(gw, tok, "tight_py", {"code": "print('x' * 1000000)"}))["error"]
    assert e["reason"] == "sandbox_limit" and e["limit"] == "output"
    assert e["stdout_truncated"] is True and e["stdout"] == "x" * 4096
    # Output under the cap that is not valid UTF-8 still comes back, as text.
    sc = ok(tool(gw, tok, "tight_py", {"code": "import sys\nsys.stdout.buffer.write(b'a\\xffb')"}))
    assert sc["stdout"] == "a\ufffdb"


def test_dry_run_returns_the_plan_and_runs_nothing(gw, world):
    tok = world.mint(world.a, tools=["fetch_allowed"])
    port = world.listener.port
    before = len(world.listener.hits)
    prog = f"import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/dry')"
    r = tool(gw, tok, "fetch_allowed", {"code": prog, "input": {"k": [1, 2]}}, dry_run=True)
    sc = ok(r)
    assert sc["dry_run"] is True and "exit_code" not in sc and "stdout" not in sc
    plan = sc["plan"]
    assert plan["interpreter"] == "python3"
    assert plan["allow"] == [f"127.0.0.1:{port}"]
    assert plan["limits"]["time_s"] == 10 and plan["limits"]["mem_mb"] == 256  # default memory
    assert plan["input_bytes"] == len(json.dumps({"k": [1, 2]}, separators=(",", ":")))
    time.sleep(0.2)        # a check that nothing comes: a stray hit would come this soon
    assert len(world.listener.hits) == before
    rec = world.record(sc["call_id"], *RECORD)
    assert rec["dry_run"] is True and rec["outcome"] == "ok" and rec["egress"] is None


def test_preview_only_token_gets_a_dry_run(gw, world):
    tok = world.mint(world.a, "--preview-only")
    sc = ok(tool(gw, tok, "run_python", {"code": "print(1)"}))
    assert sc["dry_run"] is True and sc["plan"]["interpreter"] == "python3"
    assert sc["plan"]["input_bytes"] == 0 and "stdout" not in sc
    assert world.record(sc["call_id"])["dry_run"] is True


def test_input_reaches_stdin(gw, world):
    tok = world.mint(world.a, tools=["run_python", "run_sh"])
    prog = "import json, sys\nd = json.load(sys.stdin)\nprint(json.dumps({'n': sum(d['n']), 'name': d['name']}))"
    sc = ok(tool(gw, tok, "run_python", {"code": prog, "input": {"n": [1, 2, 3], "name": "é"}}))
    assert sc["stdout"] == {"n": 6, "name": "é"}
    sc = ok(tool(gw, tok, "run_sh", {"code": "cat", "input": [1, "two"]}))
    assert sc["stdout"] == [1, "two"]
    # No input: an empty stdin.
    sc = ok(tool(gw, tok, "run_sh", {"code": "wc -c"}))
    assert sc["stdout"] == 0


def test_input_tool_feeds_rows(gw, world):
    c = world.cust[world.a][0]
    tok = world.mint(world.a, "--max-calls", "10", tools=["run_python", "lookup_invoices"])
    prog = ("import json, sys\nrows = json.load(sys.stdin)\n"
            "print(json.dumps(sorted(r['number'] for r in rows)))")
    r = tool(gw, tok, "run_python", {"code": prog, "input_tool": {
        "name": "lookup_invoices", "arguments": {"customer_id": c}}})
    sc = ok(r)
    assert sc["stdout"] == [f"{world.a}-1", f"{world.a}-2"]
    assert sc["input_tool"] == {"name": "lookup_invoices", "row_count": 2, "truncated": False}
    # The read was a call of its own against the quota: two calls used.
    assert rpc(gw, tok, "airlock/tokens.self").json()["result"]["calls_used"] == 2
    # Row-level security holds: another tenant's customer yields no rows.
    sc = ok(tool(gw, tok, "run_python", {"code": prog, "input_tool": {
        "name": "lookup_invoices", "arguments": {"customer_id": world.cust[world.b][0]}}}))
    assert sc["stdout"] == []
    # A dry run checks the input tool but reads nothing.
    sc = ok(tool(gw, tok, "run_python", {"code": prog, "input_tool": {
        "name": "lookup_invoices", "arguments": {"customer_id": c}}}, dry_run=True))
    assert sc["plan"]["input_tool"] == "lookup_invoices" and sc["plan"]["input_bytes"] is None
    # Its arguments are checked against its own schema: a tool error naming input_tool.
    e = tool_error(tool(gw, tok, "run_python", {"code": prog, "input_tool": {
        "name": "lookup_invoices", "arguments": {"customer_id": "x"}}}))["error"]
    assert e["reason"] == "invalid_arguments" and e["argument"] == "input_tool"
    assert "customer_id" in e["message"]
    e = tool_error(tool(gw, tok, "run_python", {"code": prog, "input": 1, "input_tool": {
        "name": "lookup_invoices", "arguments": {"customer_id": c}}}))["error"]
    assert e["reason"] == "invalid_arguments"
    e = tool_error(tool(gw, tok, "run_python", {"code": prog, "input_tool": {"name": "run_sh"}}))["error"]
    assert e["reason"] == "invalid_arguments"       # not a read tool


def test_input_tool_needs_its_own_grant_and_bindings(gw, world):
    c = world.cust[world.a][0]
    tok = world.mint(world.a)                       # run_python only
    r = tool(gw, tok, "run_python", {"code": "print(1)", "input_tool": {
        "name": "lookup_invoices", "arguments": {"customer_id": c}}})
    assert r.status_code == 200 and err(r) == (403, "tool_not_granted")
    assert world.records_of(tok, "outcome", "reason", "tool")[-1] == {
        "outcome": "refused", "reason": "tool_not_granted", "tool": "run_python"}
    tok = world.mint(world.a, "--bind", f"customer_id={c}", "--tools", world.tools,
                     tools=["run_python", "lookup_invoices"])
    r = tool(gw, tok, "run_python", {"code": "print(1)", "input_tool": {
        "name": "lookup_invoices", "arguments": {"customer_id": c + 1}}})
    assert err(r) == (403, "binding_mismatch")
    sc = ok(tool(gw, tok, "run_python", {
        "code": "import json, sys\nprint(len(json.load(sys.stdin)))",
        "input_tool": {"name": "lookup_invoices", "arguments": {"customer_id": c}}}))
    assert sc["stdout"] == 2


def test_nothing_survives_between_calls(gw, world):
    tok = world.mint(world.a, tools=["run_sh"])
    sc = ok(tool(gw, tok, "run_sh", {"code": "echo secret > /tmp/mark; sleep 30 & cat /tmp/mark"}))
    assert sc["stdout"] == "secret\n"
    sc = ok(tool(gw, tok, "run_sh", {
        "code": "ls -A /tmp; test -e /tmp/mark && echo present || echo absent; "
                "ps -e -o comm= 2>/dev/null | grep -c sleep || true"}))
    assert sc["stdout"].splitlines()[-2:] == ["absent", "0"]


def test_per_tenant_concurrency_cap(cluster, world):
    d = Daemon(["--db", cluster.gateway_url, "--tools", str(world.tools), "--sandboxes", "4",
                "--sandboxes-per-tenant", "1", *RATES])
    try:
        toks = [world.mint(world.a, tools=["fetch_allowed"]), world.mint(world.a),
                world.mint(world.b)]
        # The first program says it has started (through the egress it is allowed), then
        # holds its tenant's only slot while the other two calls arrive.
        started = f"/started-{secrets.token_hex(4)}"
        first_prog = {"code": "import time, urllib.request\n"
                              f"urllib.request.urlopen('http://127.0.0.1:{world.listener.port}"
                              f"{started}', timeout=5).read()\n"
                              "time.sleep(4)\nprint('done')"}
        slow = {"code": "import time\ntime.sleep(2)\nprint('done')"}
        results = [None] * 3

        def run(i):
            results[i] = tool(d, toks[i], "fetch_allowed" if i == 0 else "run_python",
                              first_prog if i == 0 else slow)

        first = threading.Thread(target=run, args=(0,))
        first.start()
        wait_until(lambda: started in world.listener.hits, timeout=30,
                   what=f"{started} fetched by the first program")
        rest = [threading.Thread(target=run, args=(i,)) for i in (1, 2)]
        for t in rest:
            t.start()
        for t in [first, *rest]:
            t.join()
        assert ok(results[0])["stdout"] == "done\n"
        r = results[1]
        assert r.status_code == 429 and err(r) == (429, "concurrency_limited")
        assert r.json()["error"]["data"]["retryAfterSeconds"] == 1
        assert r.headers.get("Retry-After") == "1"
        assert ok(results[2])["stdout"] == "done\n"   # another tenant's program ran meanwhile
        assert world.records_of(toks[1], "outcome", "reason", "tool") == [
            {"outcome": "refused", "reason": "concurrency_limited", "tool": "run_python"}]
        # Once the first has finished, the tenant may run again.
        assert ok(tool(d, toks[1], "run_python", {"code": "print(2)"}))["stdout"] == 2
    finally:
        d.stop()


def test_egress_allowlist(gw, world):
    port = world.listener.port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        other = s.getsockname()[1]
    tok = world.mint(world.a, tools=["fetch_allowed", "run_python"])
    prog = f"""
import json, os, socket, urllib.error, urllib.request
out = {{"proxy": os.environ.get("HTTP_PROXY")}}
out["ok"] = urllib.request.urlopen("http://127.0.0.1:{port}/hi", timeout=5).read().decode()
try:
    urllib.request.urlopen("http://127.0.0.1:{other}/no", timeout=5)
    out["other"] = "reached"
except urllib.error.HTTPError as e:
    out["other"] = e.code
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    out["direct"] = "reached"
except OSError as e:
    out["direct"] = type(e).__name__
print(json.dumps(out))
"""
    before = list(world.listener.hits)
    sc = ok(tool(gw, tok, "fetch_allowed", {"code": prog}))
    assert sc["stdout"]["ok"] == "hello /hi"
    assert sc["stdout"]["other"] == 403
    assert sc["stdout"]["direct"] != "reached"
    assert sc["stdout"]["proxy"]
    assert world.listener.hits[len(before):] == ["/hi"]
    egress = world.record(sc["call_id"])["egress"]
    assert egress == [
        {"host": "127.0.0.1", "port": port, "allowed": True, "reason": "allowed"},
        {"host": "127.0.0.1", "port": other, "allowed": False, "reason": "not_listed"},
    ]
    # A tool without an allowlist has no proxy and no network.
    blind = ("import os, urllib.request\n"
             "print(os.environ.get('HTTP_PROXY'))\n"
             "try:\n"
             f"    urllib.request.urlopen('http://127.0.0.1:{port}/x', timeout=3)\n"
             "    print('reached')\n"
             "except OSError:\n"
             "    print('refused')")
    sc = ok(tool(gw, tok, "run_python", {"code": blind}))
    assert sc["stdout"] == "None\nrefused\n"
    assert world.listener.hits[len(before):] == ["/hi"]
    assert world.record(sc["call_id"])["egress"] == []


@pytest.mark.parametrize("what,arguments,fault", [
    ("code not a string", {"code": {"type": "integer"}}, "'code' of a code tool must be a required string"),
    ("code optional", {"code": {"type": "string"}, "_req": []}, "'code' of a code tool must be a required string"),
    ("unknown argument", {"code": {"type": "string"}, "lang": {"type": "string"}}, "not 'lang'"),
    ("input_tool not an object", {"code": {"type": "string"}, "input_tool": {"type": "string"}},
     "'input_tool' of a code tool must be an object"),
])
def test_manifest_arguments_are_checked(cluster, tmp_path, what, arguments, fault):
    required = arguments.pop("_req", ["code"])
    m = code_manifest("bad", "sh", {})
    m["arguments"]["properties"] = arguments
    m["arguments"]["required"] = required
    (tmp_path / "bad.json").write_text(json.dumps(m))
    p = ctl("tool", "check", "--tools", tmp_path, "--db", cluster.operator_url, check=False)
    assert p.returncode == 65 and fault in p.stderr, (what, p.stderr)


def test_code_tool_in_a_batch_is_refused(gw, world):
    """Only a single tools/call goes to the sandbox pool: in a batch a program would hold a
    database worker for as long as it runs."""
    tok = world.mint(world.a)
    batch = [{"jsonrpc": "2.0", "id": i, "method": "tools/call",
              "params": {"name": "run_sh", "arguments": {"code": "echo ran > /dev/stderr; sleep 2"}}}
             for i in range(2)]
    r = requests.post(gw.url + "/rpc", data=json.dumps(batch), timeout=30,
                      headers={**JSON, "Authorization": f"Bearer {tok}"})
    out = r.json()
    assert r.status_code == 200 and len(out) == 2
    for o in out:
        assert o["error"]["code"] == -32602 and o["error"]["data"]["reason"] == "invalid_params"
        assert "batch" in o["error"]["message"]
