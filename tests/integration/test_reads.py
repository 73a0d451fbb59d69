"""The read path against a real airlockd and PostgreSQL: results and their types, tenant
isolation, arguments as data, argument and parameter errors, the row cap, a statement that
changes its role, errors that leak nothing, and the call record of reads."""
import json
import secrets
import shutil
import time

import pytest

from conftest import ROOT
from world import READ_TOOLS, billing_world, err, rpc, tool, wait_until


@pytest.fixture(scope="module")
def world(cluster):
    return billing_world(cluster, "r", READ_TOOLS)


@pytest.fixture
def gw(start_daemon, world):
    return start_daemon("--admin-key-file", world.admin_key)


def test_lookup_invoices_for_own_customer(gw, world):
    tok = world.mint(world.a)
    r = tool(gw, tok, "lookup_invoices", {"customer_id": world.cust[world.a][0]})
    assert r.status_code == 200
    res = r.json()["result"]
    assert res["isError"] is False
    sc = res["structuredContent"]
    assert json.loads(res["content"][0]["text"]) == sc
    assert sc["row_count"] == 2 and sc["truncated"] is False and sc["dry_run"] is False
    numbers = [row["number"] for row in sc["rows"]]
    assert numbers == [f"{world.a}-2", f"{world.a}-1"]      # newest first; soft-deleted -3 absent
    big = sc["rows"][0]
    assert big["amount"] == "9999999999.99"                 # numeric: a string, exactly
    assert isinstance(big["id"], str)                        # int8: a string
    assert big["issued_at"].endswith("+00:00") and "T" in big["issued_at"]
    assert "tenant" not in big
    assert len(sc["call_id"]) == 36


def test_other_tenants_customer_is_empty(gw, world):
    tok = world.mint(world.a)
    for cid in world.cust[world.b]:
        r = tool(gw, tok, "lookup_invoices", {"customer_id": cid})
        assert r.json()["result"]["structuredContent"]["rows"] == []
        r = tool(gw, tok, "get_customer", {"customer_id": cid})
        assert r.json()["result"]["structuredContent"]["rows"] == []
    r = tool(gw, tok, "search_customers", {"query": world.b})
    assert r.json()["result"]["structuredContent"]["rows"] == []
    r = tool(gw, tok, "search_customers", {"query": world.a})
    assert len(r.json()["result"]["structuredContent"]["rows"]) == 2


def test_sql_metacharacters_are_data(gw, world):
    tok = world.mint(world.a)
    for q in ["' OR 1=1 --", "%", "_", "\\", "'; DROP TABLE billing.customers; --", "$1", "\")"]:
        r = tool(gw, tok, "search_customers", {"query": q})
        res = r.json()["result"]
        assert res["isError"] is False, q
        assert res["structuredContent"]["rows"] == [], q
    assert world.cluster.psql("SELECT count(*) > 0 FROM pg_tables WHERE tablename = 'customers'").strip() == "t"


def test_argument_errors_are_tool_errors(gw, world):
    tok = world.mint(world.a)
    cases = [
        ({"customer_id": "1"}, "customer_id", "integer"),
        ({"customer_id": 0}, "customer_id", "at least"),
        ({"customer_id": 1, "limit": 101}, "limit", "at most"),
        ({"customer_id": 1, "status": "lost"}, "status", "one of"),
        ({"customer_id": 1, "extra": 1}, "extra", "unexpected"),
        ({"customer_id": 1, "tenant": f"tenant_{world.b}"}, "tenant", "unexpected"),
        ({}, "customer_id", "missing"),
        ({"customer_id": 1.5}, "customer_id", "integer"),
    ]
    for args, name, rule in cases:
        r = tool(gw, tok, "lookup_invoices", args)
        assert r.status_code == 200
        res = r.json()["result"]
        assert res["isError"] is True, args
        e = res["structuredContent"]["error"]
        assert e["reason"] == "invalid_arguments"
        assert e["argument"] == name and name in e["message"] and rule in e["message"], e
    r = tool(gw, tok, "search_customers", {"query": "x" * 101})
    assert r.json()["result"]["structuredContent"]["error"]["argument"] == "query"


