"""/mcp as MCP hosts meet it, against a real airlockd and PostgreSQL: annotations and titles
that tell the truth, writes from hosts that pass only arguments (or options in _meta), what a
model can correct as isError results, both MCP eras (initialize, and the stateless 2026-07-28
revision with its headers, versions and cache hints), HTTP statuses, Origin, cancellation by
closing the connection, W3C trace context, and the official conformance suite's server
scenarios (tests/conformance, pinned; Node.js 22 from the npm registry)."""
import base64
import functools
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import ROOT, Daemon, ctl
from world import JSON, NO_LIMITS, World, err, ok, post, result, tool, tool_error, wait_until

MODERN = "2026-07-28"
CONFORMANCE = ROOT / "tests" / "conformance"


def manifest(name, kind, statement, properties, required, **extra):
    m = {"name": name, "description": f"Test tool {name}.", "kind": kind,
         "arguments": {"type": "object", "properties": properties, "required": required,
                       "additionalProperties": False}}
    if statement is not None:
        m["statement"] = statement
    m.update(extra)
    return m


SH = {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"],
      "additionalProperties": False}
EXTRA_TOOLS = [
    # A read that takes its time: closing the connection must cancel it on the server.
    manifest("slow_read", "read", "SELECT pg_sleep($seconds)::text AS slept",
             {"seconds": {"type": "number", "minimum": 0, "maximum": 30}}, ["seconds"],
             timeout_ms=30000),
    # A write that declares itself idempotent and keeps its call options out of its schema.
    manifest("set_note_body", "write",
             "UPDATE billing.support_notes SET body = $body WHERE id = $note_id "
             "AND deleted_at IS NULL RETURNING id, body",
             {"note_id": {"type": "integer", "minimum": 1},
              "body": {"type": "string", "minLength": 1, "maxLength": 200}},
             ["note_id", "body"], max_rows=1, idempotent=True, destructive=False,
             call_options=False),
    {"name": "egress_sh", "description": "A code tool with egress.", "kind": "code",
     "arguments": SH, "code": {"interpreter": "sh", "allow": ["api.example.com:443"]}},
]


@pytest.fixture(scope="module")
def world(cluster, tmp_path_factory):
    tools = tmp_path_factory.mktemp("mcp") / "tools"
    shutil.copytree(ROOT / "tools", tools)
    for m in EXTRA_TOOLS:
        (tools / f"{m['name']}.json").write_text(json.dumps(m))
    w = World(cluster, "mcp", tenants=1, tools=tools)
    w.add_customer(w.a, email=f"m@{w.a}.example", name="MCP customer")
    w.add_customer(w.a, email=f"o@{w.a}.example", name="Other customer")
    return w


@pytest.fixture(scope="module")
def gw(cluster, world):
    d = Daemon(["--db", cluster.gateway_url, "--tools", str(world.tools),
                "--allow-origin", "https://app.example", *NO_LIMITS])
    yield d
    # A clean stop (under the sanitizer build: no leak, no error report).
    assert d.stop() == 0, d.logtext()[-3000:]


# /mcp unless told otherwise.
mcp_post = functools.partial(post, path="/mcp")
mcp_tool = functools.partial(tool, path="/mcp")


def last_record(world, tool):
    """id, outcome, reason and trace_id of the latest record of a tool in world's tenant."""
    out = world.cluster.psql(
        "SELECT json_build_object('id', id, 'outcome', outcome, 'reason', reason,"
        " 'trace_id', trace_id) FROM airlock.calls "
        f"WHERE tenant = '{world.a}' AND tool = '{tool}' ORDER BY seq DESC LIMIT 1")
    return json.loads(out) if out.strip() else None


def listed(d, token, path="/mcp"):
    r = mcp_post(d, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, token, path=path)
    return {t["name"]: t for t in result(r)["tools"]}


# ---------------------------------------------------------------------------------------
# 1. Schemas and annotations that tell the truth

