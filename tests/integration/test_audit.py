"""The audit log: digests set by the database for every writer, the sealer's chain (overall
and per tenant), insert-only tables, verify catching each kind of tampering, export,
replay and retention, against real PostgreSQL clusters and real airlockd processes."""
import hashlib
import json
import resource
import secrets
import subprocess
import threading
import time

import pytest
import requests

from conftest import CTL, ROOT, ctl, own_cluster

JSON = {"Content-Type": "application/json"}
AUDIT_TABLES = ["calls", "changes", "refusals", "checkpoints", "sealed", "tenant_checkpoints"]
A_COLUMN = {"calls": "tenant", "changes": "tenant", "refusals": "client", "checkpoints": "kind",
            "sealed": "tenant", "tenant_checkpoints": "tenant"}
FAST = ["--rate-client", "100000/100000", "--rate-token", "100000/100000",
        "--rate-tenant", "100000/100000"]
ALL_TOOLS = ["get_customer", "lookup_invoices", "update_invoice_status", "add_support_note"]


def rpc(d, token, name, args, **extra):
    params = {"name": name, "arguments": args}
    params.update(extra)
    h = dict(JSON)
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return requests.post(d.url + "/rpc", headers=h, timeout=15, data=json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}))


def audit(c, *args, check=False):
    return ctl("audit", *args, "--db", c.operator_url, check=check)


def own_db():
    """A cluster of our own, migrated, for tests that tamper with the log."""
    return own_cluster("alk-aud-")


def add_records(c, tenant, n):
    """n call records for tenant, written by the operator as airlockctl does; their ids."""
    out = c.psql(f"INSERT INTO airlock.calls (id, at, tenant, token_id, method, tool, arguments,"
                 f" outcome, duration_ms, client) SELECT gen_random_uuid(), now(), '{tenant}',"
                 f" 'abcdef012345', 'tools/call', 'get_customer',"
                 f" jsonb_build_object('customer_id', i), 'ok', i * 0.37, '127.0.0.1'"
                 f" FROM generate_series(1, {n}) i RETURNING id")
    return [x for x in out.split() if len(x) == 36]


def seal(c):
    out = audit(c, "seal", check=True).stdout
    return out.strip().splitlines()[-1].split()[-1]   # "head ID HASH"


def broken(c, *args):
    p = audit(c, "verify", *args)
    assert p.returncode == 65, p.stdout + p.stderr
    return p.stdout.splitlines()[0]


def intact(c, *args):
    p = audit(c, "verify", *args)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("intact:"), p.stdout
    return p.stdout


def as_attacker(c, sql):
    """What an owner who switches the guards off can do."""
    c.psql("ALTER TABLE airlock.calls DISABLE TRIGGER USER;"
           " ALTER TABLE airlock.sealed DISABLE TRIGGER USER;"
           " ALTER TABLE airlock.checkpoints DISABLE TRIGGER USER;"
           " ALTER TABLE airlock.tenant_checkpoints DISABLE TRIGGER USER;" + sql)


