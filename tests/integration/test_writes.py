"""The reversible-write path against a real airlockd and PostgreSQL: idempotency keys,
dry-runs and plans bound to state, row caps, constraint errors, change capture, the call
record, revert and calls.get, and a SIGKILL in the middle of a stream of keyed writes.

Every test works on tenants and rows of its own (random names), asserts on the database as
well as on the answers, and never touches another test module's rows."""
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
import uuid

import pytest
import requests

from conftest import ROOT, Daemon, ctl

JSON = {"Content-Type": "application/json"}
WRITE_TOOLS = ["add_support_note", "update_invoice_status", "refund_invoice",
               "delete_support_note"]
READ_TOOLS = ["lookup_invoices", "get_customer"]
BILLING = ["customers", "invoices", "refunds", "support_notes"]
NO_LIMITS = ("--rate-token", "0/0", "--rate-tenant", "0/0", "--rate-client", "0/0")


# ---------------------------------------------------------------------------------------
# Requests

def rpc(d, token, method, params=None, rid=1, headers=None, session=None, timeout=15):
    body = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        body["params"] = params
    h = dict(JSON)
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    return (session or requests).post(d.url + "/rpc", data=json.dumps(body), headers=h,
                                      timeout=timeout)


def write(d, token, name, args, key=None, headers=None, session=None, **extra):
    params = {"name": name, "arguments": args}
    if key is not None:
        params["idempotency_key"] = key
    params.update(extra)
    return rpc(d, token, "tools/call", params, headers=headers, session=session)


def revert(d, token, call_id, key=None, **extra):
    params = {"call_id": call_id}
    if key is not None:
        params["idempotency_key"] = key
    params.update(extra)
    return rpc(d, token, "airlock/calls.revert", params)


def ok(r):
    """structuredContent of a successful CallToolResult."""
    assert r.status_code == 200, r.text
    body = r.json()
    assert "result" in body, body
    assert body["result"]["isError"] is False, body
    sc = body["result"]["structuredContent"]
    assert json.loads(body["result"]["content"][0]["text"]) == sc
    return sc


def tool_error(r):
    """structuredContent.error of a tool error result."""
    assert r.status_code == 200, r.text
    res = r.json()["result"]
    assert res["isError"] is True, res
    return res["structuredContent"]


def err(r):
    e = r.json()["error"]
    return e["code"], e["data"]["reason"]


def newkey(tag="k"):
    return f"{tag}-{secrets.token_hex(8)}"


# ---------------------------------------------------------------------------------------
# The world: tenants and rows of our own

def ids_of(out):
    """psql prints every statement's result: the ids are the lines of digits."""
    return [int(x) for x in out.split("\n") if x.strip().isdigit()]


class World:
    def __init__(self, cluster):
        self.cluster = cluster
        self.sfx = secrets.token_hex(3)
        self.a, self.b, self.c = (f"wa{self.sfx}", f"wb{self.sfx}", f"wc{self.sfx}")
        for t in (self.a, self.b, self.c):
            ctl("tenant", "add", t, "--db", cluster.operator_url)
        self.cust = {t: [self.customer(t), self.customer(t)] for t in (self.a, self.b, self.c)}
        self.admin_key = f"{cluster.dir}/admin-w{self.sfx}.key"
        ctl("token", "admin-key", self.admin_key)
        with open(self.admin_key) as f:
            self.admin = f.read().strip()

    def sql(self, tenant, sql):
        return self.cluster.psql(f"SET ROLE tenant_{tenant}; {sql}")

    def customer(self, t):
        n = secrets.token_hex(4)
        return ids_of(self.sql(t, f"INSERT INTO billing.customers (email, name) VALUES "
                                  f"('c{n}@{t}.example', 'Customer {n}') RETURNING id"))[0]

    def invoice(self, t, cust=None, status="open", amount="100.10"):
        cust = cust or self.cust[t][0]
        paid = "now()" if status == "paid" else "NULL"
        return ids_of(self.sql(t, (
            f"INSERT INTO billing.invoices (customer_id, number, status, amount, issued_at, "
            f"paid_at) VALUES ({cust}, 'INV-{secrets.token_hex(5)}', '{status}', {amount}, "
            f"now() - interval '1 day', {paid}) RETURNING id")))[0]

    def note(self, t, body, cust=None):
        cust = cust or self.cust[t][0]
        return ids_of(self.sql(t, f"INSERT INTO billing.support_notes (customer_id, body) "
                                  f"VALUES ({cust}, '{body}') RETURNING id"))[0]

    def row(self, t, table, rid):
        out = self.sql(t, f"SELECT to_jsonb(x) FROM billing.{table} x WHERE id = {rid}")
        lines = [x for x in out.split("\n") if x.startswith("{")]
        return json.loads(lines[0]) if lines else None

    def notes(self, t, body):
        """How many notes (soft-deleted ones too) of tenant t have this body."""
        return int(self.sql(t, f"SELECT count(*) FROM billing.support_notes "
                               f"WHERE body = '{body}'").split()[-1])

    def digest(self):
        """Every row of every billing table of our tenants, as one digest per table and
        tenant (row-level security shows each tenant only its own)."""
        out = {}
        for t in (self.a, self.b):
            for table in BILLING:
                out[(t, table)] = self.sql(t, f"SELECT count(*) || ':' || coalesce(md5("
                                              f"string_agg(x::text, ',' ORDER BY id)), '-') "
                                              f"FROM billing.{table} x").split()[-1]
        return out

    def keyrow(self, t, key):
        out = self.cluster.psql(f"SELECT call_id, response IS NOT NULL FROM "
                                f"airlock.idempotency_keys WHERE tenant = '{t}' AND key = '{key}'")
        return out.strip().split("|") if out.strip() else None

    def record(self, call_id):
        """(outcome, reason, key, plan_id, dry_run, method) of a call record."""
        out = self.cluster.psql(
            f"SELECT outcome, coalesce(reason, '-'), coalesce(idempotency_key, '-'), "
            f"coalesce(plan_id::text, '-'), dry_run, method FROM airlock.calls "
            f"WHERE id = '{call_id}'").strip()
        return tuple(out.split("|")) if out else None

    def changes(self, call_id):
        """The captured changes of a call: [(table, op, key, before, after)]."""
        out = self.cluster.psql(
            f"SELECT coalesce(json_agg(json_build_array(table_name, op, key, before, after) "
            f"ORDER BY id), '[]') FROM airlock.changes WHERE call_id = '{call_id}'")
        return json.loads(out)

    def mint(self, tenant, *args, tools=WRITE_TOOLS + READ_TOOLS, ttl="10m"):
        argv = ["token", "mint", "--tenant", tenant, "--ttl", ttl,
                "--db", self.cluster.operator_url]
        for t in tools:
            argv += ["--tool", t]
        return ctl(*argv, *args).stdout.strip()


@pytest.fixture(scope="module")
def world(cluster):
    return World(cluster)


@pytest.fixture(scope="module")
def gw(cluster, world):
    d = Daemon(["--db", cluster.gateway_url, "--tools", str(ROOT / "tools"),
                "--admin-key-file", world.admin_key, *NO_LIMITS])
    yield d
    d.stop()


@pytest.fixture(scope="module")
def tok(world):
    """A token of tenant a with every demo tool and the revert grant."""
    return world.mint(world.a, "--revert")


# ---------------------------------------------------------------------------------------
# Idempotency keys

def test_write_without_key_is_refused(gw, world, tok):
    body = f"no key {secrets.token_hex(4)}"
    r = write(gw, tok, "add_support_note", {"customer_id": world.cust[world.a][0], "body": body})
    assert r.status_code == 200
    assert err(r) == (-32602, "key_required")
    assert "idempotency" in r.json()["error"]["message"].lower()
    assert world.notes(world.a, body) == 0
    # A batch carries no Idempotency-Key header for its members.
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "add_support_note", "arguments": {"customer_id": world.cust[world.a][0],
                                                  "body": body}}}]
    r = requests.post(gw.url + "/rpc", data=json.dumps(batch), timeout=15,
                      headers={**JSON, "Authorization": f"Bearer {tok}",
                               "Idempotency-Key": newkey()})
    assert r.json()[0]["error"]["data"]["reason"] == "key_required"
    assert world.notes(world.a, body) == 0


