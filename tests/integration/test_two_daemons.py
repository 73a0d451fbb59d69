"""Two airlockd on one database: the same keyed writes sent to both at once have one effect
per key, a token revoked through one is refused by the other, and both daemons' sealers
leave an intact chain."""
import secrets
import threading
import time

import pytest
import requests

from conftest import ROOT, Daemon, ctl, own_cluster
from world import NO_LIMITS, World, rpc, wait_until

KEYS = 50
PER_DAEMON = 2      # copies of each keyed write sent to each daemon, all at once


@pytest.fixture(scope="module")
def pair():
    """A tenant with a customer on a cluster of our own, and two airlockd on it."""
    with own_cluster(prefix="alk-two-") as c:
        p = World(c, "two", tenants=1, customers=1, admin=True)
        args = ["--db", c.gateway_url, "--tools", str(ROOT / "tools"), "--admin-key-file",
                p.admin_key, *NO_LIMITS]
        p.daemons = [Daemon(args), Daemon(args)]
        yield p
        for d in p.daemons:
            assert d.stop() == 0, d.logtext()[-3000:]


def test_same_keyed_writes_to_both_one_effect_per_key(pair):
    token = pair.token(pair.a, "add_support_note")
    tag = secrets.token_hex(4)
    keys = [f"two-{tag}-{i}" for i in range(KEYS)]
    answers = {k: [] for k in keys}
    lock = threading.Lock()

    def send(d, key):
        s = requests.Session()
        args = {"customer_id": pair.cust[pair.a][0], "body": f"note {key}"}
        barrier.wait()
        # A duplicate refused while the first is in flight (409 key_in_flight) is tried
        # again until it is answered: the answer is then a replay.
        deadline = time.monotonic() + 60
        while True:
            r = rpc(d, token, "tools/call", {"name": "add_support_note", "arguments": args,
                                             "idempotency_key": key}, session=s)
            assert r.status_code < 500, r.text
            body = r.json()
            if "error" in body and body["error"]["data"]["reason"] == "key_in_flight":
                assert time.monotonic() < deadline, body
                time.sleep(body["error"]["data"]["retryAfterSeconds"] / 10)   # a client's pause
                continue
            assert "result" in body and body["result"]["isError"] is False, body
            with lock:
                answers[key].append(body["result"]["structuredContent"])
            return

    # Key by key, every copy to both daemons at once; ten keys in flight together.
    for start in range(0, KEYS, 10):
        batch = keys[start:start + 10]
        n = len(batch) * 2 * PER_DAEMON
        barrier = threading.Barrier(n)
        threads = [threading.Thread(target=send, args=(d, k)) for k in batch
                   for d in pair.daemons for _ in range(PER_DAEMON)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
            assert not t.is_alive()

    c = pair.cluster
    for k in keys:
        got = answers[k]
        assert len(got) == 2 * PER_DAEMON, (k, got)
        fresh = [a for a in got if not a["replayed"]]
        assert len(fresh) == 1, (k, got)
        assert {a["call_id"] for a in got} == {fresh[0]["call_id"]}
    # In the database: one note per key, one key row, one recorded call with its one change.
    counts = c.psql(f"SET ROLE tenant_{pair.a}; SELECT body, count(*) FROM billing.support_notes"
                    f" WHERE body LIKE 'note two-{tag}-%' GROUP BY body")
    per_body = dict(line.split("|") for line in counts.split("\n") if "|" in line)
    assert per_body == {f"note {k}": "1" for k in keys}
    rows = c.psql(f"SELECT k.key, count(DISTINCT k.call_id), count(DISTINCT ch.id)"
                  f" FROM airlock.idempotency_keys k JOIN airlock.calls cl ON cl.id = k.call_id"
                  f" JOIN airlock.changes ch ON ch.call_id = k.call_id"
                  f" WHERE k.tenant = '{pair.a}' AND k.key LIKE 'two-{tag}-%' GROUP BY k.key")
    per_key = {line.split("|")[0]: line.split("|")[1:] for line in rows.split("\n") if "|" in line}
    assert per_key == {k: ["1", "1"] for k in keys}
    # Every answer has its record (a replay is recorded as a call of its own).
    ok_calls = c.psql(f"SELECT count(*) FROM airlock.calls WHERE tenant = '{pair.a}'"
                      f" AND idempotency_key LIKE 'two-{tag}-%' AND outcome = 'ok'"
                      f" AND NOT dry_run").strip()
    assert ok_calls == str(KEYS * 2 * PER_DAEMON)


def test_revoked_through_one_refused_by_the_other(pair):
    one, other = pair.daemons
    token = pair.token(pair.a, "get_customer")
    me = rpc(other, token, "airlock/tokens.self", {}).json()["result"]
    assert rpc(one, token, "airlock/tokens.self", {}).json()["result"] == me
    # Both know the token: each keeps its principal in memory from here.
    args = {"name": "get_customer", "arguments": {"customer_id": pair.cust[pair.a][0]}}
    for d in pair.daemons:
        assert "result" in rpc(d, token, "tools/call", args).json()
        assert "result" in rpc(d, token, "tools/list", {}).json()
    r = rpc(one, pair.admin, "airlock/tokens.revoke", {"token_id": me["token_id"]})
    assert r.json()["result"]["revoked"] is True, r.text
    revoked_at = time.monotonic()
    # A read on the other is refused by its very next call: it checks in its transaction.
    body = rpc(other, token, "tools/call", args).json()
    assert body["error"]["data"]["reason"] == "token_revoked", body
    # Every other method there within a second (the revocation is announced at once).
    def refused():
        body = rpc(other, token, "tools/list", {}).json()
        return body if "error" in body else None
    body = wait_until(refused, timeout=1.0 - (time.monotonic() - revoked_at), every=0.02,
                      what="the other daemon refusing the token")
    assert body["error"]["data"]["reason"] == "token_revoked", body


def test_both_seal_and_the_chain_holds(pair):
    # Traffic through both, then wait until their sealers (not airlockctl) sealed it all.
    token = pair.token(pair.a, "get_customer")
    for i in range(20):
        d = pair.daemons[i % 2]
        r = rpc(d, token, "tools/call", {"name": "get_customer",
                                         "arguments": {"customer_id": pair.cust[pair.a][0]}})
        assert r.json()["result"]["isError"] is False, r.text
    c = pair.cluster
    wait_until(lambda: c.psql("SELECT count(*) FROM airlock.calls cl WHERE NOT EXISTS"
                              " (SELECT 1 FROM airlock.sealed s WHERE s.call_id = cl.id)"
                              ).strip() == "0", timeout=30, every=0.2,
               what="the daemons' sealers sealing every record")
    p = ctl("audit", "verify", "--db", c.operator_url, check=False)
    assert p.returncode == 0 and p.stdout.startswith("intact:"), p.stdout + p.stderr
    p = ctl("audit", "verify", "--tenant", pair.a, "--db", c.operator_url, check=False)
    assert p.returncode == 0 and p.stdout.startswith("intact:"), p.stdout + p.stderr