def test_params_and_unknown_tool_are_32602(gw, world):
    tok = world.mint(world.a)
    assert err(tool(gw, tok, "no_such_tool")) == (-32602, "tool_not_found")
    assert err(rpc(gw, tok, "tools/call", {"arguments": {}})) == (-32602, "invalid_params")
    assert err(rpc(gw, tok, "tools/call", ["lookup_invoices"])) == (-32602, "invalid_params")
    assert err(rpc(gw, tok, "tools/call", {"name": "get_customer", "arguments": [1]})) == (-32602, "invalid_params")
    assert err(rpc(gw, tok, "tools/call", {"name": "get_customer", "bogus": 1})) == (-32602, "invalid_params")


def test_role_never_leaks_between_calls(start_daemon, world):
    d = start_daemon("--workers", "1")
    ta, tb = world.mint(world.a), world.mint(world.b)
    for i in range(10):
        for tok, t in ((ta, world.a), (tb, world.b)):
            rows = tool(d, tok, "search_customers", {"query": "Customer"}).json()["result"]["structuredContent"]["rows"]
            assert len(rows) == 2 and all(t in r["email"] for r in rows)


def test_call_records(gw, world, cluster):
    tok = world.mint(world.a, "--task", "ticket-4711", tools=["get_customer"])
    r = tool(gw, tok, "get_customer", {"customer_id": world.cust[world.a][0]})
    cid = r.json()["result"]["structuredContent"]["call_id"]
    tool(gw, tok, "get_customer", {"customer_id": "nope"})
    tool(gw, tok, "lookup_invoices", {"customer_id": 1})
    row = cluster.psql(f"SELECT tenant, task, method, tool, arguments::text, outcome, "
                       f"coalesce(reason, '-'), length(result_digest), duration_ms >= 0 "
                       f"FROM airlock.calls WHERE id = '{cid}'")
    assert row.strip() == f"{world.a}|ticket-4711|tools/call|get_customer|{{\"customer_id\": {world.cust[world.a][0]}}}|ok|-|64|t"
    rows = cluster.psql("SELECT outcome || ':' || coalesce(reason, '-') FROM airlock.calls "
                        "WHERE task = 'ticket-4711' ORDER BY at").split()
    assert rows == ["ok:-", "tool_error:invalid_arguments", "refused:tool_not_granted"]
    # Refusals before authentication are counted per address and second, not one row each.
    start = cluster.psql("SELECT now()").strip()
    t0 = time.monotonic()
    for _ in range(30):
        tool(gw, "alk_" + "A" * 43, "get_customer", {"customer_id": 1})
    seconds = int(time.monotonic() - t0) + 2
    q = (f"SELECT count(*), coalesce(sum(count), 0) FROM airlock.refusals"
         f" WHERE second >= date_trunc('second', '{start}'::timestamptz)"
         f" AND reason = 'token_invalid' AND client = '127.0.0.1'")
    wait_until(lambda: int(cluster.psql(q).split("|")[1]) >= 30, timeout=10, every=0.3,
               what="the 30 refusals counted")
    assert int(cluster.psql(q).split("|")[0]) <= seconds


def test_errors_leak_nothing(gw, world):
    tok = world.mint(world.a)
    bodies = [tool(gw, tok, "lookup_invoices", {"customer_id": 2 ** 40}).text,
              tool(gw, tok, "lookup_invoices", {"customer_id": 2 ** 62}).text,
              tool(gw, "alk_" + "A" * 43, "get_customer", {"customer_id": 1}).text,
              tool(gw, tok, "nope").text]
    for b in bodies:
        for word in ("SELECT", "billing.", "invoices_live", "tenant_", "/tmp", "postgres"):
            assert word not in b, (word, b)