def test_key_in_header(gw, world, tok):
    key, body = newkey("hdr"), f"header key {secrets.token_hex(4)}"
    args = {"customer_id": world.cust[world.a][0], "body": body}
    sc = ok(write(gw, tok, "add_support_note", args, headers={"Idempotency-Key": key}))
    assert sc["replayed"] is False and sc["dry_run"] is False and sc["plan_id"] is None
    assert sc["row_count"] == 1 and sc["rows"][0]["body"] == body
    assert isinstance(sc["rows"][0]["id"], str)
    assert world.notes(world.a, body) == 1
    assert world.keyrow(world.a, key) == [sc["call_id"], "t"]
    # The same key in params is the same key: a replay, identical but for replayed.
    again = ok(write(gw, tok, "add_support_note", args, key=key))
    assert again["replayed"] is True
    assert {**again, "replayed": False} == sc
    again = ok(write(gw, tok, "add_support_note", args, headers={"Idempotency-Key": key}))
    assert again["call_id"] == sc["call_id"] and again["replayed"] is True
    assert world.notes(world.a, body) == 1


def test_overlong_key(gw, world, tok):
    body = f"long key {secrets.token_hex(4)}"
    args = {"customer_id": world.cust[world.a][0], "body": body}
    assert err(write(gw, tok, "add_support_note", args, key="k" * 256)) == (-32602, "invalid_params")
    r = write(gw, tok, "add_support_note", args, headers={"Idempotency-Key": "h" * 256})
    assert err(r) == (-32602, "invalid_params")
    assert err(write(gw, tok, "add_support_note", args, key="")) == (-32602, "invalid_params")
    assert world.notes(world.a, body) == 0
    key = "m" * 250 + secrets.token_hex(3)[:5]
    assert len(key) == 255
    ok(write(gw, tok, "add_support_note", args, key=key))
    assert world.notes(world.a, body) == 1 and world.keyrow(world.a, key) is not None


def test_key_reused_with_other_arguments(gw, world, tok):
    key, body = newkey(), f"reuse {secrets.token_hex(4)}"
    c0, c1 = world.cust[world.a]
    sc = ok(write(gw, tok, "add_support_note", {"customer_id": c0, "body": body}, key=key))
    for args in ({"customer_id": c0, "body": body + "!"}, {"customer_id": c1, "body": body}):
        r = write(gw, tok, "add_support_note", args, key=key)
        assert err(r) == (422, "key_mismatch")
    # Another tool with the same key is other arguments too.
    r = write(gw, tok, "delete_support_note", {"note_id": int(sc["rows"][0]["id"])}, key=key)
    assert err(r) == (422, "key_mismatch")
    assert world.notes(world.a, body) == 1 and world.notes(world.a, body + "!") == 0
    assert world.row(world.a, "support_notes", sc["rows"][0]["id"])["deleted_at"] is None
    # An expired key is swept: the key is free again.
    out = world.cluster.psql(f"UPDATE airlock.idempotency_keys SET expires_at = now() - interval "
                             f"'1 s' WHERE tenant = '{world.a}' AND key = '{key}'")
    assert out.strip() == "UPDATE 1"
    sx = ok(write(gw, tok, "add_support_note", {"customer_id": c0, "body": body + "!"}, key=key))
    assert sx["replayed"] is False and world.notes(world.a, body + "!") == 1
    assert world.keyrow(world.a, key) == [sx["call_id"], "t"]
    # Keys are per tenant: tenant b may use the same key for its own write.
    tb = world.mint(world.b)
    sb = ok(write(gw, tb, "add_support_note", {"customer_id": world.cust[world.b][0],
                                               "body": body}, key=key))
    assert sb["replayed"] is False and sb["call_id"] != sc["call_id"]
    assert world.notes(world.b, body) == 1 and world.notes(world.a, body) == 1


