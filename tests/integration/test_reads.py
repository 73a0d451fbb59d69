"""The read path against a real airlockd and PostgreSQL: tokens, grants, bindings, quotas,
rate limits, tenant isolation, errors that leak nothing, and the call record."""
import json
import os
import secrets
import shutil
import signal
import threading
import time

import pytest
import requests

from conftest import ROOT, ctl

JSON = {"Content-Type": "application/json"}
READ_TOOLS = ["lookup_invoices", "get_customer", "search_customers"]


def call(d, token, method, params=None, rid=1, path="/rpc"):
    body = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        body["params"] = params
    h = dict(JSON)
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return requests.post(d.url + path, data=json.dumps(body), headers=h, timeout=15)


def tool(d, token, name, args=None, **extra):
    params = {"name": name, "arguments": args or {}}
    params.update(extra)
    return call(d, token, "tools/call", params)


def err(r):
    e = r.json()["error"]
    return e["code"], e["data"]["reason"]


class World:
    """Two tenants of our own with a few rows each, and helpers to mint tokens."""

    def __init__(self, cluster):
        self.cluster = cluster
        sfx = secrets.token_hex(3)
        self.a, self.b = f"ra{sfx}", f"rb{sfx}"
        db = ["--db", cluster.operator_url]
        for t in (self.a, self.b):
            ctl("tenant", "add", t, *db)
        self.cust = {}
        for t in (self.a, self.b):
            ids = []
            for i in range(2):
                out = cluster.psql(
                    f"SET ROLE tenant_{t}; INSERT INTO billing.customers (email, name, company) "
                    f"VALUES ('c{i}@{t}.example', 'Customer {i} of {t}', 'Co {t}') RETURNING id")
                # psql prints every statement's result: the id is the line of digits.
                ids.append(int([x for x in out.split() if x.isdigit()][0]))
            self.cust[t] = ids
            c0 = ids[0]
            cluster.psql(
                f"SET ROLE tenant_{t}; INSERT INTO billing.invoices "
                f"(customer_id, number, status, amount, issued_at, paid_at) VALUES "
                f"({c0}, '{t}-1', 'open', 100.10, now() - interval '2 days', NULL), "
                f"({c0}, '{t}-2', 'paid', 9999999999.99, now() - interval '1 day', now()), "
                f"({c0}, '{t}-3', 'open', 5.00, now(), NULL)")
            cluster.psql(f"SET ROLE tenant_{t}; UPDATE billing.invoices SET deleted_at = now() "
                         f"WHERE number = '{t}-3'")
        self.admin_key = os.path.join(cluster.dir, f"admin-{sfx}.key")
        ctl("token", "admin-key", self.admin_key)
        with open(self.admin_key) as f:
            self.admin = f.read().strip()

    def mint(self, tenant, *args, tools=READ_TOOLS, ttl="5m"):
        argv = ["token", "mint", "--tenant", tenant, "--ttl", ttl, "--db", self.cluster.operator_url]
        for t in tools:
            argv += ["--tool", t]
        return ctl(*argv, *args).stdout.strip()


@pytest.fixture(scope="module")
def world(cluster):
    return World(cluster)


@pytest.fixture
def gw(start_daemon, world):
    return start_daemon("--admin-key-file", world.admin_key)


def test_token_format_and_storage(world, cluster):
    tok = world.mint(world.a)
    assert tok.startswith("alk_") and len(tok) == 47
    assert all(c.isalnum() or c in "-_" for c in tok[4:])
    import hashlib
    h = hashlib.sha256(tok.encode()).hexdigest()
    row = cluster.psql(f"SELECT id, encode(hash, 'hex') FROM airlock.tokens WHERE id = '{h[:12]}'")
    assert row.strip() == f"{h[:12]}|{h}"
    # The secret is stored nowhere.
    assert tok not in cluster.psql("SELECT string_agg(t::text, ' ') FROM airlock.tokens t")
    listing = ctl("token", "list", "--tenant", world.a, "--db", cluster.operator_url).stdout
    assert h[:12] in listing and tok not in listing