def test_titles_and_annotations(gw, world):
    tools = listed(gw, world.token(world.a, "lookup_invoices", "update_invoice_status", "add_support_note",
                                  "set_note_body", "run_sh", "egress_sh", "slow_read", catalog=True))
    for t in tools.values():
        assert isinstance(t["title"], str) and t["title"], t
        assert t["annotations"]["title"] == t["title"]
    # A manifest's title, else one made from the name.
    assert tools["update_invoice_status"]["title"] == "Change an invoice's status"
    assert tools["slow_read"]["title"] == "Slow read"
    assert tools["egress_sh"]["title"] == "Egress sh"
    ann = {n: t["annotations"] for n, t in tools.items()}
    assert ann["lookup_invoices"] == {"title": "Look up invoices", "readOnlyHint": True,
                                      "destructiveHint": False, "idempotentHint": True,
                                      "openWorldHint": False}
    # Writes: destructive unless the manifest says otherwise; idempotent only when it says so.
    assert ann["update_invoice_status"]["destructiveHint"] is True
    assert ann["update_invoice_status"]["idempotentHint"] is False
    assert ann["add_support_note"]["destructiveHint"] is False
    assert ann["set_note_body"]["idempotentHint"] is True
    assert ann["set_note_body"]["destructiveHint"] is False
    # Code: a world beyond the gateway only with egress.
    assert ann["run_sh"]["openWorldHint"] is False
    assert ann["egress_sh"]["openWorldHint"] is True
    assert ann["run_sh"]["readOnlyHint"] is False and ann["run_sh"]["idempotentHint"] is False


def test_manifest_keys_are_checked(cluster, tmp_path):
    for bad, fault in [
        ({"idempotent": "yes"}, "idempotent must be true or false"),
        ({"call_options": 1}, "call_options must be true or false"),
    ]:
        d = tmp_path / secrets.token_hex(3)
        d.mkdir()
        m = manifest("w", "write", "UPDATE billing.support_notes SET body = $body WHERE "
                     "id = 1 RETURNING id", {"body": {"type": "string"}}, ["body"], **bad)
        (d / "w.json").write_text(json.dumps(m))
        p = ctl("tool", "check", "--tools", d, "--db", cluster.operator_url, check=False)
        assert p.returncode != 0 and fault in p.stderr, p.stderr
    # The call options' names are the gateway's: no tool may declare one.
    d = tmp_path / "reserved"
    d.mkdir()
    m = manifest("r", "read", "SELECT $airlock_dry_run::text AS x",
                 {"airlock_dry_run": {"type": "string"}}, [])
    (d / "r.json").write_text(json.dumps(m))
    p = ctl("tool", "check", "--tools", d, "--db", cluster.operator_url, check=False)
    assert p.returncode != 0 and "airlock_" in p.stderr, p.stderr


# ---------------------------------------------------------------------------------------
# 2. Writes from any MCP host

def test_write_options_in_meta(gw, world):
    tok = world.token(world.a, "update_invoice_status", catalog=True)
    inv = world.add_invoice(world.a, amount="10.00", issued="now()")
    args = {"invoice_id": inv, "status": "void"}
    pv = ok(mcp_tool(gw, tok, "update_invoice_status", args, _meta={"airlock/dryRun": True}))
    assert pv["dry_run"] is True and pv["plan_id"] == pv["call_id"]
    assert world.status(world.a, inv) == "open"
    key = f"meta-{secrets.token_hex(6)}"
    meta = {"airlock/idempotencyKey": key, "airlock/planId": pv["plan_id"]}
    done = ok(mcp_tool(gw, tok, "update_invoice_status", args, _meta=meta))
    assert done["dry_run"] is False and done["rows"][0]["status"] == "void"
    assert world.status(world.a, inv) == "void"
    rec = world.record(done["call_id"])
    assert rec["idempotency_key"] == key and rec["plan_id"] == pv["plan_id"] and rec["outcome"] == "ok"
    again = ok(mcp_tool(gw, tok, "update_invoice_status", args, _meta=meta))
    assert again["replayed"] is True and again["call_id"] == done["call_id"]
    # The same through /rpc: _meta is accepted there too.
    inv2 = world.add_invoice(world.a, amount="10.00", issued="now()")
    sc = ok(mcp_tool(gw, tok, "update_invoice_status", {"invoice_id": inv2, "status": "paid"},
                     path="/rpc", _meta={"airlock/idempotencyKey": f"r-{secrets.token_hex(6)}"}))
    assert sc["rows"][0]["status"] == "paid"