def send_together(n, d, token, tool, args, key):
    """n threads, each on its own connection, send the same keyed write at once.  Returns
    (answers, threads), the threads started; an answer is a response or the exception."""
    barrier = threading.Barrier(n)
    answers = [None] * n

    def one(i):
        s = requests.Session()
        barrier.wait()
        try:
            answers[i] = write(d, token, tool, args, key=key, session=s)
        except requests.RequestException as e:
            answers[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return answers, threads


def sort_duplicates(answers):
    """(fresh, replays, in_flight) of send_together's answers: the first two lists of
    results, the last of 409 key_in_flight refusals; anything else fails."""
    fresh, replays, in_flight = [], [], []
    for r in answers:
        assert isinstance(r, requests.Response), r
        assert r.status_code < 500, r.text
        body = r.json()
        if "error" in body:
            assert err(r) == (409, "key_in_flight"), body
            assert body["error"]["data"]["retryAfterSeconds"] >= 1
            in_flight.append(r)
        else:
            sc = ok(r)
            (replays if sc["replayed"] else fresh).append(sc)
    return fresh, replays, in_flight


def test_concurrent_duplicates_one_effect(gw, world, tok):
    key, body = newkey("dup"), f"concurrent {secrets.token_hex(4)}"
    args = {"customer_id": world.cust[world.a][0], "body": body}
    n = 50
    answers, threads = send_together(n, gw, tok, "add_support_note", args, key)
    for t in threads:
        t.join()
    fresh, replays, in_flight = sort_duplicates(answers)
    assert len(fresh) == 1, (len(fresh), len(replays), len(in_flight))
    assert len(fresh) + len(replays) + len(in_flight) == n
    assert all(s["call_id"] == fresh[0]["call_id"] for s in replays)
    assert all({**s, "replayed": False} == fresh[0] for s in replays)
    assert world.notes(world.a, body) == 1
    assert world.keyrow(world.a, key) == [fresh[0]["call_id"], "t"]
    assert len(world.changes(fresh[0]["call_id"])) == 1
    # Once it settled, every retry replays.
    again = ok(write(gw, tok, "add_support_note", args, key=key))
    assert again["replayed"] is True and again["call_id"] == fresh[0]["call_id"]


def wait_for(cond, what, timeout=60, every=0.02):
    """Polls cond() until it returns a true value, which it returns; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def gateway_sessions(cluster, sql):
    """A query on pg_stat_activity as the gateway's own role, which sees its sessions'
    queries and wait events (the operator role would not)."""
    return cluster.psql(sql, url=cluster.gateway_url)


class Gate:
    """An advisory lock held by a session of our own (psql reading its stdin) while the
    gate is closed.  A statement that polls pg_try_advisory_xact_lock_shared(key) waits
    for it without a lock wait, so the gateway's lock_timeout does not end the wait: the
    statement's own statement timeout bounds it."""

    def __init__(self, cluster, key):
        self.cluster, self.key = cluster, key
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                                      cluster.operator_url], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     text=True)
        self.proc.stdin.write(f"SELECT pg_advisory_lock({key});\n")
        self.proc.stdin.flush()
        wait_for(lambda: self.proc.poll() is not None or cluster.psql(
            f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND "
            f"objid = {key} AND objsubid = 1 AND mode = 'ExclusiveLock' AND granted").strip() == "1",
            "the gate's lock")
        assert self.proc.poll() is None, "the gate's psql exited"

    def open(self):
        """Ends the session, and with it the lock."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_concurrent_duplicates_of_a_slow_write(start_daemon, world, tmp_path):
    """While the first is still running, duplicates wait on the key (up to 8 per key in an
    instance) and then replay; those past the cap get 409 key_in_flight at once."""
    cluster = world.cluster
    gate_key = secrets.randbelow(2 ** 31 - 2) + 1
    tools = tmp_path / "tools"
    tools.mkdir()
    # The write stays in its transaction, key claimed, until the test opens the gate: it
    # polls the gate's lock (every 10 ms) rather than sleeping a fixed time.
    (tools / "slow_note.json").write_text(json.dumps({
        "name": "slow_note", "description": "Adds a note once a gate opens.", "kind": "write",
        "destructive": False,
        "arguments": {"type": "object", "properties": {
            "customer_id": {"type": "integer", "minimum": 1},
            "body": {"type": "string", "minLength": 1, "maxLength": 200}},
            "required": ["customer_id", "body"], "additionalProperties": False},
        "statement": "INSERT INTO billing.support_notes (customer_id, body) SELECT $customer_id, "
                     "$body FROM (WITH RECURSIVE gate(opened) AS (SELECT "
                     f"pg_try_advisory_xact_lock_shared({gate_key}) UNION ALL SELECT "
                     f"pg_try_advisory_xact_lock_shared({gate_key}) FROM gate WHERE NOT opened "
                     "AND pg_sleep(0.01) IS NOT NULL) SELECT 1 FROM gate WHERE opened) g "
                     "RETURNING id, body",
        "max_rows": 1, "timeout_ms": 60000}))
    d = start_daemon("--tools", str(tools), "--workers", "24", *NO_LIMITS)
    t = world.a
    tk = world.mint(t, tools=["slow_note"])

    def at_gate():
        """(claims waiting on another's key, statements waiting at the gate) in airlockd."""
        out = gateway_sessions(cluster, (
            "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock' AND "
            "query LIKE 'SELECT airlock.claim_key(%'), count(*) FILTER (WHERE "
            f"state = 'active' AND query LIKE '%pg_try_advisory_xact_lock_shared({gate_key})%') "
            "FROM pg_stat_activity WHERE application_name = 'airlockd'"))
        return tuple(int(x) for x in out.strip().split("|"))

    # Every database worker opens its connection first: 12 previews of each of two tenants
    # (a tenant runs on at most half the workers) held at the gate together.  Then no
    # duplicate below is late for a connection, and the waiters queue on the key within
    # milliseconds of each other, well inside the gateway's lock_timeout.
    tb = world.mint(world.b, tools=["slow_note"])
    gate = Gate(cluster, gate_key)
    warm = []

    def preview(token, tenant):
        args_ = {"customer_id": world.cust[tenant][0], "body": f"warm {secrets.token_hex(4)}"}
        warm.append(write(d, token, "slow_note", args_, dry_run=True, session=requests.Session()))

    threads = [threading.Thread(target=preview, args=(tok_, ten)) for tok_, ten in
               [(tk, t)] * 12 + [(tb, world.b)] * 12]
    try:
        for th in threads:
            th.start()
        wait_for(lambda: at_gate()[1] == 24, "24 previews at the gate")
    finally:
        gate.open()
        for th in threads:
            th.join(60)
    assert len(warm) == 24 and all(ok(r)["dry_run"] is True for r in warm)

    key, body = newkey("slow"), f"slow {secrets.token_hex(4)}"
    args = {"customer_id": world.cust[t][0], "body": body}
    n = 20
    gate = Gate(cluster, gate_key)
    threads = []
    try:
        answers, threads = send_together(n, d, tk, "slow_note", args, key)

        # The gate opens once every duplicate is accounted for: answered already (refused:
        # the first is still at the gate), or waiting on the key in the database.  Answers
        # are counted before the sessions are read, so none is counted twice and none
        # can still be on its way when the first commits.
        def settled():
            answered = sum(a is not None for a in answers)
            waiting, holding = at_gate()
            assert answered < n, answers
            return holding == 1 and answered + waiting == n - 1 and waiting
        waiting = wait_for(settled, "every duplicate answered or waiting on the key")
    finally:
        gate.open()
        for th in threads:
            th.join(60)
    fresh, replays, in_flight = sort_duplicates(answers)
    assert len(fresh) == 1 and replays and in_flight, (len(fresh), len(replays), len(in_flight))
    assert len(fresh) + len(replays) + len(in_flight) == n
    assert len(replays) <= waiting <= 7, (len(replays), waiting)
    assert all(x["call_id"] == fresh[0]["call_id"] for x in replays)
    assert all({**x, "replayed": False} == fresh[0] for x in replays)
    assert world.notes(t, body) == 1
    assert world.keyrow(t, key) == [fresh[0]["call_id"], "t"]


# ---------------------------------------------------------------------------------------
# Dry-runs and plans

def test_dry_run_of_every_demo_write_changes_no_row(gw, world, tok):
    t = world.a
    c0 = world.cust[t][0]
    inv_open, inv_paid = world.invoice(t), world.invoice(t, status="paid", amount="49.90")
    note = world.note(t, f"to delete {secrets.token_hex(4)}")
    # A committed write, so that a revert can be previewed too.
    done = ok(write(gw, tok, "update_invoice_status", {"invoice_id": world.invoice(t),
                                                       "status": "void"}, key=newkey()))
    before = world.digest()
    key = newkey("dry")
    cases = [
        ("add_support_note", {"customer_id": c0, "body": "dry note"}, [("billing.support_notes", "create")]),
        ("update_invoice_status", {"invoice_id": inv_open, "status": "paid"}, [("billing.invoices", "update")]),
        ("refund_invoice", {"invoice_id": inv_paid, "amount": "49.90", "reason": "dry"},
         [("billing.invoices", "update"), ("billing.refunds", "create")]),
        ("delete_support_note", {"note_id": note}, [("billing.support_notes", "update")]),
    ]
    plans = []
    for name, args, want in cases:
        # A key given with a dry-run is not consumed.
        sc = ok(write(gw, tok, name, args, key=key, dry_run=True))
        assert sc["dry_run"] is True and sc["replayed"] is False
        assert sc["plan_id"] == sc["call_id"]
        assert [(c["table"], c["action"]) for c in sc["changes"]] == want, sc["changes"]
        for c in sc["changes"]:
            assert all(isinstance(v, str) for v in c["key"].values() if v is not None)
            assert (c["before"] is None) == (c["action"] == "create")
        assert "nothing was changed" in sc["note"]
        plans.append(sc["plan_id"])
    rsc = ok(revert(gw, tok, done["call_id"], dry_run=True))
    assert rsc["dry_run"] is True and [c["action"] for c in rsc["changes"]] == ["update"]
    assert rsc["changes"][0]["before"]["status"] == "void"
    assert rsc["changes"][0]["after"]["status"] == "open"
    assert world.digest() == before
    assert world.keyrow(t, key) is None
    # Each preview left its record, its captured preview and its plan.
    for p in plans + [rsc["call_id"]]:
        rec = world.record(p)
        assert rec[0] == "ok" and rec[4] == "t", rec
        assert world.changes(p)
        assert world.cluster.psql(f"SELECT count(*) FROM airlock.plans WHERE id = '{p}' "
                                  f"AND expires_at > now() + interval '14 minutes'").strip() == "1"
    # The key is still free: a commit with other arguments takes it.
    ok(write(gw, tok, "add_support_note", {"customer_id": c0, "body": f"after dry {key}"}, key=key))
    assert world.keyrow(t, key) is not None


def test_preview_only_token(gw, world):
    t = world.a
    pv = world.mint(t, "--preview-only")
    body, key = f"preview only {secrets.token_hex(4)}", newkey()
    inv = world.invoice(t)
    before = world.digest()
    sc = ok(write(gw, pv, "add_support_note", {"customer_id": world.cust[t][0], "body": body}, key=key))
    assert sc["dry_run"] is True and sc["plan_id"] == sc["call_id"]
    assert sc["changes"][0]["action"] == "create" and sc["changes"][0]["after"]["body"] == body
    sc = ok(write(gw, pv, "update_invoice_status", {"invoice_id": inv, "status": "void"}))
    assert sc["dry_run"] is True and sc["rows"][0]["status"] == "void"
    assert world.digest() == before
    assert world.notes(t, body) == 0 and world.keyrow(t, key) is None
    assert world.row(t, "invoices", inv)["status"] == "open"
    assert world.record(sc["call_id"])[4] == "t"


def test_preview_commit_with_plan_then_revert(gw, world, tok):
    t = world.a
    inv = world.invoice(t)
    orig = world.row(t, "invoices", inv)
    args = {"invoice_id": inv, "status": "void"}
    pv = ok(write(gw, tok, "update_invoice_status", args, dry_run=True))
    [ch] = pv["changes"]
    assert ch["table"] == "billing.invoices" and ch["key"]["id"] == str(inv)
    assert ch["before"]["status"] == "open" and ch["after"]["status"] == "void"
    assert ch["before"]["amount"] == "100.10"
    assert world.row(t, "invoices", inv) == orig
    key = newkey()
    sc = ok(write(gw, tok, "update_invoice_status", args, key=key, plan_id=pv["plan_id"]))
    assert sc["dry_run"] is False and sc["plan_id"] == pv["plan_id"]
    assert sc["call_id"] != pv["call_id"]
    assert sc["changes"] == pv["changes"]
    assert world.row(t, "invoices", inv)["status"] == "void"
    assert world.record(sc["call_id"]) == ("ok", "-", key, pv["plan_id"], "f", "tools/call")
    [(table, op, k, b, a)] = world.changes(sc["call_id"])
    assert (table, op, k["id"], b["status"], a["status"]) == ("billing.invoices", "update", inv, "open", "void")
    # A plan for an insert binds the number of rows inserted, not their new ids.
    nargs = {"customer_id": world.cust[t][0], "body": f"planned {secrets.token_hex(4)}"}
    npv = ok(write(gw, tok, "add_support_note", nargs, dry_run=True))
    nsc = ok(write(gw, tok, "add_support_note", nargs, key=newkey(), plan_id=npv["plan_id"]))
    assert nsc["plan_id"] == npv["plan_id"] and world.notes(t, nargs["body"]) == 1
    assert nsc["rows"][0]["id"] != npv["rows"][0]["id"]
    # Revert: the row is as it was.
    rkey = newkey("rv")
    rv = ok(revert(gw, tok, sc["call_id"], key=rkey))
    assert rv["dry_run"] is False and rv["replayed"] is False
    assert [(c["table"], c["action"]) for c in rv["changes"]] == [("billing.invoices", "update")]
    assert world.row(t, "invoices", inv) == orig
    assert world.record(rv["call_id"]) == ("ok", "-", rkey, "-", "f", "airlock/calls.revert")
    assert len(world.changes(rv["call_id"])) == 1
    # The revert's key replays.
    again = ok(revert(gw, tok, sc["call_id"], key=rkey))
    assert again["replayed"] is True and again["call_id"] == rv["call_id"]
    assert world.row(t, "invoices", inv) == orig


def test_stale_plan(gw, world, tok):
    t = world.a
    inv = world.invoice(t)
    args = {"invoice_id": inv, "status": "paid"}
    pv = ok(write(gw, tok, "update_invoice_status", args, dry_run=True))
    world.sql(t, f"UPDATE billing.invoices SET amount = 77.77 WHERE id = {inv}")
    changed = world.row(t, "invoices", inv)
    key = newkey()
    r = write(gw, tok, "update_invoice_status", args, key=key, plan_id=pv["plan_id"])
    assert err(r) == (409, "plan_stale")
    rows = r.json()["error"]["data"]["rows"]
    assert rows and {x["table"] for x in rows} == {"billing.invoices"}
    assert {str(x["key"]["id"]) for x in rows} == {str(inv)}
    assert "nothing was done" in r.json()["error"]["message"]
    assert world.row(t, "invoices", inv) == changed
    assert changed["status"] == "open" and changed["paid_at"] is None
    assert world.keyrow(t, key) is None
    # Its record says so and references no change.
    cid = world.cluster.psql(f"SELECT id FROM airlock.calls WHERE idempotency_key = '{key}'").strip()
    assert world.record(cid)[:4] == ("refused", "plan_stale", key, pv["plan_id"])
    assert world.changes(cid) == []
    # A fresh preview commits, and the key that was refused is free.
    pv2 = ok(write(gw, tok, "update_invoice_status", args, dry_run=True))
    ok(write(gw, tok, "update_invoice_status", args, key=key, plan_id=pv2["plan_id"]))
    assert world.row(t, "invoices", inv)["status"] == "paid"


def test_stale_plan_the_other_way(gw, world, tok):
    """A previewed row that would no longer change, and inserts that would not happen."""
    t = world.a
    note = world.note(t, f"gone {secrets.token_hex(4)}")
    pv = ok(write(gw, tok, "delete_support_note", {"note_id": note}, dry_run=True))
    world.sql(t, f"UPDATE billing.support_notes SET deleted_at = now() WHERE id = {note}")
    gone = world.row(t, "support_notes", note)
    r = write(gw, tok, "delete_support_note", {"note_id": note}, key=newkey(), plan_id=pv["plan_id"])
    assert err(r) == (409, "plan_stale")
    assert [str(x["key"]["id"]) for x in r.json()["error"]["data"]["rows"]] == [str(note)]
    assert world.row(t, "support_notes", note) == gone

    inv = world.invoice(t, status="paid")
    args = {"invoice_id": inv, "amount": "10.00", "reason": "stale"}
    pv = ok(write(gw, tok, "refund_invoice", args, dry_run=True))
    world.sql(t, f"UPDATE billing.invoices SET status = 'open' WHERE id = {inv}")
    r = write(gw, tok, "refund_invoice", args, key=newkey(), plan_id=pv["plan_id"])
    assert err(r) == (409, "plan_stale")
    data = r.json()["error"]["data"]
    assert data["inserts_planned"] == {"billing.refunds": 1} and data["inserts_now"] == {}
    assert world.sql(t, f"SELECT count(*) FROM billing.refunds WHERE invoice_id = {inv}").split()[-1] == "0"
    assert world.row(t, "invoices", inv)["status"] == "open"


def test_plan_with_other_arguments_or_tool(gw, world, tok):
    t = world.a
    inv = world.invoice(t)
    before = world.row(t, "invoices", inv)
    pv = ok(write(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "void"}, dry_run=True))
    cases = [
        ("update_invoice_status", {"invoice_id": inv, "status": "paid"}, pv["plan_id"]),
        ("refund_invoice", {"invoice_id": inv, "amount": "1", "reason": "x"}, pv["plan_id"]),
        ("update_invoice_status", {"invoice_id": inv, "status": "void"}, str(uuid.uuid4())),
        ("update_invoice_status", {"invoice_id": inv, "status": "void"}, str(uuid.uuid4()).upper()),
    ]
    for name, args, plan in cases:
        key = newkey()
        r = write(gw, tok, name, args, key=key, plan_id=plan)
        assert err(r) == (409, "plan_mismatch"), (name, args, r.text)
        assert world.keyrow(t, key) is None
    # Another tenant cannot use our plan, even with the same arguments.
    tb = world.mint(world.b)
    r = write(gw, tb, "update_invoice_status", {"invoice_id": inv, "status": "void"},
              key=newkey(), plan_id=pv["plan_id"])
    assert err(r) == (409, "plan_mismatch")
    assert world.row(t, "invoices", inv) == before