def test_no_bad_unknown_tokens_are_401(gw, world):
    for token, reason in [(None, "token_missing"), ("nonsense", "token_invalid"),
                          ("alk_" + "A" * 43, "token_invalid"), ("alk_" + "!" * 43, "token_invalid"),
                          ("alk_" + "A" * 42 + "B", "token_invalid")]:
        r = tool(gw, token, "lookup_invoices", {"customer_id": 1})
        assert r.status_code == 401, token
        # RFC 6750: an error code only when credentials came and were refused.
        assert r.headers["WWW-Authenticate"] == ('Bearer realm="airlock"' if token is None else
                                                 'Bearer realm="airlock", error="invalid_token"')
        assert err(r) == (401, reason)
    # In a batch, the same errors travel with HTTP 200.
    r = requests.post(gw.url + "/rpc", headers=JSON, timeout=5, data=json.dumps(
        [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}]))
    assert r.status_code == 200 and r.json()[0]["error"]["data"]["reason"] == "token_missing"


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
    assert err(call(gw, tok, "tools/call", {"arguments": {}})) == (-32602, "invalid_params")
    assert err(call(gw, tok, "tools/call", ["lookup_invoices"])) == (-32602, "invalid_params")
    assert err(call(gw, tok, "tools/call", {"name": "get_customer", "arguments": [1]})) == (-32602, "invalid_params")
    assert err(call(gw, tok, "tools/call", {"name": "get_customer", "bogus": 1})) == (-32602, "invalid_params")


def test_grants_bindings_quota(gw, world):
    tok = world.mint(world.a, tools=["get_customer"])
    assert err(tool(gw, tok, "lookup_invoices", {"customer_id": 1})) == (403, "tool_not_granted")
    listed = call(gw, tok, "tools/list").json()["result"]["tools"]
    assert [t["name"] for t in listed] == ["get_customer"]
    t = listed[0]
    assert t["inputSchema"]["type"] == "object" and t["annotations"]["readOnlyHint"] is True
    assert t["outputSchema"]["properties"]["rows"]["items"]["properties"]["id"]["type"] == ["string", "null"]

    c0, c1 = world.cust[world.a]
    tok = world.mint(world.a, "--bind", f"customer_id={c0}", "--tools", ROOT / "tools",
                     tools=["lookup_invoices", "get_customer"])
    assert tool(gw, tok, "lookup_invoices", {"customer_id": c0}).json()["result"]["isError"] is False
    r = tool(gw, tok, "lookup_invoices", {"customer_id": c1})
    assert err(r) == (403, "binding_mismatch")

    tok = world.mint(world.a, "--max-calls", "2")
    for _ in range(2):
        assert tool(gw, tok, "get_customer", {"customer_id": c0}).status_code == 200
    assert err(tool(gw, tok, "get_customer", {"customer_id": c0})) == (403, "quota_exhausted")
    me = call(gw, tok, "airlock/tokens.self").json()["result"]
    assert me["calls_used"] == 2 and me["calls_left"] == 0


def test_expired_and_revoked(start_daemon, gw, world):
    tok = world.mint(world.a, ttl="1s")
    time.sleep(1.5)
    assert err(tool(gw, tok, "get_customer", {"customer_id": 1})) == (401, "token_expired")
    # Revocation takes effect at once, on every instance.
    other = start_daemon("--admin-key-file", world.admin_key)
    tok = world.mint(world.a)
    for d in (gw, other):
        assert tool(d, tok, "get_customer", {"customer_id": 1}).status_code == 200
    tid = call(gw, tok, "airlock/tokens.self").json()["result"]["token_id"]
    ctl("token", "revoke", tid, "--db", world.cluster.operator_url)
    for d in (gw, other):
        assert err(tool(d, tok, "get_customer", {"customer_id": 1})) == (401, "token_revoked")