class World:
    """A tenant of our own on the shared cluster, with customers, invoices and a token."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.t = f"au{secrets.token_hex(3)}"
        ctl("tenant", "add", self.t, "--db", cluster.operator_url)
        out = cluster.psql(
            f"SET ROLE tenant_{self.t}; INSERT INTO billing.customers (email, name, company) VALUES"
            f" ('a@{self.t}.example', 'Ada', 'Co'), ('b@{self.t}.example', 'Bob', 'Co') RETURNING id")
        self.cust = [int(x) for x in out.split() if x.isdigit()]
        out = cluster.psql(
            f"SET ROLE tenant_{self.t}; INSERT INTO billing.invoices (customer_id, number, status,"
            f" amount, issued_at) VALUES ({self.cust[0]}, '{self.t}-1', 'open', 100.10, now())"
            f" RETURNING id")
        self.inv = [int(x) for x in out.split() if x.isdigit()][0]
        self.token = self.mint()

    def mint(self, tools=ALL_TOOLS):
        argv = ["token", "mint", "--tenant", self.t, "--ttl", "10m", "--db", self.cluster.operator_url]
        for name in tools:
            argv += ["--tool", name]
        return ctl(*argv).stdout.strip()


@pytest.fixture(scope="module")
def world(cluster):
    return World(cluster)


def test_every_writer_gets_a_digest_over_the_canonical_form(cluster, start_daemon, world):
    d = start_daemon()
    r = rpc(d, world.token, "get_customer", {"customer_id": world.cust[0]})
    call_id = r.json()["result"]["structuredContent"]["call_id"]
    rpc(d, "alk_" + "A" * 43, "get_customer", {"customer_id": 1})
    rpc(d, world.token, "update_invoice_status", {"invoice_id": world.inv, "status": "open"},
        idempotency_key=secrets.token_hex(8))
    world.mint()            # airlockctl's own record
    # The digest is SHA-256 of the UTF-8 text of the canonical form, for every row.
    rows = cluster.psql(f"SELECT c.id, c.digest, airlock.call_canonical(c) FROM airlock.calls c"
                        f" WHERE c.tenant = '{world.t}'").strip().splitlines()
    assert len(rows) >= 3
    for row in rows:
        cid, digest, canonical = row.split("|", 2)
        assert hashlib.sha256(canonical.encode()).hexdigest() == digest, row
        assert json.loads(canonical)["id"] == cid
    one = json.loads(cluster.psql(f"SELECT airlock.call_canonical(c) FROM airlock.calls c"
                                  f" WHERE id = '{call_id}'"))
    assert sorted(one) == sorted(["id", "seq", "at", "tenant", "token_id", "task", "method", "tool",
                                  "arguments", "dry_run", "idempotency_key", "plan_id", "outcome",
                                  "reason", "duration_ms", "result_digest", "client", "egress"])
    assert one["at"].endswith("Z") and one["arguments"] == {"customer_id": world.cust[0]}
    # A writer cannot choose its digest: the trigger sets it.
    cluster.psql("INSERT INTO airlock.calls (id, at, method, outcome, digest) VALUES"
                 " (gen_random_uuid(), now(), 'ping', 'ok', 'forged')")
    assert cluster.psql("SELECT count(*) FROM airlock.calls WHERE digest = 'forged'") == "0\n"
    # Captured changes carry theirs too.
    assert cluster.psql("SELECT count(*) FROM airlock.changes WHERE digest IS NULL") == "0\n"


def test_gateway_cannot_update_delete_or_truncate(cluster):
    for t in AUDIT_TABLES:
        for sql in (f"UPDATE airlock.{t} SET {A_COLUMN[t]} = NULL",
                    f"DELETE FROM airlock.{t}", f"TRUNCATE airlock.{t}"):
            p = cluster.psql(sql, url=cluster.gateway_url, check=False)
            assert p.returncode != 0 and "permission denied" in p.stderr, (sql, p.stderr)
    # The owner is refused too, by the triggers (TRUNCATE included).
    for t in AUDIT_TABLES:
        p = cluster.psql(f"TRUNCATE airlock.{t} CASCADE", check=False)
        assert p.returncode != 0 and "insert-only" in p.stderr, (t, p.stderr)
        p = cluster.psql(f"DELETE FROM airlock.{t}", check=False)
        assert p.returncode != 0 and "insert-only" in p.stderr, (t, p.stderr)
    p = cluster.psql("UPDATE airlock.calls SET outcome = 'ok'", check=False)
    assert p.returncode != 0 and "insert-only" in p.stderr
    # And the gateway cannot write a checkpoint of its own: only airlock.seal() does.
    p = cluster.psql("INSERT INTO airlock.checkpoints (id, kind, prev_hash, hash, count) VALUES"
                     f" (999999, 'seal', '{'0' * 64}', '{'1' * 64}', 0)",
                     url=cluster.gateway_url, check=False)
    assert p.returncode != 0 and "permission denied" in p.stderr
    cluster.psql("SELECT * FROM airlock.seal_round()", url=cluster.gateway_url)


def test_verify_catches_an_edited_record():
    with own_db() as c:
        ids = add_records(c, "acme", 5) + add_records(c, "other", 3)
        seal(c)
        intact(c)
        as_attacker(c, f"UPDATE airlock.calls SET outcome = 'refused' WHERE id = '{ids[2]}'")
        assert broken(c) == f"record {ids[2]}: edited (its fields no longer match its digest)"
        assert broken(c, "--tenant", "acme").startswith(f"record {ids[2]}: edited")
        intact(c, "--tenant", "other")
        # Fixing the digest too does not help: the checkpoint holds the one sealed.
        as_attacker(c, f"UPDATE airlock.calls c SET digest = encode(sha256(convert_to("
                       f"airlock.call_canonical(c), 'UTF8')), 'hex') WHERE id = '{ids[2]}'")
        assert broken(c).startswith(f"record {ids[2]}: edited (its digest differs from the one "
                                    f"sealed")


def test_verify_catches_a_removed_record():
    with own_db() as c:
        ids = add_records(c, "acme", 6)
        seal(c)
        as_attacker(c, f"DELETE FROM airlock.calls WHERE id = '{ids[3]}'")
        assert broken(c).startswith(f"record {ids[3]}: removed")
        # Removing its seal entry as well leaves a hole in the checkpoint.
        as_attacker(c, f"DELETE FROM airlock.sealed WHERE call_id = '{ids[3]}'")
        assert broken(c).startswith("checkpoint 1 position 3: removed")


def test_verify_catches_reordered_records():
    with own_db() as c:
        ids = add_records(c, "acme", 6)
        seal(c)
        # Swap the sealed order of the second and fifth records.
        as_attacker(c, f"UPDATE airlock.sealed SET position = 100 WHERE call_id = '{ids[1]}';"
                       f" UPDATE airlock.sealed SET position = 1 WHERE call_id = '{ids[4]}';"
                       f" UPDATE airlock.sealed SET position = 4 WHERE call_id = '{ids[1]}'")
        assert broken(c).startswith(f"record {ids[4]}: reordered")
    with own_db() as c:
        ids = add_records(c, "acme", 4)
        seal(c)
        # Swapping two records' digests (and sealed digests) is an edit of both.
        as_attacker(c, f"UPDATE airlock.calls SET digest = CASE id WHEN '{ids[0]}' THEN"
                       f" (SELECT digest FROM airlock.calls WHERE id = '{ids[1]}') ELSE"
                       f" (SELECT digest FROM airlock.calls WHERE id = '{ids[0]}') END"
                       f" WHERE id IN ('{ids[0]}', '{ids[1]}')")
        assert broken(c).startswith(f"record {ids[0]}: edited")


def test_verify_catches_an_inserted_record():
    with own_db() as c:
        add_records(c, "acme", 4)
        seal(c)
        forged = "6f0e6d8c-0000-4000-8000-000000000001"
        as_attacker(c, "ALTER TABLE airlock.calls DISABLE TRIGGER airlock_digest;"
                       " INSERT INTO airlock.calls (id, at, tenant, method, outcome, digest)"
                       f" VALUES ('{forged}', now() - interval '1 day', 'acme', 'tools/call',"
                       f" 'ok', '{'ab' * 32}')")
        assert broken(c) == (f"record {forged}: inserted (sealed nowhere, and its digest does not "
                             f"match its fields: forged)")
        # Sealed by a later run, the forged digest is still caught.
        seal(c)
        assert broken(c).startswith(f"record {forged}: edited")
    with own_db() as c:
        add_records(c, "acme", 4)
        seal(c)
        # An entry slipped into a checkpoint changes its hash and its count.
        as_attacker(c, "INSERT INTO airlock.calls (id, at, tenant, method, outcome, digest) VALUES"
                       " ('6f0e6d8c-0000-4000-8000-000000000002', now(), 'acme', 'tools/call', 'ok',"
                       " 'x'); UPDATE airlock.calls c SET digest = encode(sha256(convert_to("
                       "airlock.call_canonical(c), 'UTF8')), 'hex') WHERE digest = 'x';"
                       " INSERT INTO airlock.sealed (checkpoint_id, position, call_id, tenant, digest)"
                       " SELECT 1, 4, id, tenant, digest FROM airlock.calls"
                       " WHERE id = '6f0e6d8c-0000-4000-8000-000000000002'")
        assert broken(c) == "checkpoint 1: inserted (it sealed 4 records, 5 are left)"


def test_verify_with_anchor_catches_a_removed_tail():
    with own_db() as c:
        add_records(c, "acme", 3)
        seal(c)
        first_anchor = seal(c)
        add_records(c, "acme", 2)
        anchor = seal(c)
        intact(c, "--anchor", anchor)
        intact(c, "--anchor", first_anchor)
        tenant_anchor = c.psql("SELECT hash FROM airlock.tenant_checkpoints WHERE tenant = 'acme'"
                               " ORDER BY checkpoint_id DESC LIMIT 1").strip()
        intact(c, "--tenant", "acme", "--anchor", tenant_anchor)
        # Remove the last checkpoint and its records: the rest is a consistent chain...
        as_attacker(c, "DELETE FROM airlock.calls WHERE id IN (SELECT call_id FROM airlock.sealed"
                       " WHERE checkpoint_id = 2); DELETE FROM airlock.tenant_checkpoints WHERE"
                       " checkpoint_id = 2; DELETE FROM airlock.sealed WHERE checkpoint_id = 2;"
                       " DELETE FROM airlock.checkpoints WHERE id = 2")
        intact(c)
        # ...which the anchor kept outside shows to be short.
        assert broken(c, "--anchor", anchor).startswith(f"anchor {anchor}: tail removed")
        assert broken(c, "--tenant", "acme", "--anchor", tenant_anchor).startswith(
            f"anchor {tenant_anchor}: tail removed")
        intact(c, "--anchor", first_anchor)


def test_many_clients_and_two_daemons_make_a_log_that_verifies(cluster, start_daemon, world):
    d1, d2 = start_daemon(*FAST), start_daemon(*FAST)
    ids, errors = [], []
    lock = threading.Lock()

    def client(d, n):
        for i in range(n):
            if i % 5 == 4:
                r = rpc(d, world.token, "update_invoice_status",
                        {"invoice_id": world.inv, "status": "open"},
                        idempotency_key=secrets.token_hex(8), dry_run=(i % 2 == 0))
            else:
                r = rpc(d, world.token, "get_customer", {"customer_id": world.cust[i % 2]})
            body = r.json()
            if "result" not in body:
                errors.append(body)
                continue
            with lock:
                ids.append(body["result"]["structuredContent"]["call_id"])

    threads = [threading.Thread(target=client, args=((d1, d2)[k % 2], 25)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(ids) == 200
    # The daemons' sealers seal them within a few seconds, without airlockctl.
    id_list = ",".join(f"'{i}'" for i in ids)
    deadline = time.monotonic() + 15
    while cluster.psql(f"SELECT count(*) FROM airlock.sealed WHERE call_id IN ({id_list})") != "200\n":
        assert time.monotonic() < deadline, "the daemons did not seal the records"
        time.sleep(0.3)
    # Every checkpoint has its own id: two sealers never made the same one.
    assert cluster.psql("SELECT count(*) = count(DISTINCT prev_hash) FROM airlock.checkpoints") == "t\n"
    anchor = seal(cluster)
    intact(cluster, "--anchor", anchor)
    intact(cluster, "--tenant", world.t)


def test_refusals_are_counted_per_address_and_second(cluster, start_daemon):
    d = start_daemon(*FAST)
    start = cluster.psql("SELECT now()").strip()
    t0 = time.monotonic()
    for _ in range(400):
        assert rpc(d, "alk_" + "B" * 43, "get_customer", {"customer_id": 1}).status_code == 401
    seconds = int(time.monotonic() - t0) + 2
    deadline = time.monotonic() + 10
    q = (f"SELECT count(*), coalesce(sum(count), 0) FROM airlock.refusals"
         f" WHERE second >= date_trunc('second', '{start}'::timestamptz) AND client = '127.0.0.1'"
         f" AND reason = 'token_invalid'")
    while cluster.psql(q).split("|")[1].strip() != "400":
        assert time.monotonic() < deadline, cluster.psql(q)
        time.sleep(0.3)
    rows = int(cluster.psql(q).split("|")[0])
    assert rows <= seconds, (rows, seconds)      # one row per second, not one per refusal


def test_export_streams_jsonl_with_stable_fields(cluster, start_daemon, world):
    d = start_daemon()
    rpc(d, world.token, "get_customer", {"customer_id": world.cust[1]})
    rpc(d, world.token, "update_invoice_status", {"invoice_id": world.inv, "status": "open"},
        idempotency_key=secrets.token_hex(8))
    p = audit(cluster, "export", "--format", "jsonl", "--tenant", world.t, check=True)
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert len(lines) == int(cluster.psql(f"SELECT count(*) FROM airlock.calls WHERE tenant = '{world.t}'"))
    fields = {"id", "seq", "at", "tenant", "token_id", "task", "method", "tool", "arguments",
              "dry_run", "idempotency_key", "plan_id", "outcome", "reason", "duration_ms",
              "result_digest", "client", "egress", "digest", "checkpoint", "changes"}
    assert all(set(x) == fields for x in lines)
    assert [x["seq"] for x in lines] == sorted(x["seq"] for x in lines)
    writes = [x for x in lines if x["tool"] == "update_invoice_status" and not x["dry_run"]]
    assert writes and writes[-1]["changes"][0]["op"] == "update"
    assert writes[-1]["changes"][0]["after"]["status"] == "open"
    assert audit(cluster, "export", "--format", "csv").returncode == 64


def test_export_takes_constant_memory():
    with own_db() as c:
        c.psql("INSERT INTO airlock.calls (id, at, tenant, method, tool, arguments, outcome)"
               " SELECT gen_random_uuid(), now(), 'bulk', 'tools/call', 'get_customer',"
               " jsonb_build_object('pad', repeat('x', 1700), 'i', i), 'ok'"
               " FROM generate_series(1, 100000) i")

        def limit():
            resource.setrlimit(resource.RLIMIT_AS, (150 << 20, 150 << 20))

        p = subprocess.run([str(CTL), "audit", "export", "--format", "jsonl", "--db", c.operator_url],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit,
                           timeout=300)
        assert p.returncode == 0, p.stderr
        out = p.stdout
        assert out.count(b"\n") == 100000 and len(out) > 150 << 20


def test_replay_reports_match_difference_refusal_and_not_replayable(cluster, start_daemon, world):
    d = start_daemon()
    tok = world.mint()
    match = rpc(d, tok, "lookup_invoices", {"customer_id": world.cust[1]}).json()
    changed = rpc(d, tok, "get_customer", {"customer_id": world.cust[0]}).json()
    write = rpc(d, tok, "update_invoice_status", {"invoice_id": world.inv, "status": "void"},
                idempotency_key=secrets.token_hex(8)).json()
    note = rpc(d, tok, "add_support_note", {"customer_id": world.cust[1], "body": "hello"},
               idempotency_key=secrets.token_hex(8)).json()
    ids = {k: v["result"]["structuredContent"]["call_id"]
           for k, v in [("match", match), ("changed", changed), ("write", write), ("note", note)]}
    # Records of calls that cannot be replayed: a code step, a sensitive argument, and a tool
    # that is gone from the catalog.
    code_id, sens_id, gone_id = (secrets.token_hex(16) for _ in range(3))
    fmt = lambda h: f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"
    code_id, sens_id, gone_id = fmt(code_id), fmt(sens_id), fmt(gone_id)
    cluster.psql(
        "INSERT INTO airlock.calls (id, at, tenant, method, tool, arguments, outcome) VALUES"
        f" ('{code_id}', now(), '{world.t}', 'tools/call', 'run_sh', '{{\"code\": \"echo\"}}', 'ok'),"
        f" ('{sens_id}', now(), '{world.t}', 'tools/call', 'get_customer',"
        f"  '{{\"customer_id\": {{\"sha256\": \"{'0' * 64}\"}}}}', 'ok'),"
        f" ('{gone_id}', now(), '{world.t}', 'tools/call', 'no_such_tool', '{{}}', 'ok')")
    # The data changes: the customer's name, the invoice's amount.
    cluster.psql(f"SET ROLE tenant_{world.t}; UPDATE billing.customers SET name = 'Ada Lovelace'"
                 f" WHERE id = {world.cust[0]}; UPDATE billing.invoices SET amount = 1.00,"
                 f" status = 'open' WHERE id = {world.inv}")
    p = ctl("audit", "replay", "--tenant", world.t, "--json", "--tools", ROOT / "tools",
            "--db", cluster.operator_url, check=False)
    assert p.returncode == 65, p.stderr
    out = [json.loads(x) for x in p.stdout.splitlines()]
    by_id = {x["call_id"]: x for x in out if "call_id" in x}
    assert by_id[ids["match"]]["status"] == "match"
    assert by_id[ids["note"]]["status"] == "match"
    diff = by_id[ids["changed"]]
    assert diff["status"] == "differs" and diff["detail"]["rows"][0]["name"] == "Ada Lovelace"
    wdiff = by_id[ids["write"]]
    assert wdiff["status"] == "differs", wdiff
    assert wdiff["detail"]["recorded"]["after"]["amount"] == 100.10
    assert wdiff["detail"]["now"]["after"]["amount"] == 1.00
    assert by_id[code_id]["status"] == "not_replayable"
    assert by_id[sens_id]["status"] == "not_replayable"
    assert by_id[gone_id]["status"] == "refused"
    assert by_id[gone_id]["detail"]["reason"] == "tool_not_found"
    summary = out[-1]["summary"]
    assert summary["differs"] >= 2 and summary["not_replayable"] >= 2 and summary["match"] >= 2
    # Replays change nothing: the invoice is as the operator left it.
    assert cluster.psql(f"SET ROLE tenant_{world.t}; SELECT status FROM billing.invoices"
                        f" WHERE id = {world.inv}").strip().splitlines()[-1] == "open"
    # The human form ends with a summary table.
    p = ctl("audit", "replay", "--tenant", world.t, "--tools", ROOT / "tools",
            "--db", cluster.operator_url, check=False)
    assert "not replayable" in p.stdout and f"{ids['changed']}  get_customer  differs" in p.stdout


def test_archive_then_verify_passes(tmp_path):
    with own_db() as c:
        old = add_records(c, "acme", 5) + add_records(c, "beta", 2)
        first = seal(c)
        time.sleep(1.1)
        before = c.psql("SELECT now()").strip()
        time.sleep(0.1)
        new = add_records(c, "acme", 3)
        seal(c)
        out = tmp_path / "archive.jsonl"
        p = audit(c, "archive", "--before", before, "--out", out, check=True)
        assert "archived 7 records" in p.stdout
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        assert sorted(x["id"] for x in lines) == sorted(old)
        assert hashlib.sha256(out.read_bytes()).hexdigest() == c.psql(
            "SELECT archived->>'file_sha256' FROM airlock.checkpoints WHERE kind = 'archive'").strip()
        left = c.psql("SELECT id FROM airlock.calls").split()
        assert sorted(left) == sorted(new)
        intact(c)
        intact(c, "--tenant", "acme")
        intact(c, "--tenant", "beta")
        intact(c, "--anchor", first)
        # The chains go on from the archive, overall and per tenant.
        add_records(c, "beta", 2)
        anchor = seal(c)
        intact(c, "--anchor", anchor)
        intact(c, "--tenant", "beta")
        # Retention is the only way to remove; it leaves a trace an attacker cannot fake
        # without breaking the chain.
        as_attacker(c, "DELETE FROM airlock.checkpoints WHERE kind = 'archive'")
        assert "removed" in broken(c) or "link" in broken(c)