def test_malformed_plan_id_is_a_bad_parameter(gw, world, tok):
    """A plan id that is no call id is -32602, is recorded, and disturbs no other call (call
    records are written in shared batches: one record that cannot be stored must not take
    the others down with it)."""
    t = world.a
    inv = world.invoice(t)
    task = f"badplan-{secrets.token_hex(4)}"
    tk = world.mint(t, "--task", task)
    reader = world.mint(world.b, tools=READ_TOOLS)
    bads = ["x" * 36, "not-a-plan", "{" * 36, "0" * 36]
    answers, reads = [], []

    def bad(plan):
        answers.append(write(gw, tk, "update_invoice_status", {"invoice_id": inv, "status": "void"},
                             key=newkey(), plan_id=plan))

    def read():
        reads.append(write(gw, reader, "get_customer", {"customer_id": world.cust[world.b][0]}))

    threads = [threading.Thread(target=bad, args=(p,)) for p in bads * 3]
    threads += [threading.Thread(target=read) for _ in range(24)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for r in answers:
        assert r.status_code == 200 and err(r) == (-32602, "invalid_params"), r.text
    for r in reads:
        assert r.status_code == 200 and ok(r)["row_count"] == 1, r.text
    assert world.row(t, "invoices", inv)["status"] == "open"
    n = world.cluster.psql(f"SELECT count(*) FROM airlock.calls WHERE task = '{task}' "
                           f"AND reason = 'invalid_params'").strip()
    assert n == str(len(answers))


def test_header_key_that_is_not_utf8(gw, world, tok):
    """An Idempotency-Key header that is not UTF-8 (headers are bytes) is a bad parameter,
    with a record, not a fault or an unrecorded call."""
    t = world.a
    task = f"badkey-{secrets.token_hex(4)}"
    tk = world.mint(t, "--task", task)
    body = f"bad header {secrets.token_hex(4)}"
    r = requests.post(gw.url + "/rpc", timeout=15, data=json.dumps({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "add_support_note", "arguments": {"customer_id": world.cust[t][0], "body": body}}}),
        headers={**JSON, "Authorization": f"Bearer {tk}", "Idempotency-Key": b"k\xff\xfe"})
    assert r.status_code == 200 and err(r) == (-32602, "invalid_params"), r.text
    assert world.notes(t, body) == 0
    n = world.cluster.psql(f"SELECT count(*) FROM airlock.calls WHERE task = '{task}'").strip()
    assert n == "1"


def test_expired_plan(gw, world, tok):
    t = world.a
    inv = world.invoice(t)
    args = {"invoice_id": inv, "status": "void"}
    pv = ok(write(gw, tok, "update_invoice_status", args, dry_run=True))
    out = world.cluster.psql(f"UPDATE airlock.plans SET expires_at = now() - interval '1 s' "
                             f"WHERE id = '{pv['plan_id']}'")
    assert out.strip() == "UPDATE 1"
    key = newkey()
    r = write(gw, tok, "update_invoice_status", args, key=key, plan_id=pv["plan_id"])
    assert err(r) == (409, "plan_expired")
    assert world.row(t, "invoices", inv)["status"] == "open"
    assert world.keyrow(t, key) is None


