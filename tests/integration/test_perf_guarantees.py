"""What the fast call path must keep: a read of a token without a quota writes nothing of
its own (no row written per call); a principal kept in memory is refused at once after a
revocation or a tenant's disabling, by reads and by writes (whose token check, without a
quota, rides in the write's own transaction, before its statement); a quota counts a
write's dry-run too; and every answer, handed to the audit writer with its
record, leaves only once that record is durable, also when many arrive at once."""
import threading

import pytest

from conftest import ctl
from world import NO_LIMITS, READ_TOOLS, billing_world, err, newkey, rpc, tool


@pytest.fixture(scope="module")
def world(cluster):
    return billing_world(cluster, "pg", READ_TOOLS + ["add_support_note"])


def token_row(cluster, token_id):
    return cluster.psql(f"SELECT xmin, calls_used FROM airlock.tokens WHERE id = '{token_id}'")


def me(d, tok):
    return rpc(d, tok, "airlock/tokens.self").json()["result"]


def test_read_without_quota_writes_no_token_row(start_daemon, world, cluster):
    d = start_daemon(*NO_LIMITS)
    tok = world.mint(world.a, tools=["lookup_invoices"])
    tid = me(d, tok)["token_id"]
    before = token_row(cluster, tid)
    for _ in range(5):
        r = tool(d, tok, "lookup_invoices", {"customer_id": world.cust[world.a][0]})
        assert r.json()["result"]["isError"] is False, r.text
    # The token's row is the one it was: no UPDATE per call (xmin would change).
    assert token_row(cluster, tid) == before
    n = cluster.psql(f"SELECT count(*) FROM airlock.calls WHERE token_id = '{tid}'"
                     " AND tool = 'lookup_invoices' AND outcome = 'ok'").strip()
    assert n == "5"


def test_quota_stays_exact(start_daemon, world, cluster):
    d = start_daemon(*NO_LIMITS)
    tok = world.mint(world.a, "--max-calls", "3", tools=["lookup_invoices"])
    codes = []

    def read():
        r = tool(d, tok, "lookup_invoices", {"customer_id": world.cust[world.a][0]})
        codes.append("ok" if "result" in r.json() else err(r)[1])

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == ["ok"] * 3 + ["quota_exhausted"] * 5, codes
    assert me(d, tok)["calls_used"] == 3


def test_revoked_token_kept_in_memory_is_refused_at_once(start_daemon, world):
    d = start_daemon(*NO_LIMITS)
    tok = world.mint(world.a, tools=["lookup_invoices"])
    tid = me(d, tok)["token_id"]
    # Known to the daemon: its principal is kept in memory from here.
    assert "result" in rpc(d, tok, "tools/list").json()
    assert "result" in tool(d, tok, "lookup_invoices", {"customer_id": world.cust[world.a][0]}).json()
    ctl("token", "revoke", tid, "--db", world.cluster.operator_url)
    # A read checks the token in its own transaction: refused by the very next call...
    r = tool(d, tok, "lookup_invoices", {"customer_id": world.cust[world.a][0]})
    assert err(r) == (401, "token_revoked"), r.text
    # ...and every other method once the announcement arrived (well within a second).
    r = rpc(d, tok, "tools/list")
    assert err(r) == (401, "token_revoked"), r.text


def test_revoked_token_write_is_refused_at_once_and_changes_nothing(start_daemon, world):
    d = start_daemon(*NO_LIMITS)
    tok = world.mint(world.a, tools=["add_support_note"])
    tid = me(d, tok)["token_id"]
    args = {"customer_id": world.cust[world.a][0], "body": "before " + tid}
    r = tool(d, tok, "add_support_note", args, key=newkey())
    assert r.json()["result"]["isError"] is False, r.text
    ctl("token", "revoke", tid, "--db", world.cluster.operator_url)
    # The very next write is refused by the check in its own transaction, before its
    # statement: no note, no idempotency key, and its record says why.
    key = newkey()
    args = {"customer_id": world.cust[world.a][0], "body": "after " + tid}
    r = tool(d, tok, "add_support_note", args, key=key)
    assert err(r) == (401, "token_revoked"), r.text
    assert world.notes(world.a, "after " + tid) == 0
    assert world.cluster.psql(f"SELECT count(*) FROM airlock.idempotency_keys "
                              f"WHERE key = '{key}'").strip() == "0"
    # A dry-run is refused the same way.
    r = tool(d, tok, "add_support_note", {**args, "body": "preview " + tid}, dry_run=True)
    assert err(r) == (401, "token_revoked"), r.text


def test_quota_counts_a_writes_dry_run(start_daemon, world):
    # A token with a quota is counted in a round trip of its own, before the write's
    # transaction: a dry-run, rolled back, still uses one of its calls.
    d = start_daemon(*NO_LIMITS)
    tok = world.mint(world.a, "--max-calls", "2", tools=["add_support_note"])
    args = {"customer_id": world.cust[world.a][0], "body": "quota " + newkey()}
    for _ in range(2):
        r = tool(d, tok, "add_support_note", args, dry_run=True)
        assert r.json()["result"]["structuredContent"]["dry_run"] is True, r.text
    r = tool(d, tok, "add_support_note", args, key=newkey())
    assert err(r) == (403, "quota_exhausted"), r.text
    assert world.notes(world.a, args["body"]) == 0
    assert me(d, tok)["calls_used"] == 2


def test_disabled_tenant_is_refused_at_once(start_daemon, world):
    d = start_daemon(*NO_LIMITS)
    tok = world.mint(world.b, tools=["lookup_invoices"])
    args = {"customer_id": world.cust[world.b][0]}
    assert "result" in tool(d, tok, "lookup_invoices", args).json()
    ctl("tenant", "disable", world.b, "--db", world.cluster.operator_url)
    try:
        r = tool(d, tok, "lookup_invoices", args)
        assert err(r) == (403, "tenant_disabled"), r.text
        r = rpc(d, tok, "tools/list")
        assert err(r) == (403, "tenant_disabled"), r.text
    finally:
        ctl("tenant", "enable", world.b, "--db", world.cluster.operator_url)
    assert "result" in tool(d, tok, "lookup_invoices", args).json()


def test_every_answer_of_a_crowd_has_its_record_already(start_daemon, world, cluster):
    d = start_daemon(*NO_LIMITS)
    tok = world.mint(world.a, tools=["lookup_invoices"])
    missing, answered = [], []
    lock = threading.Lock()

    def reader():
        for _ in range(10):
            r = tool(d, tok, "lookup_invoices", {"customer_id": world.cust[world.a][0]})
            cid = r.json()["result"]["structuredContent"]["call_id"]
            # Asked the moment the answer arrived: the record must be committed already.
            n = cluster.psql(f"SELECT count(*) FROM airlock.calls WHERE id = '{cid}'").strip()
            with lock:
                answered.append(cid)
                if n != "1":
                    missing.append(cid)

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answered) == 160 and not missing, missing