def test_write_options_as_arguments(gw, world):
    tok = world.token(world.a, "update_invoice_status", "lookup_invoices", "set_note_body", catalog=True)
    tools = listed(gw, tok)
    props = tools["update_invoice_status"]["inputSchema"]["properties"]
    assert props["airlock_dry_run"]["type"] == "boolean"
    assert props["airlock_idempotency_key"]["type"] == "string"
    assert props["airlock_plan_id"]["type"] == "string"
    assert tools["update_invoice_status"]["inputSchema"]["required"] == ["invoice_id", "status"]
    # Reads take none; a write whose manifest says call_options false neither.
    assert not [p for p in tools["lookup_invoices"]["inputSchema"]["properties"]
                if p.startswith("airlock_")]
    assert not [p for p in tools["set_note_body"]["inputSchema"]["properties"]
                if p.startswith("airlock_")]
    inv = world.add_invoice(world.a, amount="10.00", issued="now()")
    pv = ok(mcp_tool(gw, tok, "update_invoice_status",
                     {"invoice_id": inv, "status": "void", "airlock_dry_run": True}))
    assert pv["dry_run"] is True
    key = f"arg-{secrets.token_hex(6)}"
    done = ok(mcp_tool(gw, tok, "update_invoice_status",
                       {"invoice_id": inv, "status": "void", "airlock_idempotency_key": key,
                    "airlock_plan_id": pv["plan_id"]}))
    assert world.status(world.a, inv) == "void"
    rec = world.record(done["call_id"])
    assert rec["idempotency_key"] == key and rec["plan_id"] == pv["plan_id"]
    assert rec["arguments"] == {"invoice_id": inv, "status": "void"}
    # An option given twice with different values is malformed, not a guess.
    r = mcp_tool(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "void",
                 "airlock_idempotency_key": "a"}, idempotency_key="b")
    assert r.status_code == 400 and err(r) == (-32602, "invalid_params")
    # A wrong type in an argument option is a tool error naming it.
    sc = tool_error(mcp_tool(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "void",
                             "airlock_dry_run": "yes"}), "invalid_arguments")
    assert sc["error"]["argument"] == "airlock_dry_run"
    # Where the tool does not take them, they are arguments it does not know.
    note = world.add_note(world.a, "first")
    sc = tool_error(mcp_tool(gw, tok, "set_note_body", {"note_id": note, "body": "x",
                             "airlock_dry_run": True}), "invalid_arguments")
    assert sc["error"]["argument"] == "airlock_dry_run"


def test_correctable_refusals_are_tool_errors_on_mcp(gw, world):
    tok = world.token(world.a, "update_invoice_status", catalog=True)
    bound = world.token(world.a, "get_customer", extra=("--bind", f"customer_id={world.cust[world.a][0]}"), catalog=True)
    inv = world.add_invoice(world.a, amount="10.00", issued="now()")
    args = {"invoice_id": inv, "status": "void"}
    # No key.
    sc = tool_error(mcp_tool(gw, tok, "update_invoice_status", args), "key_required")
    assert world.record(sc["call_id"])["outcome"] == "refused"
    assert world.record(sc["call_id"])["reason"] == "key_required"
    code, reason = err(mcp_tool(gw, tok, "update_invoice_status", args, path="/rpc"))
    assert (code, reason) == (-32602, "key_required")
    # A key reused with other arguments.
    key = f"k-{secrets.token_hex(6)}"
    ok(mcp_tool(gw, tok, "update_invoice_status", args, idempotency_key=key))
    other = {"invoice_id": inv, "status": "paid"}
    tool_error(mcp_tool(gw, tok, "update_invoice_status", other, idempotency_key=key), "key_mismatch")
    assert err(mcp_tool(gw, tok, "update_invoice_status", other, path="/rpc",
                          idempotency_key=key)) == (422, "key_mismatch")
    # A stale plan: the row changed since the preview.
    inv2 = world.add_invoice(world.a, amount="10.00", issued="now()")
    pv = ok(mcp_tool(gw, tok, "update_invoice_status", {"invoice_id": inv2, "status": "void"},
                     dry_run=True))
    world.sql(world.a, f"UPDATE billing.invoices SET amount = 11 WHERE id = {inv2}")
    tool_error(mcp_tool(gw, tok, "update_invoice_status", {"invoice_id": inv2, "status": "void"},
                        idempotency_key=f"s-{secrets.token_hex(6)}", plan_id=pv["plan_id"]),
               "plan_stale")
    # A binding broken.
    sc = tool_error(mcp_tool(gw, bound, "get_customer", {"customer_id": world.cust[world.a][1]}),
                    "binding_mismatch")
    assert world.record(sc["call_id"])["outcome"] == "refused"
    assert err(mcp_tool(gw, bound, "get_customer", {"customer_id": world.cust[world.a][1]},
                          path="/rpc")) == (403, "binding_mismatch")
    # What a model cannot correct stays a JSON-RPC error on /mcp too.
    r = mcp_tool(gw, tok, "get_customer", {"customer_id": world.cust[world.a][0]})
    assert r.status_code == 200 and err(r) == (403, "tool_not_granted")