# ---------------------------------------------------------------------------------------
# Row caps and constraints

def test_write_over_its_row_cap(start_daemon, world, tmp_path):
    tools = tmp_path / "tools"
    shutil.copytree(ROOT / "tools", tools)
    (tools / "touch_notes.json").write_text(json.dumps({
        "name": "touch_notes", "description": "Appends ! to every note of a customer.",
        "kind": "write", "destructive": True,
        "arguments": {"type": "object", "properties": {
            "customer_id": {"type": "integer", "minimum": 1}},
            "required": ["customer_id"], "additionalProperties": False},
        "statement": "UPDATE billing.support_notes SET body = body || '!' "
                     "WHERE customer_id = $customer_id RETURNING id",
        "max_rows": 1, "timeout_ms": 2000}))
    d = start_daemon("--tools", str(tools), *NO_LIMITS)
    t = world.a
    cust = world.customer(t)
    n1, n2 = world.note(t, "cap one", cust), world.note(t, "cap two", cust)
    tk = world.mint(t, tools=["touch_notes"])
    key = newkey("cap")
    sc = tool_error(write(d, tk, "touch_notes", {"customer_id": cust}, key=key))
    e = sc["error"]
    assert e["reason"] == "row_cap_exceeded" and e["count"] == 2 and e["max_rows"] == 1
    assert "2" in e["message"] and "nothing was changed" in e["message"]
    assert world.row(t, "support_notes", n1)["body"] == "cap one"
    assert world.row(t, "support_notes", n2)["body"] == "cap two"
    assert world.keyrow(t, key) is None
    assert world.record(sc["call_id"])[:3] == ("tool_error", "row_cap_exceeded", key)
    assert world.changes(sc["call_id"]) == []
    # The same key, within the cap, commits.
    world.sql(t, f"UPDATE billing.support_notes SET customer_id = {world.cust[t][0]} WHERE id = {n2}")
    sc = ok(write(d, tk, "touch_notes", {"customer_id": cust}, key=key))
    assert sc["row_count"] == 1
    assert world.row(t, "support_notes", n1)["body"] == "cap one!"
    assert world.row(t, "support_notes", n2)["body"] == "cap two"


def test_constraint_violation_rolls_back(gw, world, tok):
    t = world.a
    own = world.cust[t][0]
    other_inv = world.invoice(world.b)
    cases = [
        ({"customer_id": world.cust[world.b][0]}, "support_notes_tenant_customer_id_fkey"),
        ({"customer_id": 987654321}, "support_notes_tenant_customer_id_fkey"),
        ({"customer_id": own, "invoice_id": other_inv}, "support_notes_tenant_invoice_id_fkey"),
    ]
    before = world.digest()
    for extra, constraint in cases:
        key, body = newkey("fk"), f"fk note {secrets.token_hex(4)}"
        r = write(gw, tok, "add_support_note", {**extra, "body": body}, key=key)
        sc = tool_error(r)
        e = sc["error"]
        assert e["reason"] == "constraint_violated"
        assert e["constraint"] == constraint, e
        assert constraint in e["message"]
        assert r.json()["result"]["content"][0]["text"] == e["message"]
        # Only the constraint: no SQL, no table, no key values, no other tenant.
        for word in ("Key (", "DETAIL", "INSERT", "SELECT", "billing.", "violates foreign",
                     world.b, "is not present"):
            assert word not in e["message"], (word, e["message"])
        assert not any(ch.isdigit() for ch in e["message"]), e["message"]
        for word in ("Key (", "DETAIL", "INSERT INTO", "billing.", world.b):
            assert word not in r.text, (word, r.text)
        # Fully rolled back: no note, no captured change, no key; the record says why.
        assert world.notes(t, body) == 0 and world.notes(world.b, body) == 0
        assert world.changes(sc["call_id"]) == []
        assert world.keyrow(t, key) is None
        assert world.record(sc["call_id"])[:3] == ("tool_error", "constraint_violated", key)
        # The key is free: a valid call with it commits.
        good = ok(write(gw, tok, "add_support_note", {"customer_id": own, "body": body}, key=key))
        assert good["replayed"] is False and world.notes(t, body) == 1
        world.sql(t, f"UPDATE billing.support_notes SET deleted_at = now() WHERE body = '{body}'")
    after = world.digest()
    assert after[(world.b, "support_notes")] == before[(world.b, "support_notes")]


# ---------------------------------------------------------------------------------------
# Revert

def test_revert_refusals(gw, world, tok):
    t = world.a
    # A token without the revert grant, and force without the admin credential.
    plain = world.mint(t)
    w_key = newkey()
    w = ok(write(gw, tok, "add_support_note", {"customer_id": world.cust[t][0],
                                               "body": f"rv {secrets.token_hex(4)}"}, key=w_key))
    assert err(revert(gw, plain, w["call_id"], key=newkey())) == (403, "tool_not_granted")
    assert err(revert(gw, tok, w["call_id"], key=newkey(), force=True)) == (403, "admin_required")
    # A revert is keyed like any write; its preview consumes no key.
    assert err(revert(gw, tok, w["call_id"])) == (-32602, "key_required")
    key = newkey()
    pv = ok(revert(gw, tok, w["call_id"], key=key, dry_run=True))
    assert pv["dry_run"] is True and world.keyrow(t, key) is None
    # A key used for a write is another call's key for a revert.
    assert err(revert(gw, tok, w["call_id"], key=w_key)) == (422, "key_mismatch")
    assert world.row(t, "support_notes", w["rows"][0]["id"])["deleted_at"] is None
    # Unknown, malformed and another tenant's call: one and the same answer.
    tb = world.mint(world.b, "--revert")
    wb = ok(write(gw, tb, "add_support_note", {"customer_id": world.cust[world.b][0],
                                               "body": f"rvb {secrets.token_hex(4)}"}, key=newkey()))
    answers = []
    for cid in (wb["call_id"], str(uuid.uuid4()), "not-a-call", "x" * 36):
        r = revert(gw, tok, cid, key=newkey())
        assert r.status_code == 200 and err(r) == (-32602, "call_not_found"), r.text
        answers.append(r.json()["error"])
    assert all(a == answers[0] for a in answers), answers
    # A call id that is not even a string is malformed params.
    assert err(revert(gw, tok, 42, key=newkey())) == (-32602, "invalid_params")
    assert world.row(world.b, "support_notes", wb["rows"][0]["id"])["deleted_at"] is None
    # A read, a refusal, a tool error and a preview are not revertible.
    rd = ok(write(gw, tok, "get_customer", {"customer_id": world.cust[t][0]}))
    pv = ok(write(gw, tok, "add_support_note", {"customer_id": world.cust[t][0], "body": "p"}, dry_run=True))
    te = tool_error(write(gw, tok, "add_support_note", {"customer_id": 987654321, "body": "x"}, key=newkey()))
    task = rpc(gw, tok, "airlock/tokens.self").json()["result"]["task"]
    write(gw, tok, "add_support_note", {"customer_id": world.cust[t][0], "body": "refused"})
    refused = world.cluster.psql(f"SELECT id FROM airlock.calls WHERE task = '{task}' AND "
                                 f"reason = 'key_required' ORDER BY at DESC LIMIT 1").strip()
    for cid in (rd["call_id"], pv["call_id"], te["call_id"], refused):
        r = revert(gw, tok, cid, key=newkey())
        assert err(r) == (-32602, "not_revertible"), (cid, r.text)


def test_revert_of_changed_row_conflicts_then_force(gw, world, tok):
    t = world.a
    inv = world.invoice(t)
    w = ok(write(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "paid"}, key=newkey()))
    paid = world.row(t, "invoices", inv)
    world.sql(t, f"UPDATE billing.invoices SET amount = 55.55 WHERE id = {inv}")
    changed = world.row(t, "invoices", inv)
    key = newkey()
    r = revert(gw, tok, w["call_id"], key=key)
    assert err(r) == (409, "revert_conflict")
    msg = r.json()["error"]["message"]
    assert "billing.invoices" in msg and str(inv) in msg and "nothing was reverted" in msg
    assert world.row(t, "invoices", inv) == changed
    assert world.keyrow(t, key) is None
    # A preview of the revert refuses the same way.
    assert err(revert(gw, tok, w["call_id"], dry_run=True)) == (409, "revert_conflict")
    # force is the admin's: it puts back the before-image over the later change.
    fk = newkey()
    rv = ok(revert(gw, world.admin, w["call_id"], key=fk, force=True))
    now = world.row(t, "invoices", inv)
    assert now["status"] == "open" and now["paid_at"] is None and now["amount"] == 100.10
    assert paid["status"] == "paid"
    rec = world.record(rv["call_id"])
    assert rec[:3] == ("ok", "-", fk) and rec[5] == "airlock/calls.revert"
    assert world.keyrow(t, fk) is not None
    assert world.cluster.psql(f"SELECT tenant FROM airlock.calls WHERE id = '{rv['call_id']}'").strip() == t