def test_row_cap_truncates(start_daemon, world, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "few_customers.json").write_text(json.dumps({
        "name": "few_customers", "description": "Customers, at most one.", "kind": "read",
        "max_rows": 1,
        "arguments": {"type": "object", "properties": {}, "additionalProperties": False},
        "statement": "SELECT id, email FROM billing.customers_live ORDER BY id;\n-- first"}))
    # The server stops one row past the cap: row 5000 would divide by zero, and is never made.
    (tools / "series.json").write_text(json.dumps({
        "name": "series", "description": "Numbers.", "kind": "read", "max_rows": 10,
        "arguments": {"type": "object", "properties": {}, "additionalProperties": False},
        "statement": "SELECT g, 100 / (g - 5000) AS q FROM generate_series(1, 100000) g"}))
    d = start_daemon("--tools", str(tools))
    tok = world.mint(world.a, tools=["few_customers", "series"])
    sc = tool(d, tok, "few_customers").json()["result"]["structuredContent"]
    assert sc["truncated"] is True and sc["row_count"] == 1 and len(sc["rows"]) == 1
    assert sc["rows"][0]["email"] == f"c0@{world.a}.example"
    sc = tool(d, tok, "series").json()["result"]["structuredContent"]
    assert sc["truncated"] is True and [r["g"] for r in sc["rows"]] == list(range(1, 11))


def test_statement_that_switches_role_is_refused(start_daemon, world, cluster, tmp_path):
    """set_config spelled with a Unicode escape is refused when the catalog loads; and should
    a statement still change its role (here through a function the operator made), the call
    fails, returns nothing, and its connection is dropped."""
    import subprocess
    from conftest import AIRLOCKD
    tools = tmp_path / "tools"
    tools.mkdir()
    peek = {"name": "peek", "description": "x", "kind": "read",
            "arguments": {"type": "object", "properties": {"t": {"type": "string"}},
                          "required": ["t"], "additionalProperties": False},
            "statement": "WITH s AS MATERIALIZED (SELECT U&\"set\\005fconfig\"('role', $t, true) AS r) "
                         "SELECT c.id FROM s, billing.customers_live c WHERE s.r IS NOT NULL"}
    (tools / "peek.json").write_text(json.dumps(peek))
    p = subprocess.run([str(AIRLOCKD), "--listen", "127.0.0.1:1", "--db", cluster.gateway_url,
                        "--tools", str(tools)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 78 and "Unicode escape" in p.stderr, p.stderr
    (tools / "peek.json").unlink()

    schema = f"sneak_{secrets.token_hex(3)}"
    cluster.psql(f"CREATE SCHEMA {schema}; "
                 f"CREATE FUNCTION {schema}.become(r text) RETURNS text LANGUAGE sql "
                 f"AS $$ SELECT set_config('role', r, false) $$; "
                 f"GRANT USAGE ON SCHEMA {schema} TO airlock_tenants, airlock_gateway; "
                 f"GRANT EXECUTE ON FUNCTION {schema}.become(text) TO airlock_tenants")
    try:
        (tools / "become.json").write_text(json.dumps({
            "name": "become", "description": "x", "kind": "read",
            "arguments": {"type": "object", "properties": {"t": {"type": "string"}},
                          "required": ["t"], "additionalProperties": False},
            "statement": f"SELECT c.email FROM (SELECT {schema}.become($t) AS r) s, "
                         f"LATERAL (SELECT email FROM billing.customers_live WHERE s.r IS NOT NULL) c"}))
        shutil.copy(ROOT / "tools" / "search_customers.json", tools)
        d = start_daemon("--tools", str(tools), "--workers", "1")
        tok = world.mint(world.a, tools=["become", "search_customers"])
        r = tool(d, tok, "become", {"t": f"tenant_{world.b}"})
        assert err(r) == (-32603, "internal")
        assert world.b not in r.text
        assert "connection dropped" in d.logtext()
        # The next call, on the same (only) worker, runs as its own tenant again.
        rows = tool(d, tok, "search_customers", {"query": "Customer"}).json()["result"]["structuredContent"]["rows"]
        assert rows and all(world.a in x["email"] for x in rows)
    finally:
        cluster.psql(f"DROP SCHEMA {schema} CASCADE")
