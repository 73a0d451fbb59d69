"""Real clients against a real airlockd and PostgreSQL (tests/interop, pinned in its
package.json and installed by `make interop-deps`).

/mcp driven by the official MCP TypeScript SDK client: connect, list, reads, writes, code
tools and every kind of tool error come back as results whose structuredContent the SDK
validates against the tool's outputSchema (and a strict Ajv with ajv-formats too), and
refused calls as the JSON-RPC errors the spec prescribes; a write previewed, committed and
reverted as any MCP host can.  /rpc driven by a plain JSON-RPC 2.0 client library
(json-rpc-2.0), as an orchestrator that speaks no MCP would."""
import json
import secrets
import shutil
import subprocess

import pytest

from conftest import ROOT, Daemon
from world import World

INTEROP = ROOT / "tests" / "interop"
RATES = ["--rate-token", "1000/1000", "--rate-tenant", "1000/1000"]

# Every kind of value PostgreSQL returns for the types the gateway maps, at their edges:
# infinities, BC dates, years past 9999, numeric NaN and infinities, int8's extremes, NULLs.
EDGE_SQL = """
SELECT * FROM (VALUES
 (1, timestamptz '2026-11-27 16:44:36.123456+00', timestamp '2026-11-27 16:44:36',
  date '2026-11-27', numeric '12.50', int8 '9223372036854775807', float8 '1.5', real '0.25',
  uuid 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', int2 '-32768', int4 '2147483647',
  jsonb '{"a": [1, 2]}', true, text 'hello', interval '1 day 2 hours', time '12:30'),
 (2, 'infinity', 'infinity', 'infinity', 'NaN', '-9223372036854775808', 'NaN', 'Infinity',
  NULL, NULL, NULL, 'null', false, '', '-1 mons +2 days', '24:00'),
 (3, '-infinity', '-infinity', '-infinity', 'Infinity', '0', 'Infinity', '-Infinity',
  NULL, NULL, NULL, '"text"', NULL, NULL, NULL, NULL),
 (4, '0044-03-15 12:00:00+00 BC', '0044-03-15 12:00:00 BC', '0044-03-15 BC', '-Infinity',
  '-1', '-Infinity', '-0', NULL, NULL, NULL, '3', NULL, NULL, NULL, NULL),
 (5, '10000-01-01 00:00:00+00', '10000-01-01 00:00:00', '10000-01-01', '-0.000001',
  '42', '1e308', '3.4e38', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (6, '4713-01-01 00:00:00+00 BC', '4713-01-01 00:00:00 BC', '4713-01-01 BC', '1e100',
  NULL, '-0', '1e-45', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (7, '294276-12-31 23:59:59.999999+00', '294276-12-31 23:59:59.999999', '5874897-12-31',
  '0', NULL, '2.2250738585072014e-308', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (8, '0400-02-29 00:00:00.5+00', '0001-01-01 00:00:00', '0001-01-01', '-12345678901234567890.0001',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (9, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
) v(k, tstz, ts, d, n, i8, f8, f4, u, i2, i4, j, b, t, iv, tm)
WHERE k >= $from ORDER BY k
"""


def manifest(name, kind, statement, properties, required, **extra):
    m = {"name": name, "description": f"Test tool {name}.", "kind": kind,
         "arguments": {"type": "object", "properties": properties, "required": required,
                       "additionalProperties": False},
         "statement": statement}
    m.update(extra)
    return m


EXTRA_TOOLS = [
    manifest("edge_values", "read", EDGE_SQL,
             {"from": {"type": "integer", "minimum": 1, "default": 1}}, []),
    # A write over its cap: a customer with two invoices, at most one row.
    manifest("void_all_invoices", "write",
             "UPDATE billing.invoices SET status = 'void' WHERE customer_id = $customer_id "
             "AND deleted_at IS NULL RETURNING id, number, status",
             {"customer_id": {"type": "integer", "minimum": 1}}, ["customer_id"], max_rows=1),
    # A write whose argument the table's CHECK constraint can refuse.
    manifest("set_currency", "write",
             "UPDATE billing.invoices SET currency = $currency WHERE id = $invoice_id "
             "AND deleted_at IS NULL RETURNING id, currency",
             {"invoice_id": {"type": "integer", "minimum": 1},
              "currency": {"type": "string", "maxLength": 8}}, ["invoice_id", "currency"],
             max_rows=1),
    {"name": "tiny_sh", "description": "Test tool tiny_sh.", "kind": "code",
     "arguments": {"type": "object", "properties": {"code": {"type": "string"}},
                   "required": ["code"], "additionalProperties": False},
     "code": {"interpreter": "sh", "limits": {"time_s": 10, "stdout_max": 4096}}},
]