def test_double_revert_and_revert_of_a_revert(gw, world, tok):
    t = world.a
    inv = world.invoice(t)
    orig = world.row(t, "invoices", inv)
    w = ok(write(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "void"}, key=newkey()))
    voided = world.row(t, "invoices", inv)
    r1 = ok(revert(gw, tok, w["call_id"], key=newkey()))
    assert world.row(t, "invoices", inv) == orig
    # Reverting it again (another key) conflicts: the row is no longer as the call left it.
    r = revert(gw, tok, w["call_id"], key=newkey())
    assert err(r) == (409, "revert_conflict")
    assert world.row(t, "invoices", inv) == orig
    # Reverting the revert restores the original effect, and that one can be undone again.
    r2 = ok(revert(gw, tok, r1["call_id"], key=newkey()))
    assert world.row(t, "invoices", inv) == voided
    ok(revert(gw, tok, r2["call_id"], key=newkey()))
    assert world.row(t, "invoices", inv) == orig
    # r2's row is no longer as r2 left it.
    assert err(revert(gw, tok, r2["call_id"], key=newkey())) == (409, "revert_conflict")
    assert world.row(t, "invoices", inv) == orig


def test_revert_of_soft_delete_and_of_insert(gw, world, tok):
    t = world.a
    body = f"soft {secrets.token_hex(4)}"
    cust = world.customer(t)
    add = ok(write(gw, tok, "add_support_note", {"customer_id": cust, "body": body}, key=newkey()))
    nid = int(add["rows"][0]["id"])
    live = lambda: world.sql(t, f"SELECT count(*) FROM billing.support_notes_live WHERE id = {nid}").split()[-1]
    assert live() == "1"
    dl = ok(write(gw, tok, "delete_support_note", {"note_id": nid}, key=newkey()))
    assert dl["rows"][0]["deleted_at"] is not None
    assert world.row(t, "support_notes", nid)["deleted_at"] is not None and live() == "0"
    # No hard delete: the row is there, out of the live view; the revert brings it back.
    rv = ok(revert(gw, tok, dl["call_id"], key=newkey()))
    restored = world.row(t, "support_notes", nid)
    assert restored["deleted_at"] is None and restored["body"] == body and live() == "1"
    assert [(c["table"], c["action"], c["after"]["deleted_at"]) for c in rv["changes"]] == \
        [("billing.support_notes", "update", None)]
    # Reverting the insert soft-deletes the note it made.
    ok(revert(gw, tok, add["call_id"], key=newkey()))
    assert world.row(t, "support_notes", nid)["deleted_at"] is not None and live() == "0"
    assert world.notes(t, body) == 1


def test_refund_changes_two_tables_and_reverts(gw, world, tok):
    t = world.a
    inv = world.invoice(t, status="paid", amount="80.00")
    orig = world.row(t, "invoices", inv)
    key = newkey()
    sc = ok(write(gw, tok, "refund_invoice", {"invoice_id": inv, "amount": "30.50",
                                              "reason": "customer asked"}, key=key))
    [refund] = sc["rows"]
    assert refund["amount"] == "30.50" and refund["invoice_id"] == str(inv)
    acts = sorted((c["table"], c["action"]) for c in sc["changes"])
    assert acts == [("billing.invoices", "update"), ("billing.refunds", "create")]
    # The invoice's images show only what the tool declares (its result columns by name):
    # its status is not among them.  The record keeps it.
    upd = [c for c in sc["changes"] if c["table"] == "billing.invoices"][0]
    assert "status" not in upd["before"] and "status" not in upd["after"]
    assert upd["key"]["id"] == str(inv) and upd["after"]["id"] == str(inv)
    assert world.row(t, "invoices", inv)["status"] == "refunded"
    rrow = world.row(t, "refunds", refund["id"])
    assert rrow["deleted_at"] is None and rrow["reason"] == "customer asked"
    caught = world.changes(sc["call_id"])
    assert sorted((x[0], x[1]) for x in caught) == [("billing.invoices", "update"),
                                                    ("billing.refunds", "insert")]
    [(_, _, _, before, after)] = [x for x in caught if x[0] == "billing.invoices"]
    assert (before["status"], after["status"]) == ("paid", "refunded")
    # A refund of an invoice that is not paid does nothing (no rows).
    again = ok(write(gw, tok, "refund_invoice", {"invoice_id": inv, "amount": "1.00",
                                                 "reason": "twice"}, key=newkey()))
    assert again["rows"] == [] and again["changes"] == []
    # The revert soft-deletes the refund and puts the invoice back.
    rv = ok(revert(gw, tok, sc["call_id"], key=newkey()))
    assert sorted((c["table"], c["action"]) for c in rv["changes"]) == \
        [("billing.invoices", "update"), ("billing.refunds", "update")]
    assert world.row(t, "invoices", inv) == orig
    gone = world.row(t, "refunds", refund["id"])
    assert gone["deleted_at"] is not None and {**gone, "deleted_at": None} == rrow
    assert world.sql(t, f"SELECT count(*) FROM billing.refunds_live WHERE id = {refund['id']}").split()[-1] == "0"


# ---------------------------------------------------------------------------------------
# The call record and calls.get

def test_call_records_of_writes(gw, world):
    t = world.a
    task = f"task-{secrets.token_hex(4)}"
    tk = world.mint(t, "--task", task, "--revert")
    inv = world.invoice(t)
    args = {"invoice_id": inv, "status": "void"}
    key = newkey()
    pv = ok(write(gw, tk, "update_invoice_status", args, dry_run=True))
    write(gw, tk, "update_invoice_status", args)                                    # no key
    sc = ok(write(gw, tk, "update_invoice_status", args, key=key, plan_id=pv["plan_id"]))
    rp = ok(write(gw, tk, "update_invoice_status", args, key=key))                  # replay
    write(gw, tk, "update_invoice_status", {**args, "status": "paid"}, key=key)     # 422
    te = tool_error(write(gw, tk, "add_support_note", {"customer_id": 987654321, "body": "x"}, key=newkey()))
    rkey = newkey()
    rv = ok(revert(gw, tk, sc["call_id"], key=rkey))
    rows = world.cluster.psql(
        f"SELECT id, method, coalesce(tool, '-'), outcome, coalesce(reason, '-'), "
        f"coalesce(idempotency_key, '-'), coalesce(plan_id::text, '-'), dry_run, "
        f"(SELECT count(*) FROM airlock.changes x WHERE x.call_id = c.id) "
        f"FROM airlock.calls c WHERE task = '{task}' ORDER BY at").strip().split("\n")
    got = [r.split("|") for r in rows]
    tc, uis = "tools/call", "update_invoice_status"
    want = [
        [pv["call_id"], tc, uis, "ok", "-", "-", "-", "t", "1"],
        [None, tc, uis, "refused", "key_required", "-", "-", "f", "0"],
        [sc["call_id"], tc, uis, "ok", "-", key, pv["plan_id"], "f", "1"],
        [None, tc, uis, "ok", "-", key, "-", "f", "0"],
        [None, tc, uis, "refused", "key_mismatch", key, "-", "f", "0"],
        [te["call_id"], tc, "add_support_note", "tool_error", "constraint_violated", None, "-", "f", "0"],
        [rv["call_id"], "airlock/calls.revert", "airlock/calls.revert", "ok", "-", rkey, "-", "f", "1"],
    ]
    assert len(got) == len(want), got
    for g, w in zip(got, want):
        assert all(x is None or x == y for x, y in zip(w, g)), (w, g)
    # The replay has a record of its own, and answered with the original's call id.
    assert rp["call_id"] == sc["call_id"] and got[3][0] != sc["call_id"]
    # The committed write's captured change references it and holds both images.
    [(table, op, k, b, a)] = world.changes(sc["call_id"])
    assert (table, op, b["status"], a["status"], k) == ("billing.invoices", "update", "open",
                                                        "void", {"id": inv, "tenant": f"tenant_{t}"})
    # The record's arguments are the call's.
    assert json.loads(world.cluster.psql(f"SELECT arguments FROM airlock.calls WHERE id = '{sc['call_id']}'")) == args