def test_admin_mint_and_revoke_over_rpc(gw, world, cluster):
    r = call(gw, world.admin, "airlock/tokens.mint",
             {"tenant": world.a, "tools": ["get_customer"], "ttl": 60, "max_calls": 5,
              "bindings": {"customer_id": str(world.cust[world.a][0])}})
    res = r.json()["result"]
    tok, tid = res["token"], res["token_id"]
    me = call(gw, tok, "airlock/tokens.self").json()["result"]
    assert me["tenant"] == world.a and me["calls_left"] == 5 and me["tools"] == ["get_customer"]
    # A tenant token cannot mint; bad specs are -32602.
    assert err(call(gw, tok, "airlock/tokens.mint", {"tenant": world.a, "tools": ["x"], "ttl": 60})) == (403, "admin_required")
    assert err(call(gw, world.admin, "airlock/tokens.mint", {"tenant": "nope", "tools": ["x"], "ttl": 60})) == (-32602, "invalid_params")
    assert err(call(gw, world.admin, "airlock/tokens.mint", {"tenant": world.a, "tools": ["x"], "ttl": 999999})) == (-32602, "invalid_params")
    # The admin credential calls no tools.
    assert err(tool(gw, world.admin, "get_customer", {"customer_id": 1})) == (403, "admin_required")
    r = call(gw, world.admin, "airlock/tokens.revoke", {"token_id": tid})
    assert r.json()["result"]["revoked"] is True
    assert err(call(gw, tok, "airlock/tokens.self")) == (401, "token_revoked")
    rows = cluster.psql(f"SELECT method FROM airlock.calls WHERE tenant = '{world.a}' AND "
                        f"method LIKE 'airlock/tokens.%' AND token_id = 'admin' ORDER BY at")
    assert rows.split()[-2:] == ["airlock/tokens.mint", "airlock/tokens.revoke"]
    assert tok not in cluster.psql("SELECT string_agg(c::text, ' ') FROM airlock.calls c")


