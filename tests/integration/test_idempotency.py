"""Idempotency keys against a real airlockd and PostgreSQL: required for writes, in the
params or a header, checked; a key reused with other arguments; concurrent duplicates (also
of a slow write) with one effect; a SIGKILL in the middle of a stream of keyed writes; the
keys' lifetime and their sweeping; a replay is the same answer.

Every test works on tenants and rows of its own (random names), asserts on the database as
well as on the answers, and never touches another test module's rows."""
import json
import secrets
import subprocess
import threading
import time

import requests

from world import JSON, NO_LIMITS, err, newkey, ok, tool, wait_until, write_fixtures


world, gw, tok = write_fixtures("i")


def test_write_without_key_is_refused(gw, world, tok):
    body = f"no key {secrets.token_hex(4)}"
    r = tool(gw, tok, "add_support_note", {"customer_id": world.cust[world.a][0], "body": body})
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
    sc = ok(tool(gw, tok, "add_support_note", args, headers={"Idempotency-Key": key}))
    assert sc["replayed"] is False and sc["dry_run"] is False and sc["plan_id"] is None
    assert sc["row_count"] == 1 and sc["rows"][0]["body"] == body
    assert isinstance(sc["rows"][0]["id"], str)
    assert world.notes(world.a, body) == 1
    assert world.keyrow(world.a, key) == [sc["call_id"], "t"]
    # The same key in params is the same key: a replay, identical but for replayed.
    again = ok(tool(gw, tok, "add_support_note", args, key=key))
    assert again["replayed"] is True
    assert {**again, "replayed": False} == sc
    again = ok(tool(gw, tok, "add_support_note", args, headers={"Idempotency-Key": key}))
    assert again["call_id"] == sc["call_id"] and again["replayed"] is True
    assert world.notes(world.a, body) == 1


def test_overlong_key(gw, world, tok):
    body = f"long key {secrets.token_hex(4)}"
    args = {"customer_id": world.cust[world.a][0], "body": body}
    assert err(tool(gw, tok, "add_support_note", args, key="k" * 256)) == (-32602, "invalid_params")
    r = tool(gw, tok, "add_support_note", args, headers={"Idempotency-Key": "h" * 256})
    assert err(r) == (-32602, "invalid_params")
    assert err(tool(gw, tok, "add_support_note", args, key="")) == (-32602, "invalid_params")
    assert world.notes(world.a, body) == 0
    key = "m" * 250 + secrets.token_hex(3)[:5]
    assert len(key) == 255
    ok(tool(gw, tok, "add_support_note", args, key=key))
    assert world.notes(world.a, body) == 1 and world.keyrow(world.a, key) is not None


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


def test_key_reused_with_other_arguments(gw, world, tok):
    key, body = newkey(), f"reuse {secrets.token_hex(4)}"
    c0, c1 = world.cust[world.a]
    sc = ok(tool(gw, tok, "add_support_note", {"customer_id": c0, "body": body}, key=key))
    for args in ({"customer_id": c0, "body": body + "!"}, {"customer_id": c1, "body": body}):
        r = tool(gw, tok, "add_support_note", args, key=key)
        assert err(r) == (422, "key_mismatch")
    # Another tool with the same key is other arguments too.
    r = tool(gw, tok, "delete_support_note", {"note_id": int(sc["rows"][0]["id"])}, key=key)
    assert err(r) == (422, "key_mismatch")
    assert world.notes(world.a, body) == 1 and world.notes(world.a, body + "!") == 0
    assert world.row(world.a, "support_notes", sc["rows"][0]["id"])["deleted_at"] is None
    # An expired key is swept: the key is free again.
    out = world.cluster.psql(f"UPDATE airlock.idempotency_keys SET expires_at = now() - interval "
                             f"'1 s' WHERE tenant = '{world.a}' AND key = '{key}'")
    assert out.strip() == "UPDATE 1"
    sx = ok(tool(gw, tok, "add_support_note", {"customer_id": c0, "body": body + "!"}, key=key))
    assert sx["replayed"] is False and world.notes(world.a, body + "!") == 1
    assert world.keyrow(world.a, key) == [sx["call_id"], "t"]
    # Keys are per tenant: tenant b may use the same key for its own write.
    tb = world.mint(world.b)
    sb = ok(tool(gw, tb, "add_support_note", {"customer_id": world.cust[world.b][0],
                                               "body": body}, key=key))
    assert sb["replayed"] is False and sb["call_id"] != sc["call_id"]
    assert world.notes(world.b, body) == 1 and world.notes(world.a, body) == 1