def test_calls_get_limits_images_to_tool_columns(gw, world):
    t = world.a
    task = f"get-{secrets.token_hex(4)}"
    tk = world.mint(t, "--task", task)
    inv = world.invoice(t)
    sc = ok(write(gw, tk, "update_invoice_status", {"invoice_id": inv, "status": "void"}, key=newkey()))
    r = rpc(gw, tk, "airlock/calls.get", {"call_id": sc["call_id"]})
    got = r.json()["result"]
    call = got["call"]
    assert call["call_id"] == sc["call_id"] and call["tool"] == "update_invoice_status"
    assert call["outcome"] == "ok" and call["dry_run"] is False and call["task"] == task
    [ch] = got["changes"]
    cols = {"id", "number", "status", "amount", "paid_at", "tenant"}
    assert set(ch["before"]) == cols and set(ch["after"]) == cols, ch
    assert (ch["before"]["status"], ch["after"]["status"]) == ("open", "void")
    assert ch["after"]["amount"] == "100.10"
    note = ok(write(gw, tk, "add_support_note", {"customer_id": world.cust[t][0], "body": "g"}, key=newkey()))
    [ch] = rpc(gw, tk, "airlock/calls.get", {"call_id": note["call_id"]}).json()["result"]["changes"]
    assert ch["before"] is None and "deleted_at" not in ch["after"] and ch["after"]["body"] == "g"
    assert set(ch["after"]) == {"id", "customer_id", "invoice_id", "body", "created_at", "tenant"}
    # Another task of the same tenant, another tenant, an unknown id: call_not_found.
    for other in (world.mint(t, "--task", task + "-other"), world.mint(world.b)):
        assert err(rpc(gw, other, "airlock/calls.get", {"call_id": sc["call_id"]})) == (-32602, "call_not_found")
    assert err(rpc(gw, tk, "airlock/calls.get", {"call_id": str(uuid.uuid4())})) == (-32602, "call_not_found")
    # The operator's view (admin credential) has every column.
    full = rpc(gw, world.admin, "airlock/calls.get", {"call_id": sc["call_id"]}).json()["result"]
    assert {"customer_id", "currency", "deleted_at"} <= set(full["changes"][0]["after"])


# ---------------------------------------------------------------------------------------
# SIGKILL in the middle of a stream of keyed writes

def test_sigkill_mid_stream_then_retry(start_daemon, world):
    t, n, nthreads = world.c, 200, 4
    cust = world.cust[t][0]
    tk = world.mint(t, tools=["add_support_note"])
    run = secrets.token_hex(3)
    key = lambda i: f"crash-{run}-k{i}"
    body = lambda i: f"crash {run} #{i}"
    answered = {}
    lock = threading.Lock()

    def sender(idx):
        s = requests.Session()
        for i in idx:
            try:
                r = write(d, tk, "add_support_note", {"customer_id": cust, "body": body(i)},
                          key=key(i), session=s)
            except requests.RequestException:
                return
            if r.status_code == 200 and "result" in r.json():
                with lock:
                    answered[i] = r.json()["result"]["structuredContent"]["call_id"]

    # The daemon's sessions are the gateway role's sessions that were not there before it.
    cluster = world.cluster
    sessions_sql = ("SELECT pid FROM pg_stat_activity WHERE usename = current_user AND "
                    "backend_type = 'client backend' AND pid <> pg_backend_pid()")
    before = set(gateway_sessions(cluster, sessions_sql).split())
    d = start_daemon(*NO_LIMITS)
    threads = [threading.Thread(target=sender, args=(range(j, n, nthreads),)) for j in range(nthreads)]
    for th in threads:
        th.start()
    # Killed mid-stream: once answers are coming back (a cold daemon first opens its
    # connections), after half a second or a third of the writes, whichever comes first.
    wait_for(lambda: answered, "a first answer", every=0.005)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.5 and len(answered) < n // 3:
        time.sleep(0.005)
    d.proc.kill()
    d.proc.wait()
    for th in threads:
        th.join(30)
    assert 0 < len(answered) < n, len(answered)
    # A COMMIT sent just before the kill still runs: the state is read once every session
    # of the killed daemon has ended, so every commit that will happen has happened.
    wait_for(lambda: not set(gateway_sessions(cluster, sessions_sql).split()) - before,
             "the killed daemon's sessions to end", every=0.05)

    def state():
        """The tenant's notes of this run and the keys, from one snapshot (the notes are
        read as the tenant, under row-level security; the keys as the operator)."""
        out = world.cluster.psql(
            f"BEGIN ISOLATION LEVEL REPEATABLE READ; SET ROLE tenant_{t}; "
            f"SELECT 'N|' || body || '|' || count(*) FROM billing.support_notes "
            f"WHERE body LIKE 'crash {run} #%' GROUP BY body; RESET ROLE; "
            f"SELECT 'K|' || k.key || '|' || k.call_id || '|' || (k.response IS NOT NULL) || '|' || "
            f"coalesce((SELECT string_agg(x.after->>'body', ',') FROM airlock.changes x "
            f"WHERE x.call_id = k.call_id), '-') FROM airlock.idempotency_keys k "
            f"WHERE k.tenant = '{t}' AND k.key LIKE 'crash-{run}-%'; COMMIT")
        notes, keys = {}, {}
        for line in out.split("\n"):
            if line.startswith("N|"):
                _, b, c = line.rsplit("|", 2)
                notes[b] = int(c)
            elif line.startswith("K|"):
                _, k, cid, has, b = line.split("|")
                keys[k] = (cid, has, b)
        return notes, keys

    def consistent(notes, keys):
        assert all(c == 1 for c in notes.values()), notes
        done = {i for i in range(n) if key(i) in keys}
        # No key without its effect, no effect without its key.
        assert {body(i) for i in done} == set(notes)
        for i in done:
            cid, has, b = keys[key(i)]
            assert has == "true" and b == body(i), (i, keys[key(i)])
        return done

    notes, keys = state()
    done = consistent(notes, keys)
    assert set(answered) <= done
    for i, cid in answered.items():
        assert keys[key(i)][0] == cid

    # A new daemon; every key retried answers, once per key.
    d2 = start_daemon(*NO_LIMITS)
    s = requests.Session()
    for i in range(n):
        r = write(d2, tk, "add_support_note", {"customer_id": cust, "body": body(i)}, key=key(i), session=s)
        sc = ok(r)
        assert sc["replayed"] is (i in done), (i, sc)
        if i in done:
            assert sc["call_id"] == keys[key(i)][0]
        assert sc["rows"][0]["body"] == body(i)
    notes, keys = state()
    assert consistent(notes, keys) == set(range(n))
    assert len(notes) == n


def test_key_ttl_is_configurable(start_daemon, world, tok):
    # Long enough that the key is still there to be read back on a loaded machine (the
    # sweep at start would otherwise take it), short enough to wait out.
    d = start_daemon("--key-ttl", "3")
    key, body = newkey(), f"ttl {secrets.token_hex(4)}"
    c0 = world.cust[world.a][0]
    first = ok(write(d, tok, "add_support_note", {"customer_id": c0, "body": body}, key=key))
    left = world.cluster.psql(f"SELECT expires_at - created_at <= interval '3 s' FROM "
                              f"airlock.idempotency_keys WHERE tenant = '{world.a}' AND key = '{key}'")
    assert left.strip() == "t"
    time.sleep(3.5)
    # Expired: the key is free for other arguments, and commits afresh.
    again = ok(write(d, tok, "add_support_note", {"customer_id": c0, "body": body + "?"}, key=key))
    assert again["replayed"] is False and again["call_id"] != first["call_id"]
    assert world.notes(world.a, body) == 1 and world.notes(world.a, body + "?") == 1


def test_expired_keys_are_swept(start_daemon, world, cluster):
    """A gateway sweeps expired keys in its background round (at start, then once a
    minute): expired keys go, live ones stay."""
    key_old, key_new = newkey("old"), newkey("new")
    for k, at in ((key_old, "now() - interval '1 hour'"), (key_new, "now() + interval '1 hour'")):
        cluster.psql(f"INSERT INTO airlock.idempotency_keys (tenant, key, fingerprint, call_id, "
                     f"expires_at) VALUES ('{world.a}', '{k}', 'f', gen_random_uuid(), {at})")
    start_daemon()
    deadline = time.monotonic() + 10
    while world.keyrow(world.a, key_old) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert world.keyrow(world.a, key_old) is None
    assert world.keyrow(world.a, key_new) is not None