# ---------------------------------------------------------------------------------------
# 3. Both MCP eras, statuses and headers

def modern_meta(version=MODERN, caps=True):
    m = {"io.modelcontextprotocol/protocolVersion": version,
         "io.modelcontextprotocol/clientInfo": {"name": "scripted", "version": "1"}}
    if caps:
        m["io.modelcontextprotocol/clientCapabilities"] = {}
    return m


def modern(d, method, params=None, token=None, headers=None, version=MODERN, name=None,
           rid=1):
    """A 2026-07-28 request: the version in _meta and the standard headers."""
    p = dict(params or {})
    p["_meta"] = {**modern_meta(version), **p.get("_meta", {})}
    h = {"MCP-Protocol-Version": version, "Mcp-Method": method}
    if name is not None:
        h["Mcp-Name"] = name
    h.update(headers or {})
    return mcp_post(d, {"jsonrpc": "2.0", "id": rid, "method": method, "params": p}, token,
                    headers=h)


def test_initialize_offers_both_legacy_revisions(gw):
    for v in ("2025-11-25", "2025-06-18"):
        r = mcp_post(gw, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": v, "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}})
        assert result(r)["protocolVersion"] == v
        assert "resultType" not in result(r)


def test_modern_era_discover_list_call(gw, world):
    r = modern(gw, "server/discover")
    res = result(r)
    assert res["resultType"] == "complete"
    assert res["supportedVersions"] == [MODERN, "2025-11-25", "2025-06-18"]
    assert "tools" in res["capabilities"]
    assert res["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "airlock"
    assert res["ttlMs"] >= 0 and res["cacheScope"] == "public"
    tok = world.token(world.a, "lookup_invoices", "update_invoice_status", catalog=True)
    res = result(modern(gw, "tools/list", token=tok))
    assert res["resultType"] == "complete"
    assert res["cacheScope"] == "private" and res["ttlMs"] > 0
    assert sorted(t["name"] for t in res["tools"]) == ["lookup_invoices", "update_invoice_status"]
    assert res["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "airlock"
    res = result(modern(gw, "tools/call", {"name": "lookup_invoices",
                                           "arguments": {"customer_id": world.cust[world.a][0]}},
                        token=tok, name="lookup_invoices"))
    assert res["resultType"] == "complete" and res["isError"] is False
    # A write, preview then commit, options in _meta.
    inv = world.add_invoice(world.a, amount="10.00", issued="now()")
    args = {"invoice_id": inv, "status": "void"}
    pv = result(modern(gw, "tools/call", {"name": "update_invoice_status", "arguments": args,
                                          "_meta": {"airlock/dryRun": True}},
                       token=tok, name="update_invoice_status"))["structuredContent"]
    res = result(modern(gw, "tools/call", {"name": "update_invoice_status", "arguments": args,
                                           "_meta": {"airlock/planId": pv["plan_id"],
                                                     "airlock/idempotencyKey": "m-" + pv["plan_id"]}},
                        token=tok, name="update_invoice_status"))
    assert res["isError"] is False and world.status(world.a, inv) == "void"
    # Legacy answers carry no resultType.
    assert "resultType" not in result(mcp_tool(gw, tok, "lookup_invoices",
                                               {"customer_id": world.cust[world.a][0]}))


def test_modern_header_validation(gw, world):
    tok = world.token(world.a, "lookup_invoices", catalog=True)
    args = {"name": "lookup_invoices", "arguments": {"customer_id": world.cust[world.a][0]}}

    def refused(r, code, status=400):
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code, r.text
        return r.json()["error"]

    # Mcp-Method differs from the body, or is missing.
    refused(modern(gw, "tools/call", args, token=tok, name="lookup_invoices",
                   headers={"Mcp-Method": "tools/list"}), -32020)
    h = {"MCP-Protocol-Version": MODERN}
    refused(mcp_post(gw, {"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                      "params": {"_meta": modern_meta()}}, tok, headers=h), -32020)
    # Mcp-Name differs, is missing, or is given in the base64 form.
    refused(modern(gw, "tools/call", args, token=tok, name="get_customer"), -32020)
    refused(modern(gw, "tools/call", args, token=tok), -32020)
    enc = "=?base64?" + base64.b64encode(b"lookup_invoices").decode() + "?="
    assert result(modern(gw, "tools/call", args, token=tok, name=enc))["isError"] is False
    refused(modern(gw, "tools/call", args, token=tok, name="=?base64?!!!?="), -32020)
    # The version in the header and the body differ.
    r = mcp_post(gw, {"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                  "params": {"_meta": modern_meta()}}, tok,
             headers={"MCP-Protocol-Version": "2025-11-25", "Mcp-Method": "tools/list"})
    refused(r, -32020)
    # A version not spoken here, in the header or the body.
    e = refused(modern(gw, "tools/list", token=tok, version="1900-01-01"), -32022)
    assert e["data"]["supported"] == [MODERN, "2025-11-25", "2025-06-18"]
    assert e["data"]["requested"] == "1900-01-01"
    r = mcp_post(gw, {"jsonrpc": "2.0", "id": 7, "method": "ping"},
                 headers={"MCP-Protocol-Version": "1900-01-01"})
    e = refused(r, -32022)
    assert r.json()["id"] == 7 and e["data"]["supported"][0] == MODERN
    # A modern request without its client capabilities is malformed.
    r = mcp_post(gw, {"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                  "params": {"_meta": modern_meta(caps=False)}}, tok,
             headers={"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"})
    refused(r, -32602)
    # Legacy requests with mirrored headers are held to them too.
    r = mcp_post(gw, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Mcp-Method": "tools/list"})
    refused(r, -32020)


def test_statuses_on_mcp_and_rpc(gw, world):
    tok = world.token(world.a, "lookup_invoices", catalog=True)
    # An unknown method: 404 on /mcp, a JSON-RPC error with 200 on /rpc.
    for path, status in [("/mcp", 404), ("/rpc", 200)]:
        r = mcp_post(gw, {"jsonrpc": "2.0", "id": 1, "method": "resources/list"}, tok, path=path)
        assert r.status_code == status and r.json()["error"]["code"] == -32601
    # Malformed input: 400 on /mcp, 200 on /rpc.
    for body, code in [("{not json", -32700), ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, -32600),
                       ({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                         "params": {"name": 5}}, -32602)]:
        for path, status in [("/mcp", 400), ("/rpc", 200)]:
            r = mcp_post(gw, body, tok, path=path)
            assert r.status_code == status, (path, body, r.text)
            assert r.json()["error"]["code"] == code
    # A notification of a method not served is still accepted.
    r = mcp_post(gw, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}})
    assert r.status_code == 202


def test_401_says_why_in_www_authenticate(gw, world):
    for path in ("/mcp", "/rpc"):
        r = mcp_post(gw, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, path=path)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="airlock"'
        r = mcp_post(gw, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, "alk_" + "A" * 43,
                     path=path)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="airlock", error="invalid_token"'


def test_origin_of_the_loopback_listener_is_accepted(gw):
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    for origin, status in [(f"http://127.0.0.1:{gw.port}", 200),
                           (f"http://localhost:{gw.port}", 200),
                           ("https://app.example", 200),
                           (f"http://127.0.0.1:{gw.port + 1}", 403),
                           (f"https://127.0.0.1:{gw.port}", 403),
                           ("http://evil.example.com", 403), ("null", 403)]:
        r = mcp_post(gw, ping, headers={"Origin": origin})
        assert r.status_code == status, origin


def test_origin_of_a_public_listener_is_not(cluster, world):
    # Listening on every address, only configured origins pass.
    port = None
    d = Daemon(["--db", cluster.gateway_url, "--tools", str(world.tools)])
    try:
        port = d.port
    finally:
        d.stop()
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    p = subprocess.Popen([str(ROOT / "build" / "airlockd"), "--listen", f"0.0.0.0:{port}",
                          "--db", cluster.gateway_url, "--tools", str(world.tools)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def live():
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            except requests.RequestException:
                return None
        wait_until(live, what="airlockd listening on 0.0.0.0")
        r = requests.post(f"http://127.0.0.1:{port}/mcp", data=json.dumps(ping),
                          headers={**JSON, "Origin": f"http://127.0.0.1:{port}"}, timeout=5)
        assert r.status_code == 403
    finally:
        p.terminate()
        p.wait(15)


def test_closing_the_connection_cancels_the_statement(gw, world):
    """The statement sleeps 20 s; the client leaves after 1 s.  Cancelled on the server, the
    call ends (and is recorded) at once; otherwise its record would come 20 s later."""
    tok = world.token(world.a, "slow_read", catalog=True)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "slow_read", "arguments": {"seconds": 20}}})
    req = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           f"Authorization: Bearer {tok}\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
    before = last_record(world, "slow_read")
    s = socket.create_connection(("127.0.0.1", gw.port))
    s.sendall(req)
    time.sleep(1)          # the client leaves after a second: part of what is tested
    s.close()
    rec = wait_until(lambda: (r := last_record(world, "slow_read")) != before and r, timeout=4,
                     what="the statement ended after the client left")
    assert (rec["outcome"], rec["reason"]) == ("error", "cancelled")
    dur = float(world.cluster.psql(f"SELECT duration_ms FROM airlock.calls WHERE id = '{rec['id']}'"))
    assert 900 < dur < 5000, dur
    lines = [json.loads(x) for x in gw.logtext().splitlines() if x.startswith("{")]
    assert any(x.get("cancelled") is True and x.get("rpc") == "tools/call" for x in lines)


# ---------------------------------------------------------------------------------------
# 7. Trace context

def test_traceparent_goes_to_record_log_and_meta(gw, world):
    tok = world.token(world.a, "lookup_invoices", catalog=True)
    trace = secrets.token_hex(16)
    tp = f"00-{trace}-{secrets.token_hex(8)}-01"
    for path in ("/mcp", "/rpc"):
        res = result(mcp_tool(gw, tok, "lookup_invoices", {"customer_id": world.cust[world.a][0]},
                              path=path, headers={"traceparent": tp}))
        assert res["_meta"]["airlock/traceId"] == trace
        assert world.record(res["structuredContent"]["call_id"])["trace_id"] == trace
    lines = [json.loads(x) for x in gw.logtext().splitlines() if x.startswith("{")]
    assert any(x.get("trace_id") == trace and x.get("msg") == "request" for x in lines)
    # In _meta, for hosts that propagate it there (the header wins).
    trace2 = secrets.token_hex(16)
    res = result(mcp_tool(gw, tok, "lookup_invoices", {"customer_id": world.cust[world.a][0]},
                          _meta={"traceparent": f"00-{trace2}-{secrets.token_hex(8)}-00"}))
    assert res["_meta"]["airlock/traceId"] == trace2
    # Invalid ones are ignored.
    for bad in ["00-" + "0" * 32 + "-" + secrets.token_hex(8) + "-01",
                f"00-{trace}-{'0' * 16}-01", f"ff-{trace}-{secrets.token_hex(8)}-01",
                f"00-{trace.upper()}-{secrets.token_hex(8)}-01", f"00-{trace}-01",
                f"00-{trace}-{secrets.token_hex(8)}-01-extra", "garbage"]:
        res = result(mcp_tool(gw, tok, "lookup_invoices", {"customer_id": world.cust[world.a][0]},
                              headers={"traceparent": bad}))
        assert "_meta" not in res or "airlock/traceId" not in res["_meta"], bad
        assert world.record(res["structuredContent"]["call_id"])["trace_id"] is None


def test_trace_id_is_not_in_the_digest(gw, world):
    """The trace id is the client's word, kept beside the record, not part of what its
    digest covers: verify still passes."""
    tok = world.token(world.a, "lookup_invoices", catalog=True)
    trace = secrets.token_hex(16)
    res = result(mcp_tool(gw, tok, "lookup_invoices", {"customer_id": world.cust[world.a][0]},
                          headers={"traceparent": f"00-{trace}-{secrets.token_hex(8)}-01"}))
    cid = res["structuredContent"]["call_id"]
    canon = world.cluster.psql(f"SELECT airlock.call_canonical(c) FROM airlock.calls c "
                               f"WHERE id = '{cid}'")
    assert "trace" not in canon
    ctl("audit", "seal", "--db", world.cluster.operator_url)
    p = ctl("audit", "verify", "--tenant", world.a, "--db", world.cluster.operator_url,
            check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    # The export carries it beside the record.
    p = ctl("audit", "export", "--format", "jsonl", "--tenant", world.a, "--db",
            world.cluster.operator_url)
    exported = {r["id"]: r for r in map(json.loads, p.stdout.splitlines())}
    assert exported[cid]["trace_id"] == trace


# ---------------------------------------------------------------------------------------
# 4. The official conformance suite's server scenarios

class BearerForwarder:
    """A loopback forwarder that adds a bearer token to what it passes on: the conformance
    suite's client sends none, and tools/list is per token."""

    def __init__(self, upstream, token):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                h = {k: v for k, v in self.headers.items()
                     if k.lower() not in ("host", "content-length", "connection")}
                h["Authorization"] = f"Bearer {token}"
                r = requests.post(upstream + self.path, data=body, headers=h, timeout=30)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def do_GET(self):
                r = requests.get(upstream + self.path, timeout=30)
                self.send_response(r.status_code)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def do_DELETE(self):
                self.do_GET()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        outer.server = self.server

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def conformance():
    node = CONFORMANCE / "node_modules" / ".bin" / "node"
    suite = CONFORMANCE / "node_modules" / "@modelcontextprotocol" / "conformance"
    assert node.exists() and (suite / "package.json").exists(), \
        "the conformance suite is not installed: run `make interop-deps`"
    pinned = json.loads((CONFORMANCE / "package.json").read_text())["dependencies"]
    got = json.loads((suite / "package.json").read_text())["version"]
    assert got == pinned["@modelcontextprotocol/conformance"], "stale node_modules"
    return node, suite / "dist" / "index.js"


def run_scenario(conformance, url, scenario, tmp_path):
    node, suite = conformance
    out = tmp_path / scenario
    p = subprocess.run([str(node), str(suite), "server", "--url", url, "--scenario", scenario,
                        "-o", str(out)], capture_output=True, text=True, timeout=120)
    checks = [c for f in out.rglob("checks.json") for c in json.loads(f.read_text())]
    return p, checks


# The server scenarios of the pinned suite that apply to a tool gateway; the README lists
# the others and why they do not apply.
SCENARIOS = ["server-initialize", "ping", "tools-list", "dns-rebinding-protection"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_scenario(conformance, gw, world, tmp_path, scenario):
    url = gw.url + "/mcp"
    fwd = None
    if scenario == "tools-list":
        fwd = BearerForwarder(gw.url, world.token(world.a, "lookup_invoices", "update_invoice_status",
                                                 "run_sh", catalog=True))
        url = fwd.url + "/mcp"
    try:
        p, checks = run_scenario(conformance, url, scenario, tmp_path)
    finally:
        if fwd:
            fwd.close()
    assert checks, p.stdout + p.stderr
    failed = [c for c in checks if c["status"] in ("FAILURE", "WARNING")]
    assert not failed, json.dumps(failed, indent=1)
    assert p.returncode == 0, p.stdout + p.stderr