def send_together(n, d, token, name, args, key):
    """n threads, each on its own connection, send the same keyed write at once.  Returns
    (answers, threads), the threads started; an answer is a response or the exception."""
    barrier = threading.Barrier(n)
    answers = [None] * n

    def one(i):
        s = requests.Session()
        barrier.wait()
        try:
            answers[i] = tool(d, token, name, args, key=key, session=s)
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
    again = ok(tool(gw, tok, "add_support_note", args, key=key))
    assert again["replayed"] is True and again["call_id"] == fresh[0]["call_id"]


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
        wait_until(lambda: self.proc.poll() is not None or cluster.psql(
            f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND "
            f"objid = {key} AND objsubid = 1 AND mode = 'ExclusiveLock' AND granted").strip() == "1",
            timeout=60, every=0.02, what="the gate's lock")
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
        warm.append(tool(d, token, "slow_note", args_, dry_run=True, session=requests.Session()))

    threads = [threading.Thread(target=preview, args=(tok_, ten)) for tok_, ten in
               [(tk, t)] * 12 + [(tb, world.b)] * 12]
    try:
        for th in threads:
            th.start()
        wait_until(lambda: at_gate()[1] == 24, timeout=60, every=0.02, what="24 previews at the gate")
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
        waiting = wait_until(settled, timeout=60, every=0.02,
                             what="every duplicate answered or waiting on the key")
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
                r = tool(d, tk, "add_support_note", {"customer_id": cust, "body": body(i)},
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
    wait_until(lambda: answered, timeout=60, every=0.005, what="a first answer")
    t0 = time.monotonic()
    wait_until(lambda: time.monotonic() - t0 >= 0.5 or len(answered) >= n // 3, every=0.005,
               what="half a second or a third of the writes")
    d.proc.kill()
    d.proc.wait()
    for th in threads:
        th.join(30)
    assert 0 < len(answered) < n, len(answered)
    # A COMMIT sent just before the kill still runs: the state is read once every session
    # of the killed daemon has ended, so every commit that will happen has happened.
    wait_until(lambda: not set(gateway_sessions(cluster, sessions_sql).split()) - before,
               timeout=60, what="the killed daemon's sessions to end")

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
        r = tool(d2, tk, "add_support_note", {"customer_id": cust, "body": body(i)}, key=key(i), session=s)
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
    first = ok(tool(d, tok, "add_support_note", {"customer_id": c0, "body": body}, key=key))
    left = world.cluster.psql(f"SELECT expires_at - created_at <= interval '3 s' FROM "
                              f"airlock.idempotency_keys WHERE tenant = '{world.a}' AND key = '{key}'")
    assert left.strip() == "t"
    time.sleep(3.5)        # waiting out the key's life is what is tested
    # Expired: the key is free for other arguments, and commits afresh.
    again = ok(tool(d, tok, "add_support_note", {"customer_id": c0, "body": body + "?"}, key=key))
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
    wait_until(lambda: world.keyrow(world.a, key_old) is None, timeout=10, every=0.2,
               what="the expired key swept")
    assert world.keyrow(world.a, key_new) is not None


def test_replay_is_the_same_answer(gw, world, tok):
    t = world.a
    key = newkey()
    args = {"customer_id": world.cust[t][0], "body": f"same {secrets.token_hex(4)}"}
    r1 = tool(gw, tok, "add_support_note", args, key=key)
    r2 = tool(gw, tok, "add_support_note", args, key=key)
    a, b = r1.json()["result"], r2.json()["result"]
    # Byte for byte, but for replayed: the text item, and the order of every object's keys.
    assert a["content"][0]["text"].replace('"replayed":false', '"replayed":true') == b["content"][0]["text"]
    assert list(a["structuredContent"]["rows"][0]) == list(b["structuredContent"]["rows"][0])