def test_admin_key_replaced_without_restart(gw, world):
    path = world.admin_key + ".rot"
    ctl("token", "admin-key", path)
    d_key = open(path).read().strip()
    assert err(call(gw, d_key, "airlock/tokens.self"))[0] == 401
    shutil.copy(path, world.admin_key + ".tmp")
    os.replace(world.admin_key + ".tmp", world.admin_key)
    try:
        assert call(gw, d_key, "airlock/tokens.self").json()["result"] == {"admin": True}
        assert err(call(gw, world.admin, "airlock/tokens.self"))[0] == 401
    finally:
        with open(os.open(world.admin_key + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                  "w") as f:
            f.write(world.admin + "\n")
        os.replace(world.admin_key + ".tmp", world.admin_key)


def test_disabled_tenant(gw, world):
    tok = world.mint(world.b)
    ctl("tenant", "disable", world.b, "--db", world.cluster.operator_url)
    try:
        assert err(tool(gw, tok, "get_customer", {"customer_id": 1})) == (403, "tenant_disabled")
    finally:
        ctl("tenant", "enable", world.b, "--db", world.cluster.operator_url)
    assert tool(gw, tok, "get_customer", {"customer_id": 1}).status_code == 200


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
    deadline = time.monotonic() + 10
    while int(cluster.psql(q).split("|")[1]) < 30:
        assert time.monotonic() < deadline, cluster.psql(q)
        time.sleep(0.3)
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


def test_rate_limits(start_daemon, world):
    d = start_daemon("--rate-token", "0.01/2", "--rate-client", "0/0")
    tok = world.mint(world.a)
    codes = [tool(d, tok, "get_customer", {"customer_id": 1}) for _ in range(4)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    e = limited[0].json()["error"]
    assert e["data"]["reason"] == "rate_limited" and e["data"]["retryAfterSeconds"] >= 1
    assert int(limited[0].headers["Retry-After"]) >= 1
    # Another token of the same tenant has its own bucket.
    assert tool(d, world.mint(world.a), "get_customer", {"customer_id": 1}).status_code == 200
    d2 = start_daemon("--rate-client", "0.01/3")
    codes = [call(d2, None, "tools/list").status_code for _ in range(6)]
    assert 429 in codes


def test_preview_only_token_reads_normally(gw, world):
    tok = world.mint(world.a, "--preview-only")
    r = tool(gw, tok, "lookup_invoices", {"customer_id": world.cust[world.a][0]})
    assert r.json()["result"]["structuredContent"]["row_count"] == 2
    assert call(gw, tok, "airlock/tokens.self").json()["result"]["preview_only"] is True


def test_database_down_is_503_then_recovers():
    """A gateway whose database goes away answers 503 with Retry-After, and reconnects."""
    from conftest import Daemon, own_cluster
    d = None
    with own_cluster("alk-down-") as c:
        try:
            path = c.dir
            ctl("tenant", "add", "solo", "--db", c.operator_url)
            tok = ctl("token", "mint", "--tenant", "solo", "--tool", "get_customer", "--ttl", "5m",
                      "--db", c.operator_url).stdout.strip()
            d = Daemon(["--db", c.gateway_url, "--tools", str(ROOT / "tools")])
            assert tool(d, tok, "get_customer", {"customer_id": 1}).status_code == 200
            ctl("dev-db", "stop", "--dir", path)
            r = tool(d, tok, "get_customer", {"customer_id": 1})
            assert r.status_code == 503 and r.headers["Retry-After"] == "1"
            assert err(r) == (503, "backend_unavailable")
            assert requests.get(d.url + "/readyz", timeout=5).status_code == 503
            # A gateway started while the database is down starts, live but not ready...
            d2 = Daemon(["--db", c.gateway_url, "--tools", str(ROOT / "tools")])
            assert requests.get(d2.url + "/readyz", timeout=5).status_code == 503
            assert err(tool(d2, tok, "get_customer", {"customer_id": 1})) == (503, "backend_unavailable")
            ctl("dev-db", "start", "--dir", path)
            assert tool(d, tok, "get_customer", {"customer_id": 1}).status_code == 200
            assert requests.get(d.url + "/readyz", timeout=5).status_code == 200
            # ...and checks its catalog and serves once the database is back.
            deadline = time.monotonic() + 15
            while requests.get(d2.url + "/readyz", timeout=5).status_code != 200:
                assert time.monotonic() < deadline, d2.logtext()
                time.sleep(0.2)
            assert tool(d2, tok, "get_customer", {"customer_id": 1}).status_code == 200
            d2.stop()
        finally:
            if d is not None:
                d.stop()


def test_reload_on_sighup(start_daemon, world, tmp_path):
    tools = tmp_path / "tools"
    shutil.copytree(ROOT / "tools", tools)
    d = start_daemon("--tools", str(tools), "--admin-key-file", world.admin_key)
    tok = world.mint(world.a, tools=READ_TOOLS + ["count_customers"])
    names = lambda: [t["name"] for t in call(d, tok, "tools/list").json()["result"]["tools"]]
    assert "count_customers" not in names()
    (tools / "count_customers.json").write_text(json.dumps({
        "name": "count_customers", "description": "How many customers.", "kind": "read",
        "arguments": {"type": "object", "properties": {}, "additionalProperties": False},
        "statement": "SELECT count(*) AS n FROM billing.customers_live"}))
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "count_customers" not in names() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "count_customers" in names()
    r = tool(d, tok, "count_customers")
    assert r.json()["result"]["structuredContent"]["rows"] == [{"n": "2"}]
    # A bad reload keeps the catalog in use, and says why.
    (tools / "broken.json").write_text("{ not json")
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("broken.json")
    assert "count_customers" in names()


def write_slow_tool(tools):
    """A read tool, slow, that sleeps $s seconds (at most 5)."""
    (tools / "slow.json").write_text(json.dumps({
        "name": "slow", "description": "Sleeps.", "kind": "read", "timeout_ms": 10000,
        "arguments": {"type": "object", "properties": {"s": {"type": "number", "maximum": 5}},
                      "required": ["s"], "additionalProperties": False},
        "statement": "SELECT pg_sleep($s::float8) IS NULL AS slept"}))


def test_flooding_token_does_not_block_another(start_daemon, world, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    write_slow_tool(tools)
    shutil.copy(ROOT / "tools" / "get_customer.json", tools)
    d = start_daemon("--tools", str(tools), "--workers", "2", "--queue-per-tenant", "2",
                     "--rate-token", "0/0", "--rate-tenant", "0/0", "--rate-client", "0/0")
    flooder = world.mint(world.a, tools=["slow"])
    other = world.mint(world.b, tools=["get_customer"])
    # Once a token has been seen, its calls queue under its tenant.
    assert tool(d, flooder, "slow", {"s": 0}).status_code == 200
    done = []

    def flood():
        r = tool(d, flooder, "slow", {"s": 2})
        done.append((time.monotonic(), r))

    threads = [threading.Thread(target=flood) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    r = tool(d, other, "get_customer", {"customer_id": 1})
    other_done = time.monotonic()
    for t in threads:
        t.join()
    assert r.status_code == 200
    refused = [x for _, x in done if x.status_code == 429]
    served = sorted(at for at, x in done if x.status_code == 200)
    # The flooding tenant's queue is capped: the rest are refused at once...
    assert refused and refused[0].json()["error"]["data"]["reason"] == "concurrency_limited"
    # ...alone, it ran on both workers, with two waiting...
    assert len(served) == 4
    # ...and once the other tenant waited, the first worker to finish served it, before
    # the flooder's calls that had waited longer.
    assert other_done < served[2]


def test_lone_tenant_uses_every_worker(start_daemon, world, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    write_slow_tool(tools)
    d = start_daemon("--tools", str(tools), "--workers", "4", "--rate-token", "0/0",
                     "--rate-tenant", "0/0", "--rate-client", "0/0")
    tok = world.mint(world.a, tools=["slow"])
    assert tool(d, tok, "slow", {"s": 0}).status_code == 200
    codes = []
    threads = [threading.Thread(target=lambda: codes.append(
        tool(d, tok, "slow", {"s": 2}).status_code)) for _ in range(4)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 4
    # No other tenant waits, so its four calls ran at once, on the four workers (two at a
    # time would have taken twice as long).
    assert time.monotonic() - start < 3.8


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


def test_tokens_of_one_tenant_share_its_queue(start_daemon, world, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    write_slow_tool(tools)
    d = start_daemon("--tools", str(tools), "--workers", "1", "--queue-per-tenant", "2",
                     "--rate-token", "0/0", "--rate-tenant", "0/0", "--rate-client", "0/0")
    t1, t2 = world.mint(world.a, tools=["slow"]), world.mint(world.a, tools=["slow"])
    for t in (t1, t2):      # the gateway learns each token's tenant
        assert tool(d, t, "slow", {"s": 0}).status_code == 200
    codes = []
    threads = [threading.Thread(target=lambda t=t: codes.append(tool(d, t, "slow", {"s": 3}).status_code))
               for t in (t1, t2, t1, t2, t1, t2)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    # One running and two waiting for the tenant, whichever token sent them.
    assert sorted(codes) == [200, 200, 200, 429, 429, 429], codes


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


def test_tenant_rate_set_by_the_operator(start_daemon, world, cluster):
    d = start_daemon("--rate-tenant", "0/0", "--rate-token", "0/0", "--rate-client", "0/0")
    db = ["--db", cluster.operator_url]
    assert ctl("tenant", "rate", world.b, "0.01/2", *db).returncode == 0
    try:
        tok = world.mint(world.b)
        codes = [tool(d, tok, "get_customer", {"customer_id": 1}).status_code for _ in range(4)]
        assert codes[:2] == [200, 200] and 429 in codes[2:], codes
        # Another tenant is not held back by it.
        assert tool(d, world.mint(world.a), "get_customer", {"customer_id": 1}).status_code == 200
    finally:
        assert ctl("tenant", "rate", world.b, "default", *db).returncode == 0
    assert tool(d, tok, "get_customer", {"customer_id": 1}).status_code == 200
    assert ctl("tenant", "rate", world.b, "fast", *db, check=False).returncode == 64
    assert ctl("tenant", "rate", "nosuchtenant", "1/1", *db, check=False).returncode == 65


def test_quota_counted_with_the_read(start_daemon, world, tmp_path, cluster):
    """The count travels with the read in one transaction: a read the database refuses
    leaves the quota as it was."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "ratio.json").write_text(json.dumps({
        "name": "ratio", "description": "100 divided by d.", "kind": "read",
        "arguments": {"type": "object", "properties": {"d": {"type": "integer"}},
                      "required": ["d"], "additionalProperties": False},
        "statement": "SELECT 100 / $d::int AS r"}))
    d = start_daemon("--tools", str(tools))
    tok = world.mint(world.a, "--max-calls", "1", tools=["ratio"])
    r = tool(d, tok, "ratio", {"d": 0})
    assert r.json()["result"]["structuredContent"]["error"]["reason"] == "invalid_arguments"
    assert tool(d, tok, "ratio", {"d": 4}).json()["result"]["structuredContent"]["rows"] == [{"r": 25}]
    assert err(tool(d, tok, "ratio", {"d": 5})) == (403, "quota_exhausted")
    me = call(d, tok, "airlock/tokens.self").json()["result"]
    assert me["calls_used"] == 1 and me["calls_left"] == 0


def test_bindings_must_bind_every_granted_tool(gw, world, cluster):
    """A binding names an argument of every tool the token grants (code tools excepted: their
    input_tool is checked against the bindings); anything else is refused at mint, and a
    tool that lost the argument since is refused at call time."""
    c0 = world.cust[world.a][0]
    cat = ("--tools", ROOT / "tools")
    base = ["token", "mint", "--tenant", world.a, "--ttl", "5m", "--db", cluster.operator_url, *cat]
    # search_customers has no customer_id: a token bound to one customer must not search all.
    p = ctl(*base, "--tool", "get_customer", "--tool", "search_customers",
            "--bind", f"customer_id={c0}", check=False)
    assert p.returncode == 65 and "search_customers" in p.stderr and "customer_id" in p.stderr, p.stderr
    # A binding that names no argument of any granted tool binds nothing.
    p = ctl(*base, "--tool", "get_customer", "--bind", f"customer={c0}", check=False)
    assert p.returncode == 65 and "customer" in p.stderr, p.stderr
    # The catalog is needed to check bindings.
    p = ctl(*base[:-2], "--tools", "/nonexistent", "--tool", "get_customer",
            "--bind", f"customer_id={c0}", check=False)
    assert p.returncode == 66, p.stderr
    before = cluster.psql("SELECT count(*) FROM airlock.tokens").strip()
    for spec in ({"tools": ["get_customer", "search_customers"], "bindings": {"customer_id": str(c0)}},
                 {"tools": ["get_customer"], "bindings": {"customer": str(c0)}}):
        r = call(gw, world.admin, "airlock/tokens.mint", {"tenant": world.a, "ttl": 60, **spec})
        assert err(r) == (-32602, "invalid_params"), r.text
    assert cluster.psql("SELECT count(*) FROM airlock.tokens").strip() == before
    # Every granted tool has the argument, or is a code tool: accepted.
    tok = ctl(*base, "--tool", "get_customer", "--tool", "lookup_invoices", "--tool", "run_python",
              "--bind", f"customer_id={c0}").stdout.strip()
    assert tool(gw, tok, "get_customer", {"customer_id": c0}).status_code == 200
    r = call(gw, world.admin, "airlock/tokens.mint", {"tenant": world.a, "ttl": 60,
             "tools": ["get_customer", "lookup_invoices"], "bindings": {"customer_id": str(c0)}})
    assert "token" in r.json()["result"]
    # A token whose bindings a granted tool cannot honour (the catalog changed since, or the
    # row was written by hand) is refused that tool: bindings fail closed.
    tid = call(gw, tok, "airlock/tokens.self").json()["result"]["token_id"]
    # (The token guard keeps grants fixed, so the hand-written row needs it off for a moment.)
    cluster.psql("ALTER TABLE airlock.tokens DISABLE TRIGGER airlock_token_guard;"
                 f" UPDATE airlock.tokens SET tools = tools || ARRAY['search_customers'] WHERE id = '{tid}';"
                 " ALTER TABLE airlock.tokens ENABLE TRIGGER airlock_token_guard")
    assert err(tool(gw, tok, "search_customers", {"query": "x"})) == (403, "binding_mismatch")