def test_revert_is_limited_to_the_tokens_task(gw, world):
    t = world.a
    mine = world.mint(t, "--revert", "--task", f"task-one-{secrets.token_hex(3)}")
    other = world.mint(t, "--revert", "--task", f"task-two-{secrets.token_hex(3)}")
    w = ok(write(gw, mine, "add_support_note", {"customer_id": world.cust[t][0],
                                                "body": f"task {secrets.token_hex(4)}"}, key=newkey()))
    # Same tenant, another task: the call is not there for it, and nothing changes.
    assert err(revert(gw, other, w["call_id"], key=newkey())) == (-32602, "call_not_found")
    assert world.row(t, "support_notes", w["rows"][0]["id"])["deleted_at"] is None
    assert ok(revert(gw, mine, w["call_id"], key=newkey()))["dry_run"] is False
    assert world.row(t, "support_notes", w["rows"][0]["id"])["deleted_at"] is not None


def test_revert_params_are_checked(gw, world, tok):
    t = world.a
    w = ok(write(gw, tok, "add_support_note", {"customer_id": world.cust[t][0],
                                               "body": f"params {secrets.token_hex(4)}"}, key=newkey()))
    for extra in ({"dry_run": "true"}, {"force": 1}, {"bogus": 1}, {"plan_id": "not-a-uuid"}):
        r = revert(gw, tok, w["call_id"], key=newkey(), **extra)
        assert err(r) == (-32602, "invalid_params"), (extra, r.text)
    # Nothing was reverted by any of them, and each left a record.
    assert world.row(t, "support_notes", w["rows"][0]["id"])["deleted_at"] is None


def test_revert_preview_commits_with_its_plan(gw, world, tok):
    t = world.a
    w = ok(write(gw, tok, "add_support_note", {"customer_id": world.cust[t][0],
                                               "body": f"rvplan {secrets.token_hex(4)}"}, key=newkey()))
    pv = ok(revert(gw, tok, w["call_id"], dry_run=True))
    assert pv["dry_run"] is True and pv["plan_id"] == pv["call_id"]
    assert world.row(t, "support_notes", w["rows"][0]["id"])["deleted_at"] is None
    done = ok(revert(gw, tok, w["call_id"], key=newkey(), plan_id=pv["plan_id"]))
    assert done["plan_id"] == pv["plan_id"]
    assert world.row(t, "support_notes", w["rows"][0]["id"])["deleted_at"] is not None


def test_retry_after_plan_expired_replays(gw, world, tok):
    t = world.a
    inv = world.invoice(t)
    pv = ok(write(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "void"}, dry_run=True))
    key = newkey()
    first = ok(write(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "void"},
                     key=key, plan_id=pv["plan_id"]))
    world.cluster.psql(f"UPDATE airlock.plans SET expires_at = now() - interval '1 s' "
                       f"WHERE id = '{pv['plan_id']}'")
    again = ok(write(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "void"},
                     key=key, plan_id=pv["plan_id"]))
    assert again["replayed"] is True and again["call_id"] == first["call_id"]


def test_replay_is_the_same_answer(gw, world, tok):
    t = world.a
    key = newkey()
    args = {"customer_id": world.cust[t][0], "body": f"same {secrets.token_hex(4)}"}
    r1 = write(gw, tok, "add_support_note", args, key=key)
    r2 = write(gw, tok, "add_support_note", args, key=key)
    a, b = r1.json()["result"], r2.json()["result"]
    # Byte for byte, but for replayed: the text item, and the order of every object's keys.
    assert a["content"][0]["text"].replace('"replayed":false', '"replayed":true') == b["content"][0]["text"]
    assert list(a["structuredContent"]["rows"][0]) == list(b["structuredContent"]["rows"][0])


# ---------------------------------------------------------------------------------------
# Reverts count against the quota; answers show the tool's columns only

def test_a_revert_counts_against_the_quota(gw, world):
    t = world.a
    tk = world.mint(t, "--revert", "--max-calls", "3")
    inv = world.invoice(t)
    w = ok(write(gw, tk, "update_invoice_status", {"invoice_id": inv, "status": "void"}, key=newkey()))
    r1 = ok(revert(gw, tk, w["call_id"], key=newkey()))
    r2 = ok(revert(gw, tk, r1["call_id"], key=newkey()))
    assert world.row(t, "invoices", inv)["status"] == "void"
    me = rpc(gw, tk, "airlock/tokens.self").json()["result"]
    assert me["calls_used"] == 3 and me["calls_left"] == 0
    # No fourth state change, not even a revert of the revert of the revert.
    assert err(revert(gw, tk, r2["call_id"], key=newkey())) == (403, "quota_exhausted")
    assert err(revert(gw, tk, r2["call_id"], dry_run=True)) == (403, "quota_exhausted")
    assert world.row(t, "invoices", inv)["status"] == "void"


INVOICE_TOOL_COLUMNS = {"id", "number", "status", "amount", "paid_at", "tenant"}


def test_previews_answers_and_replays_show_only_the_tools_columns(gw, world):
    """update_invoice_status returns id, number, status, amount and paid_at: an invoice's
    customer, currency and dates are not the tool's to show."""
    t = world.a
    pv_tok = world.mint(t, "--preview-only", tools=["update_invoice_status"])
    inv = world.invoice(t)
    args = {"invoice_id": inv, "status": "void"}
    shown = []
    pv = ok(write(gw, pv_tok, "update_invoice_status", args))
    shown.append(pv)
    tk = world.mint(t, "--revert", tools=["update_invoice_status"])
    pv = ok(write(gw, tk, "update_invoice_status", args, dry_run=True))
    key = newkey()
    sc = ok(write(gw, tk, "update_invoice_status", args, key=key, plan_id=pv["plan_id"]))
    again = ok(write(gw, tk, "update_invoice_status", args, key=key))
    assert again["replayed"] is True
    rv = ok(revert(gw, tk, sc["call_id"], key=newkey()))
    rrv = ok(revert(gw, tk, rv["call_id"], dry_run=True))
    got = rpc(gw, tk, "airlock/calls.get", {"call_id": rv["call_id"]}).json()["result"]
    shown += [pv, sc, again, rv, rrv, got]
    for answer in shown:
        for ch in answer["changes"]:
            for img in (ch["before"], ch["after"]):
                assert set(img) == INVOICE_TOOL_COLUMNS, (answer, img)
    stored = json.loads(world.cluster.psql(
        f"SELECT response FROM airlock.idempotency_keys WHERE tenant = '{t}' AND key = '{key}'"))
    for ch in stored["changes"]:
        assert set(ch["before"]) == INVOICE_TOOL_COLUMNS and set(ch["after"]) == INVOICE_TOOL_COLUMNS
    # The record keeps the whole images, for revert.
    [(_, _, _, b, a)] = world.changes(sc["call_id"])
    assert {"customer_id", "currency", "issued_at"} <= set(b) and set(b) == set(a)


def test_operator_revert_compares_times_in_utc(gw, world, tok):
    """The change record's images were written by the gateway's UTC session; an operator
    whose environment names another time zone reverts them all the same."""
    t = world.a
    inv = world.invoice(t)
    w = ok(write(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "paid"}, key=newkey()))
    env = {**os.environ, "TZ": "America/New_York", "PGTZ": "America/New_York"}
    p = ctl("call", "revert", w["call_id"], "--db", world.cluster.operator_url, env=env, check=False)
    assert p.returncode == 0, p.stderr
    row = world.row(t, "invoices", inv)
    assert row["status"] == "open" and row["paid_at"] is None
    # And the gateway can revert the operator's revert: its images are in UTC too.
    rv = json.loads(p.stdout)["call_id"]
    ok(revert(gw, world.admin, rv, key=newkey()))
    assert world.row(t, "invoices", inv)["status"] == "paid"


def test_expired_plans_are_swept(start_daemon, world, cluster):
    """Plans expired for over an hour go in the background round; recent ones stay."""
    old, recent = str(uuid.uuid4()), str(uuid.uuid4())
    for pid, at in ((old, "now() - interval '2 hours'"), (recent, "now() - interval '1 minute'")):
        cluster.psql(f"INSERT INTO airlock.plans (id, tenant, tool, fingerprint, updates, inserts,"
                     f" expires_at) VALUES ('{pid}', '{world.a}', 'x', 'f', '[]', '{{}}', {at})")
    start_daemon()
    q = lambda pid: cluster.psql(f"SELECT count(*) FROM airlock.plans WHERE id = '{pid}'").strip()
    deadline = time.monotonic() + 10
    while q(old) != "0" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert q(old) == "0" and q(recent) == "1"
