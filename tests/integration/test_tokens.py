"""Tokens against a real airlockd and PostgreSQL: their format and storage, missing, bad,
expired and revoked ones, grants, bindings and quotas, minting and revoking over RPC with
the admin key (and replacing that key), disabled tenants, preview-only tokens."""
import json
import os
import shutil
import time

import pytest
import requests

from conftest import ROOT, ctl
from world import JSON, READ_TOOLS, billing_world, err, rpc, token_id, tool


@pytest.fixture(scope="module")
def world(cluster):
    return billing_world(cluster, "tk", READ_TOOLS)


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


def test_grants_bindings_quota(gw, world):
    tok = world.mint(world.a, tools=["get_customer"])
    assert err(tool(gw, tok, "lookup_invoices", {"customer_id": 1})) == (403, "tool_not_granted")
    listed = rpc(gw, tok, "tools/list").json()["result"]["tools"]
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
    me = rpc(gw, tok, "airlock/tokens.self").json()["result"]
    assert me["calls_used"] == 2 and me["calls_left"] == 0


def test_expired_and_revoked(start_daemon, gw, world):
    tok = world.mint(world.a, ttl="1s")
    time.sleep(1.5)        # waiting out the token's life is what is tested
    assert err(tool(gw, tok, "get_customer", {"customer_id": 1})) == (401, "token_expired")
    # Revocation takes effect at once, on every instance.
    other = start_daemon("--admin-key-file", world.admin_key)
    tok = world.mint(world.a)
    for d in (gw, other):
        assert tool(d, tok, "get_customer", {"customer_id": 1}).status_code == 200
    tid = rpc(gw, tok, "airlock/tokens.self").json()["result"]["token_id"]
    ctl("token", "revoke", tid, "--db", world.cluster.operator_url)
    for d in (gw, other):
        assert err(tool(d, tok, "get_customer", {"customer_id": 1})) == (401, "token_revoked")


def test_admin_mint_and_revoke_over_rpc(gw, world, cluster):
    r = rpc(gw, world.admin, "airlock/tokens.mint",
             {"tenant": world.a, "tools": ["get_customer"], "ttl": 60, "max_calls": 5,
              "bindings": {"customer_id": str(world.cust[world.a][0])}})
    res = r.json()["result"]
    tok, tid = res["token"], res["token_id"]
    me = rpc(gw, tok, "airlock/tokens.self").json()["result"]
    assert me["tenant"] == world.a and me["calls_left"] == 5 and me["tools"] == ["get_customer"]
    # A tenant token cannot mint; bad specs are -32602.
    assert err(rpc(gw, tok, "airlock/tokens.mint", {"tenant": world.a, "tools": ["x"], "ttl": 60})) == (403, "admin_required")
    assert err(rpc(gw, world.admin, "airlock/tokens.mint", {"tenant": "nope", "tools": ["x"], "ttl": 60})) == (-32602, "invalid_params")
    assert err(rpc(gw, world.admin, "airlock/tokens.mint", {"tenant": world.a, "tools": ["x"], "ttl": 999999})) == (-32602, "invalid_params")
    # The admin credential calls no tools.
    assert err(tool(gw, world.admin, "get_customer", {"customer_id": 1})) == (403, "admin_required")
    r = rpc(gw, world.admin, "airlock/tokens.revoke", {"token_id": tid})
    assert r.json()["result"]["revoked"] is True
    assert err(rpc(gw, tok, "airlock/tokens.self")) == (401, "token_revoked")
    rows = cluster.psql(f"SELECT method FROM airlock.calls WHERE tenant = '{world.a}' AND "
                        f"method LIKE 'airlock/tokens.%' AND token_id = 'admin' ORDER BY at")
    assert rows.split()[-2:] == ["airlock/tokens.mint", "airlock/tokens.revoke"]
    assert tok not in cluster.psql("SELECT string_agg(c::text, ' ') FROM airlock.calls c")