@pytest.fixture(scope="module")
def sdk():
    """The node program and the SDK, installed by `make interop-deps` (npm ci)."""
    node = shutil.which("node")
    assert node is not None, "node is missing: run `make bootstrap`"
    assert (INTEROP / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json").exists(), \
        "the MCP SDK is not installed: run `make interop-deps`"
    pinned = json.loads((INTEROP / "package.json").read_text())["dependencies"]
    got = json.loads((INTEROP / "node_modules" / "@modelcontextprotocol" / "sdk" /
                      "package.json").read_text())["version"]
    assert got == pinned["@modelcontextprotocol/sdk"], "stale node_modules: run `make interop-deps`"
    return node


@pytest.fixture(scope="module")
def world(cluster, tmp_path_factory):
    tools = tmp_path_factory.mktemp("sdk") / "tools"
    shutil.copytree(ROOT / "tools", tools)
    for m in EXTRA_TOOLS:
        (tools / f"{m['name']}.json").write_text(json.dumps(m))
    w = World(cluster, "sdk", tenants=1, tools=tools)
    c = w.add_customer(w.a, email=f"sdk@{w.a}.example", name="SDK customer")
    w.invoices = [w.add_invoice(w.a, c, number=f"{w.a}-1", amount="10.50"),
                  w.add_invoice(w.a, c, number=f"{w.a}-2", status="paid", amount="99.00",
                                issued="now()")]
    return w


@pytest.fixture(scope="module")
def gw(cluster, world):
    d = Daemon(["--db", cluster.gateway_url, "--tools", str(world.tools), *RATES])
    yield d
    d.stop()


def session(sdk, gw, token, calls):
    """Runs one SDK client session: connect, list, then each call.  Returns its report."""
    p = subprocess.run([sdk, str(INTEROP / "mcp_client.mjs"), gw.url + "/mcp", token],
                       input=json.dumps({"calls": calls}), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, f"mcp_client exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    return json.loads(p.stdout)


def clean(out):
    """Nothing the SDK or a validator logged (an unknown format, an ignored keyword), and
    every outputSchema compiles under the strict Ajv."""
    assert out["warnings"] == [], out["warnings"]
    assert out["schema_faults"] == {}, out["schema_faults"]


def result(entry):
    """The CallToolResult of a call the SDK accepted, checked by the strict Ajv too."""
    assert "error" not in entry, entry["error"]
    assert "strict_errors" not in entry, entry["strict_errors"]
    res = entry["result"]
    assert res["isError"] or json.loads(res["content"][0]["text"]) == res["structuredContent"]
    return res


def tool_error(entry, reason):
    res = result(entry)
    assert res["isError"] is True, res
    e = res["structuredContent"]["error"]
    assert e["reason"] == reason, e
    return res["structuredContent"]


def ok(entry):
    res = result(entry)
    assert res["isError"] is False, res
    return res["structuredContent"]


def test_connect_list_read_and_argument_errors(sdk, gw, world):
    tok = world.token(world.a, "lookup_invoices", "get_customer")
    out = session(sdk, gw, tok, [
        {"name": "lookup_invoices", "arguments": {"customer_id": world.cust[world.a][0]}},
        {"name": "lookup_invoices", "arguments": {"customer_id": "1"}},
        {"name": "lookup_invoices", "arguments": {"customer_id": 0}},
        {"name": "lookup_invoices", "arguments": {"customer_id": 1, "tenant": "x"}},
        {"name": "get_customer", "arguments": {}},
    ])
    assert out["server"]["name"] == "airlock"
    assert out["protocol"] in ("2025-06-18", "2025-11-25")
    assert sorted(out["tools"]) == ["get_customer", "lookup_invoices"]
    read, wrong_type, too_small, unexpected, missing = out["results"]
    sc = ok(read)
    assert sc["row_count"] == 2 and sc["truncated"] is False and sc["dry_run"] is False
    assert [r["number"] for r in sc["rows"]] == [f"{world.a}-2", f"{world.a}-1"]
    assert sc["rows"][0]["amount"] == "99.00" and isinstance(sc["rows"][0]["id"], str)
    for entry, argument in [(wrong_type, "customer_id"), (too_small, "customer_id"),
                            (unexpected, "tenant"), (missing, "customer_id")]:
        sc = tool_error(entry, "invalid_arguments")
        assert sc["error"]["argument"] == argument
        assert world.record(sc["call_id"], "outcome", "reason", "dry_run") == {"outcome": "tool_error",
                                               "reason": "invalid_arguments", "dry_run": False}
    clean(out)


def test_refused_calls_are_jsonrpc_errors(sdk, gw, world):
    tok = world.token(world.a, "lookup_invoices")
    out = session(sdk, gw, tok, [
        {"name": "no_such_tool", "arguments": {}},
        {"name": "get_customer", "arguments": {"customer_id": world.cust[world.a][0]}},
    ])
    unknown, not_granted = out["results"]
    assert "result" not in unknown and unknown["error"]["code"] == -32602
    assert unknown["error"]["data"]["reason"] == "tool_not_found"
    assert "result" not in not_granted and not_granted["error"]["code"] == 403
    assert not_granted["error"]["data"]["reason"] == "tool_not_granted"
    clean(out)


def test_every_value_matches_its_format(sdk, gw, world):
    tok = world.token(world.a, "edge_values")
    out = session(sdk, gw, tok, [{"name": "edge_values", "arguments": {}},
                                 {"name": "edge_values", "arguments": {"from": "x"}}])
    sc = ok(out["results"][0])
    rows = {r["k"]: r for r in sc["rows"]}
    assert len(rows) == 9
    assert rows[1]["tstz"] == "2026-11-27T16:44:36.123456+00:00"
    assert rows[1]["ts"] == "2026-11-27T16:44:36" and rows[1]["d"] == "2026-11-27"
    assert rows[1]["n"] == "12.50" and rows[1]["i8"] == "9223372036854775807"
    assert rows[2]["tstz"] == "infinity" and rows[2]["d"] == "infinity"
    assert rows[2]["n"] == "NaN" and rows[2]["f8"] == "NaN"
    assert rows[3]["tstz"] == "-infinity" and rows[3]["n"] == "Infinity"
    assert rows[4]["tstz"] == "0044-03-15 12:00:00+00 BC" and rows[4]["d"] == "0044-03-15 BC"
    assert rows[5]["tstz"] == "10000-01-01 00:00:00+00" and rows[5]["d"] == "10000-01-01"
    assert rows[6]["n"] == "1" + "0" * 100
    assert rows[8]["tstz"] == "0400-02-29T00:00:00.5+00:00"
    assert all(v is None for k, v in rows[9].items() if k != "k")
    tool_error(out["results"][1], "invalid_arguments")
    clean(out)


def test_writes_previews_replays_and_their_errors(sdk, gw, world):
    tok = world.token(world.a, "update_invoice_status", "void_all_invoices", "set_currency")
    inv = world.invoices[0]
    key = secrets.token_hex(8)
    out = session(sdk, gw, tok, [
        {"name": "update_invoice_status", "arguments": {"invoice_id": inv, "status": "void"},
         "params": {"dry_run": True}},
        {"name": "update_invoice_status", "arguments": {"invoice_id": inv, "status": "void"},
         "params": {"idempotency_key": key}},
        {"name": "update_invoice_status", "arguments": {"invoice_id": inv, "status": "void"},
         "params": {"idempotency_key": key}},
        {"name": "update_invoice_status", "arguments": {"invoice_id": inv, "status": "lost"},
         "params": {"idempotency_key": secrets.token_hex(8)}},
        {"name": "void_all_invoices", "arguments": {"customer_id": world.cust[world.a][0]},
         "params": {"dry_run": True}},
        {"name": "set_currency", "arguments": {"invoice_id": inv, "currency": "usd"},
         "params": {"dry_run": True}},
        {"name": "update_invoice_status", "arguments": {"invoice_id": inv, "status": "open"}},
    ])
    preview, commit, replay, bad, capped, constraint, keyless = out["results"]
    sc = ok(preview)
    assert sc["dry_run"] is True and sc["plan_id"] == sc["call_id"] and sc["row_count"] == 1
    assert sc["changes"][0]["action"] == "update" and sc["changes"][0]["after"]["status"] == "void"
    sc = ok(commit)
    assert sc["dry_run"] is False and sc["replayed"] is False and sc["rows"][0]["status"] == "void"
    again = ok(replay)
    assert again["replayed"] is True and again["call_id"] == sc["call_id"]
    assert tool_error(bad, "invalid_arguments")["error"]["argument"] == "status"
    e = tool_error(capped, "row_cap_exceeded")["error"]
    assert e["count"] == 2 and e["max_rows"] == 1
    assert tool_error(constraint, "constraint_violated")["call_id"]
    # A write without a key: refused, either as a JSON-RPC error or as a tool error the
    # model can correct, but never as a result the SDK rejects.
    if "error" in keyless:
        assert keyless["error"]["data"]["reason"] == "key_required", keyless
    else:
        tool_error(keyless, "key_required")
    assert world.cluster.psql(f"SET ROLE tenant_{world.a}; SELECT status, currency FROM "
                              f"billing.invoices WHERE id = {inv}").split()[-1] == "void|USD"
    clean(out)


def test_code_tools_and_their_errors(sdk, gw, world):
    tok = world.token(world.a, "run_sh", "tiny_sh")
    out = session(sdk, gw, tok, [
        {"name": "run_sh", "arguments": {"code": "echo '{\"sum\": 3}'"}},
        {"name": "run_sh", "arguments": {"code": "echo text; echo note >&2"}},
        {"name": "run_sh", "arguments": {"code": "echo hi"}, "params": {"dry_run": True}},
        {"name": "run_sh", "arguments": {"code": "echo partial; exit 3"}},
        {"name": "tiny_sh", "arguments": {"code": "head -c 100000 /dev/zero | tr '\\0' x"}},
        {"name": "run_sh", "arguments": {}},
    ])
    as_json, as_text, plan, failed, limited, no_code = out["results"]
    assert ok(as_json)["stdout"] == {"sum": 3}
    assert ok(as_text)["stdout"] == "text\n" and ok(as_text)["stderr"] == "note\n"
    sc = ok(plan)
    assert sc["dry_run"] is True and sc["plan"]["interpreter"] == "sh"
    e = tool_error(failed, "program_failed")["error"]
    assert e["exit_code"] == 3 and e["stdout"] == "partial\n"
    e = tool_error(limited, "sandbox_limit")["error"]
    assert e["limit"] == "output"
    assert tool_error(no_code, "invalid_arguments")["error"]["argument"] == "code"
    clean(out)


def test_whole_catalog_lists_cleanly(sdk, gw, world):
    names = sorted(p.stem for p in world.tools.glob("*.json"))
    out = session(sdk, gw, world.token(world.a, *names), [])
    assert sorted(out["tools"]) == names
    clean(out)


def test_write_from_a_host_preview_commit_revert(sdk, gw, world):
    """What any MCP host can do: the options in _meta (for adapters) or as the write's own
    airlock_* arguments (for hosts that pass only arguments); a missing key comes back as
    an isError result the model can act on; the change is reverted."""
    tok = world.token(world.a, "update_invoice_status", extra=("--revert",))
    out = world.cluster.psql(
        f"SET ROLE tenant_{world.a}; INSERT INTO billing.invoices (customer_id, number, "
        f"status, amount, issued_at) VALUES ({world.cust[world.a][0]}, '{world.a}-h', 'open', 5, "
        f"now()), ({world.cust[world.a][0]}, '{world.a}-i', 'open', 6, now()) RETURNING id")
    inv, inv2 = [int(x) for x in out.split("\n") if x.strip().isdigit()]
    args = {"invoice_id": inv, "status": "void"}
    key, undo = secrets.token_hex(8), secrets.token_hex(8)
    out = session(sdk, gw, tok, [
        {"name": "update_invoice_status", "arguments": args,
         "params": {"_meta": {"airlock/dryRun": True}}},
        {"name": "update_invoice_status", "arguments": args,
         "params": {"_meta": {"airlock/idempotencyKey": key,
                              "airlock/planId": "$ref:0.structuredContent.plan_id"}}},
        {"name": "update_invoice_status", "arguments": args,
         "params": {"_meta": {"airlock/idempotencyKey": key}}},
        {"method": "airlock/calls.revert",
         "params": {"call_id": "$ref:1.structuredContent.call_id", "idempotency_key": undo}},
        {"name": "update_invoice_status", "arguments": {"invoice_id": inv2, "status": "paid"}},
        {"name": "update_invoice_status",
         "arguments": {"invoice_id": inv2, "status": "paid", "airlock_dry_run": True}},
        {"name": "update_invoice_status",
         "arguments": {"invoice_id": inv2, "status": "paid", "airlock_idempotency_key": key + "x",
                       "airlock_plan_id": "$ref:5.structuredContent.plan_id"}},
    ])
    preview, commit, replay, revert, keyless, arg_preview, arg_commit = out["results"]
    assert ok(preview)["dry_run"] is True
    sc = ok(commit)
    assert sc["rows"][0]["status"] == "void" and sc["replayed"] is False
    assert ok(replay)["replayed"] is True
    assert "error" not in revert, revert
    assert revert["result"]["isError"] is False
    assert revert["result"]["structuredContent"]["changes"][0]["after"]["status"] == "open"
    sc = tool_error(keyless, "key_required")
    assert "airlock_idempotency_key" in sc["error"]["message"]
    assert ok(arg_preview)["dry_run"] is True
    assert ok(arg_commit)["rows"][0]["status"] == "paid"
    status = world.cluster.psql(f"SET ROLE tenant_{world.a}; SELECT string_agg(status, ',' "
                                f"ORDER BY id) FROM billing.invoices WHERE id IN ({inv}, {inv2})")
    assert status.split()[-1] == "open,paid"
    clean(out)


def rpc_session(sdk, gw, token, calls):
    """Runs the plain JSON-RPC client (json-rpc-2.0) on /rpc.  Returns its report."""
    p = subprocess.run([sdk, str(INTEROP / "rpc_client.mjs"), gw.url + "/rpc", token],
                       input=json.dumps({"calls": calls}), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, f"rpc_client exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    return json.loads(p.stdout)["results"]


def test_plain_jsonrpc_client_on_rpc(sdk, gw, world):
    """/rpc keeps JSON-RPC's own semantics: what /mcp answers as a correctable isError
    result (a missing key) is a JSON-RPC error here, as are refusals; batches work."""
    tok = world.token(world.a, "lookup_invoices", "update_invoice_status", extra=("--revert",))
    out = world.cluster.psql(
        f"SET ROLE tenant_{world.a}; INSERT INTO billing.invoices (customer_id, number, "
        f"status, amount, issued_at) VALUES ({world.cust[world.a][0]}, '{world.a}-r', 'open', 7, "
        f"now()) RETURNING id")
    inv = [int(x) for x in out.split("\n") if x.strip().isdigit()][0]
    args = {"invoice_id": inv, "status": "void"}
    key = secrets.token_hex(8)
    res = rpc_session(sdk, gw, tok, [
        {"method": "airlock/tokens.self"},
        {"method": "tools/list"},
        {"method": "tools/call", "params": {"name": "lookup_invoices",
                                            "arguments": {"customer_id": world.cust[world.a][0]}}},
        {"method": "tools/call", "params": {"name": "lookup_invoices",
                                            "arguments": {"customer_id": "x"}}},
        {"method": "tools/call", "params": {"name": "update_invoice_status", "arguments": args,
                                            "dry_run": True}},
        {"method": "tools/call", "params": {"name": "update_invoice_status", "arguments": args,
                                            "idempotency_key": key,
                                            "plan_id": "$ref:4.structuredContent.plan_id"}},
        {"method": "airlock/calls.revert", "params": {"call_id": "$ref:5.structuredContent.call_id",
                                                      "idempotency_key": key + "-undo"}},
        {"method": "tools/call", "params": {"name": "update_invoice_status", "arguments": args}},
        {"method": "tools/call", "params": {"name": "no_such_tool", "arguments": {}}},
        {"method": "no/such/method"},
        {"batch": [{"method": "ping"}, {"method": "tools/call", "params": {
            "name": "lookup_invoices", "arguments": {"customer_id": world.cust[world.a][0]}}}]},
    ])
    me, listed, read, bad, preview, commit, revert, keyless, unknown, nomethod, batch = res
    assert me["result"]["tenant"] == world.a
    assert sorted(t["name"] for t in listed["result"]["tools"]) == ["lookup_invoices",
                                                                    "update_invoice_status"]
    assert read["result"]["isError"] is False and read["result"]["structuredContent"]["row_count"] >= 1
    assert bad["result"]["isError"] is True
    assert bad["result"]["structuredContent"]["error"]["reason"] == "invalid_arguments"
    assert preview["result"]["structuredContent"]["dry_run"] is True
    assert commit["result"]["structuredContent"]["rows"][0]["status"] == "void"
    assert revert["result"]["structuredContent"]["changes"][0]["after"]["status"] == "open"
    assert keyless["error"]["code"] == -32602 and keyless["error"]["data"]["reason"] == "key_required"
    assert unknown["error"]["code"] == -32602 and unknown["error"]["data"]["reason"] == "tool_not_found"
    assert nomethod["error"]["code"] == -32601
    assert "result" in batch["batch"][0] and batch["batch"][1]["result"]["isError"] is False
    status = world.cluster.psql(f"SET ROLE tenant_{world.a}; SELECT status FROM "
                                f"billing.invoices WHERE id = {inv}")
    assert status.split()[-1] == "open"