def test_airlockctl_records_mint_and_revoke(world, cluster):
    """airlockctl's mint and revoke are call records of the gateway's shape, as the
    operator's: what was granted, a duration, and the trigger's digest."""
    tok = world.mint(world.a, "--max-calls", "3", tools=["get_customer"])
    tid = token_id(tok)
    ctl("token", "revoke", tid, "--db", cluster.operator_url)
    mint = world.one(f"SELECT mint_call FROM airlock.tokens WHERE id = '{tid}'")
    revoke = world.one("SELECT id FROM airlock.calls WHERE method = 'airlock/tokens.revoke'"
                       f" AND arguments ->> 'token_id' = '{tid}'")
    m, r = world.record(mint), world.record(revoke)
    assert m["method"] == "airlock/tokens.mint" and r["method"] == "airlock/tokens.revoke"
    assert m["arguments"] == {"token_id": tid, "tenant": world.a, "tools": ["get_customer"],
                              "bindings": {}, "ttl": 600, "max_calls": 3,
                              "preview_only": False, "revert": False}
    assert r["arguments"] == {"token_id": tid}
    for x in (m, r):
        assert x["tenant"] == world.a and x["token_id"] == "operator"
        assert x["client"] == "airlockctl" and x["outcome"] == "ok" and x["dry_run"] is False
        assert x["task"] is None and x["tool"] is None and x["result_digest"] is None
        assert isinstance(x["duration_ms"], (int, float)) and x["duration_ms"] >= 0
    assert world.one(f"SELECT count(*) FROM airlock.calls c WHERE id IN ('{mint}', '{revoke}')"
                     " AND digest = encode(sha256(convert_to(airlock.call_canonical(c), 'UTF8')),"
                     " 'hex')") == "2"


def test_admin_key_replaced_without_restart(gw, world):
    path = world.admin_key + ".rot"
    ctl("token", "admin-key", path)
    d_key = open(path).read().strip()
    assert err(rpc(gw, d_key, "airlock/tokens.self"))[0] == 401
    shutil.copy(path, world.admin_key + ".tmp")
    os.replace(world.admin_key + ".tmp", world.admin_key)
    try:
        assert rpc(gw, d_key, "airlock/tokens.self").json()["result"] == {"admin": True}
        assert err(rpc(gw, world.admin, "airlock/tokens.self"))[0] == 401
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


def test_preview_only_token_reads_normally(gw, world):
    tok = world.mint(world.a, "--preview-only")
    r = tool(gw, tok, "lookup_invoices", {"customer_id": world.cust[world.a][0]})
    assert r.json()["result"]["structuredContent"]["row_count"] == 2
    assert rpc(gw, tok, "airlock/tokens.self").json()["result"]["preview_only"] is True


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
    me = rpc(d, tok, "airlock/tokens.self").json()["result"]
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
        r = rpc(gw, world.admin, "airlock/tokens.mint", {"tenant": world.a, "ttl": 60, **spec})
        assert err(r) == (-32602, "invalid_params"), r.text
    assert cluster.psql("SELECT count(*) FROM airlock.tokens").strip() == before
    # Every granted tool has the argument, or is a code tool: accepted.
    tok = ctl(*base, "--tool", "get_customer", "--tool", "lookup_invoices", "--tool", "run_python",
              "--bind", f"customer_id={c0}").stdout.strip()
    assert tool(gw, tok, "get_customer", {"customer_id": c0}).status_code == 200
    r = rpc(gw, world.admin, "airlock/tokens.mint", {"tenant": world.a, "ttl": 60,
             "tools": ["get_customer", "lookup_invoices"], "bindings": {"customer_id": str(c0)}})
    assert "token" in r.json()["result"]
    # A token whose bindings a granted tool cannot honour (the catalog changed since, or the
    # row was written by hand) is refused that tool: bindings fail closed.
    tid = rpc(gw, tok, "airlock/tokens.self").json()["result"]["token_id"]
    # (The token guard keeps grants fixed, so the hand-written row needs it off for a moment.)
    cluster.psql("ALTER TABLE airlock.tokens DISABLE TRIGGER airlock_token_guard;"
                 f" UPDATE airlock.tokens SET tools = tools || ARRAY['search_customers'] WHERE id = '{tid}';"
                 " ALTER TABLE airlock.tokens ENABLE TRIGGER airlock_token_guard")
    assert err(tool(gw, tok, "search_customers", {"query": "x"})) == (403, "binding_mismatch")
