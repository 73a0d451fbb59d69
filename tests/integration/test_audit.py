"""The audit log: digests set by the database for every writer, the sealer's chain (overall
and per tenant), insert-only tables, verify catching each kind of tampering, export,
replay and retention, against real PostgreSQL clusters and real airlockd processes."""
import hashlib
import hmac
import json
import resource
import secrets
import shutil
import subprocess
import threading
import time

import pytest
import requests

from conftest import CTL, ROOT, ctl, own_cluster
from world import JSON, World, token_id, tool, wait_until

AUDIT_TABLES = ["calls", "changes", "refusals", "checkpoints", "sealed", "tenant_checkpoints"]
A_COLUMN = {"calls": "tenant", "changes": "tenant", "refusals": "client", "checkpoints": "kind",
            "sealed": "tenant", "tenant_checkpoints": "tenant"}
FAST = ["--rate-client", "100000/100000", "--rate-token", "100000/100000",
        "--rate-tenant", "100000/100000"]
ALL_TOOLS = ["get_customer", "lookup_invoices", "update_invoice_status", "add_support_note"]


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


@pytest.fixture(scope="module")
def world(cluster):
    """A tenant of our own with two customers, an invoice of the first, and a token
    (world.tok)."""
    w = World(cluster, "au", tenants=1, grant=ALL_TOOLS)
    for email, name in (("a", "Ada"), ("b", "Bob")):
        w.add_customer(w.a, email=f"{email}@{w.a}.example", name=name, company="Co")
    w.inv = w.add_invoice(w.a, number=f"{w.a}-1", issued="now()")
    w.tok = w.mint(w.a)
    return w


def test_every_writer_gets_a_digest_over_the_canonical_form(cluster, start_daemon, world):
    d = start_daemon()
    r = tool(d, world.tok, "get_customer", {"customer_id": world.cust[world.a][0]})
    call_id = r.json()["result"]["structuredContent"]["call_id"]
    tool(d, "alk_" + "A" * 43, "get_customer", {"customer_id": 1})
    tool(d, world.tok, "update_invoice_status", {"invoice_id": world.inv, "status": "open"},
        idempotency_key=secrets.token_hex(8))
    world.mint(world.a)            # airlockctl's own record
    # The digest is SHA-256 of the UTF-8 text of the canonical form, for every row.
    rows = cluster.psql(f"SELECT c.id, c.digest, airlock.call_canonical(c) FROM airlock.calls c"
                        f" WHERE c.tenant = '{world.a}'").strip().splitlines()
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
    assert one["at"].endswith("Z") and one["arguments"] == {"customer_id": world.cust[world.a][0]}
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
                r = tool(d, world.tok, "update_invoice_status",
                        {"invoice_id": world.inv, "status": "open"},
                        idempotency_key=secrets.token_hex(8), dry_run=(i % 2 == 0))
            else:
                r = tool(d, world.tok, "get_customer", {"customer_id": world.cust[world.a][i % 2]})
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
    wait_until(lambda: cluster.psql(f"SELECT count(*) FROM airlock.sealed"
                                    f" WHERE call_id IN ({id_list})") == "200\n",
               timeout=15, every=0.3, what="the daemons' sealers sealing the records")
    # Every checkpoint has its own id: two sealers never made the same one.
    assert cluster.psql("SELECT count(*) = count(DISTINCT prev_hash) FROM airlock.checkpoints") == "t\n"
    anchor = seal(cluster)
    intact(cluster, "--anchor", anchor)
    intact(cluster, "--tenant", world.a)


def test_refusals_are_counted_per_address_and_second(cluster, start_daemon):
    d = start_daemon(*FAST)
    start = cluster.psql("SELECT now()").strip()
    t0 = time.monotonic()
    for _ in range(400):
        assert tool(d, "alk_" + "B" * 43, "get_customer", {"customer_id": 1}).status_code == 401
    seconds = int(time.monotonic() - t0) + 2
    q = (f"SELECT count(*), coalesce(sum(count), 0) FROM airlock.refusals"
         f" WHERE second >= date_trunc('second', '{start}'::timestamptz) AND client = '127.0.0.1'"
         f" AND reason = 'token_invalid'")
    wait_until(lambda: cluster.psql(q).split("|")[1].strip() == "400", timeout=10, every=0.3,
               what="the 400 refusals counted")
    rows = int(cluster.psql(q).split("|")[0])
    assert rows <= seconds, (rows, seconds)      # one row per second, not one per refusal


def test_export_streams_jsonl_with_stable_fields(cluster, start_daemon, world):
    d = start_daemon()
    tool(d, world.tok, "get_customer", {"customer_id": world.cust[world.a][1]})
    tool(d, world.tok, "update_invoice_status", {"invoice_id": world.inv, "status": "open"},
        idempotency_key=secrets.token_hex(8))
    p = audit(cluster, "export", "--format", "jsonl", "--tenant", world.a, check=True)
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert len(lines) == int(cluster.psql(f"SELECT count(*) FROM airlock.calls WHERE tenant = '{world.a}'"))
    fields = {"id", "seq", "at", "tenant", "token_id", "task", "method", "tool", "arguments",
              "dry_run", "idempotency_key", "plan_id", "outcome", "reason", "duration_ms",
              "result_digest", "client", "egress", "trace_id", "digest", "checkpoint", "changes"}
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
    tok = world.mint(world.a)
    match = tool(d, tok, "lookup_invoices", {"customer_id": world.cust[world.a][1]}).json()
    changed = tool(d, tok, "get_customer", {"customer_id": world.cust[world.a][0]}).json()
    write = tool(d, tok, "update_invoice_status", {"invoice_id": world.inv, "status": "void"},
                idempotency_key=secrets.token_hex(8)).json()
    note = tool(d, tok, "add_support_note", {"customer_id": world.cust[world.a][1], "body": "hello"},
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
        f" ('{code_id}', now(), '{world.a}', 'tools/call', 'run_sh', '{{\"code\": \"echo\"}}', 'ok'),"
        f" ('{sens_id}', now(), '{world.a}', 'tools/call', 'get_customer',"
        f"  '{{\"customer_id\": {{\"sha256\": \"{'0' * 64}\"}}}}', 'ok'),"
        f" ('{gone_id}', now(), '{world.a}', 'tools/call', 'no_such_tool', '{{}}', 'ok')")
    # The data changes: the customer's name, the invoice's amount.
    cluster.psql(f"SET ROLE tenant_{world.a}; UPDATE billing.customers SET name = 'Ada Lovelace'"
                 f" WHERE id = {world.cust[world.a][0]}; UPDATE billing.invoices SET amount = 1.00,"
                 f" status = 'open' WHERE id = {world.inv}")
    p = ctl("audit", "replay", "--tenant", world.a, "--json", "--tools", ROOT / "tools",
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
    assert cluster.psql(f"SET ROLE tenant_{world.a}; SELECT status FROM billing.invoices"
                        f" WHERE id = {world.inv}").strip().splitlines()[-1] == "open"
    # The human form ends with a summary table.
    p = ctl("audit", "replay", "--tenant", world.a, "--tools", ROOT / "tools",
            "--db", cluster.operator_url, check=False)
    assert "not replayable" in p.stdout and f"{ids['changed']}  get_customer  differs" in p.stdout


def test_archive_then_verify_passes(tmp_path):
    with own_db() as c:
        old = add_records(c, "acme", 5) + add_records(c, "beta", 2)
        first = seal(c)
        # The archive cuts by time: the old records and the new ones must lie on either
        # side of `before`, in different seconds.
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


# ---------------------------------------------------------------------------------------
# Bounded records: what a refused call sent, and what any record may hold

JUNK = "j" * (512 * 1024)


def args_of(c, call_id):
    return json.loads(c.psql(f"SELECT arguments FROM airlock.calls WHERE id = '{call_id}'"))


def size_of(c, call_id):
    return int(c.psql(f"SELECT octet_length(arguments::text) FROM airlock.calls"
                      f" WHERE id = '{call_id}'"))


def call_ids_of(c, token_id):
    return c.psql(f"SELECT id FROM airlock.calls WHERE token_id = '{token_id}'"
                  f" ORDER BY seq").split()


def test_refused_calls_record_a_digest_and_a_prefix(cluster, start_daemon, world):
    d = start_daemon(*FAST)
    tok = world.mint(world.a, tools=["get_customer"])
    tid = token_id(tok)
    sent = {"customer_id": world.cust[world.a][0], "junk": JUNK}
    # Not granted, arguments the schema refuses, and (below) over the quota: each refusal
    # keeps what was sent as a keyed digest, its size and a short prefix.
    r = tool(d, tok, "lookup_invoices", sent)
    assert r.json()["error"]["data"]["reason"] == "tool_not_granted"
    r = tool(d, tok, "get_customer", sent)
    assert r.json()["result"]["structuredContent"]["error"]["reason"] == "invalid_arguments"
    q = ctl("token", "mint", "--tenant", world.a, "--ttl", "10m", "--tool", "get_customer",
            "--max-calls", "1", "--db", cluster.operator_url).stdout.strip()
    assert "result" in tool(d, q, "get_customer", {"customer_id": world.cust[world.a][0]}).json()
    r = tool(d, q, "get_customer", {"customer_id": world.cust[world.a][0], "junk": JUNK})
    assert r.json()["result"]["structuredContent"]["error"]["reason"] == "invalid_arguments"
    r = tool(d, q, "get_customer", {"customer_id": world.cust[world.a][0] + 1000})
    assert r.json()["error"]["data"]["reason"] == "quota_exhausted"
    # A revert with an enormous call id is refused with its record bounded too.
    r = requests.post(d.url + "/rpc", timeout=15, headers={**JSON, "Authorization": f"Bearer {tok}"},
                      data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "airlock/calls.revert",
                                       "params": {"call_id": JUNK}}))
    assert "error" in r.json()
    mine, theirs = call_ids_of(cluster, tid), call_ids_of(cluster, token_id(q))
    assert len(mine) == 3 and len(theirs) == 3
    for cid in mine + theirs:
        assert size_of(cluster, cid) < 1024, cid
    text = json.dumps(sent, separators=(",", ":"))
    for a in (args_of(cluster, mine[0]), args_of(cluster, mine[1]), args_of(cluster, theirs[1])):
        assert a["bytes"] == len(text) and a["hmac_sha256"] == keyed(cluster, sent)
        assert a["hmac_sha256"] != hashlib.sha256(text.encode()).hexdigest()
        assert len(a["prefix"]) <= 256 and JUNK[:300] not in json.dumps(a)
        assert a["prefix"].startswith('{"customer_id":')
    assert args_of(cluster, mine[2])["bytes"] > len(JUNK)
    # The accepted call keeps its arguments; the one over the quota is kept as a digest.
    assert args_of(cluster, theirs[0]) == {"customer_id": world.cust[world.a][0]}
    assert "hmac_sha256" in args_of(cluster, theirs[2])


def test_accepted_arguments_are_capped_too(cluster, start_daemon, world):
    d = start_daemon(*FAST)
    tok = world.mint(world.a, tools=["run_python"])
    code = "print(1)  # " + "x" * 90000
    r = tool(d, tok, "run_python", {"code": code}, dry_run=True)
    cid = r.json()["result"]["structuredContent"]["call_id"]
    a = args_of(cluster, cid)
    assert set(a) == {"hmac_sha256", "bytes", "prefix"} and a["bytes"] > 90000
    assert size_of(cluster, cid) < 1024
    assert a["prefix"].startswith('{"code":"print(1)')


def test_rate_limited_refusals_of_a_token_are_counted(cluster, start_daemon, world):
    d = start_daemon("--rate-token", "0.01/2", "--rate-client", "0/0", "--rate-tenant", "0/0")
    tok = world.mint(world.a, tools=["get_customer"])
    tid = token_id(tok)
    codes = [tool(d, tok, "get_customer", {"customer_id": world.cust[world.a][0], "junk": JUNK}).status_code
             for _ in range(30)]
    limited = codes.count(429)
    assert limited >= 25, codes
    # Only the calls under the limit have records; the rest are counted per token and second.
    assert len(call_ids_of(cluster, tid)) == 30 - limited
    q = (f"SELECT coalesce(sum(count), 0), count(*) FROM airlock.refusals"
         f" WHERE token_id = '{tid}' AND reason = 'rate_limited'")
    wait_until(lambda: int(cluster.psql(q).split("|")[0]) >= limited, timeout=10, every=0.3,
               what="the rate-limited refusals counted")
    total, rows = map(int, cluster.psql(q).split("|"))
    assert total == limited and rows <= 5


def test_refusals_of_revoked_and_expired_tokens_keep_the_token_id(cluster, start_daemon, world):
    d = start_daemon(*FAST)
    revoked, expired = world.mint(world.a), world.mint(world.a)
    ctl("token", "revoke", token_id(revoked), "--db", cluster.operator_url)
    cluster.psql(f"UPDATE airlock.tokens SET expires_at = now() - interval '1 s'"
                 f" WHERE id = '{token_id(expired)}'")
    for tok, reason in ((revoked, "token_revoked"), (expired, "token_expired")):
        r = tool(d, tok, "get_customer", {"customer_id": world.cust[world.a][0]})
        assert r.status_code == 401 and r.json()["error"]["data"]["reason"] == reason
    for tok, reason in ((revoked, "token_revoked"), (expired, "token_expired")):
        q = (f"SELECT coalesce(sum(count), 0) FROM airlock.refusals WHERE token_id ="
             f" '{token_id(tok)}' AND reason = '{reason}'")
        wait_until(lambda: cluster.psql(q).strip() == "1", timeout=10, every=0.3,
                   what=f"the {reason} refusal counted")


# ---------------------------------------------------------------------------------------
# Sensitive values: keyed digests everywhere they are recorded

SECRET_TOOLS = {
    "note_secret": {
        "name": "note_secret", "description": "Keeps a secret note; returns only its id.",
        "kind": "write", "destructive": False,
        "arguments": {"type": "object", "properties": {
            "customer_id": {"type": "integer", "minimum": 1},
            "body": {"type": "string", "minLength": 1, "maxLength": 200, "sensitive": True}},
            "required": ["customer_id", "body"], "additionalProperties": False},
        "statement": "INSERT INTO billing.support_notes (customer_id, body) VALUES"
                     " ($customer_id, $body) RETURNING id, customer_id",
        "max_rows": 1, "timeout_ms": 2000},
    "customer_by_email": {
        "name": "customer_by_email", "description": "A customer by email.", "kind": "read",
        "arguments": {"type": "object", "properties": {
            "email": {"type": "string", "minLength": 1, "maxLength": 200, "sensitive": True}},
            "required": ["email"], "additionalProperties": False},
        "statement": "SELECT id, name FROM billing.customers_live WHERE email = $email"},
}


def secret_catalog(tmp_path):
    tools = tmp_path / "tools"
    shutil.copytree(ROOT / "tools", tools)
    for name, manifest in SECRET_TOOLS.items():
        (tools / f"{name}.json").write_text(json.dumps(manifest))
    return tools


def digest_key(c):
    return bytes.fromhex(c.psql("SELECT encode(key, 'hex') FROM airlock.digest_key").strip())


def keyed(c, value):
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    return hmac.new(digest_key(c), text.encode(), hashlib.sha256).hexdigest()


def test_sensitive_values_are_kept_as_keyed_digests_only(cluster, start_daemon, world, tmp_path):
    tools = secret_catalog(tmp_path)
    d = start_daemon("--tools", str(tools), *FAST)
    tok = world.mint(world.a, tools=["note_secret", "customer_by_email", "run_python", "get_customer"])
    secret = f"S3cr3t-{secrets.token_hex(6)}"
    pin = f"4{secrets.token_hex(2)}"
    key = secrets.token_hex(8)
    # A write with a sensitive argument, its preview and its replay.
    pv = tool(d, tok, "note_secret", {"customer_id": world.cust[world.a][0], "body": secret}, dry_run=True)
    pv = pv.json()["result"]["structuredContent"]
    args = {"customer_id": world.cust[world.a][0], "body": secret}
    w = tool(d, tok, "note_secret", args, idempotency_key=key, plan_id=pv["plan_id"]).json()
    assert w["result"]["isError"] is False, w
    again = tool(d, tok, "note_secret", args, idempotency_key=key).json()
    assert again["result"]["structuredContent"]["replayed"] is True
    assert secret not in json.dumps(w) and secret not in json.dumps(pv)
    # A code tool's input_tool with a sensitive argument (a dry run: nothing runs).
    email = f"a@{world.a}.example"
    r = tool(d, tok, "run_python", {"code": "print(1)", "input_tool": {
        "name": "customer_by_email", "arguments": {"email": email}}}, dry_run=True).json()
    code_id = r["result"]["structuredContent"]["call_id"]
    # An unknown argument, refused: neither its name nor its value is kept in clear.
    r = tool(d, tok, "get_customer", {"customer_id": world.cust[world.a][0], "pin_code": pin}).json()
    assert r["result"]["structuredContent"]["error"]["reason"] == "invalid_arguments"
    refused_id = r["result"]["structuredContent"]["call_id"]
    # Nowhere in the call records, the keys' stored replies or the plans.
    for table in ("calls", "idempotency_keys", "plans"):
        text = cluster.psql(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM airlock.{table} t")
        for value in (secret, email, pin, "pin_code"):
            assert value not in text, (table, value)
    # The digests are keyed with the deployment's key: not a plain SHA-256.
    rec = args_of(cluster, w["result"]["structuredContent"]["call_id"])
    assert rec["body"] == {"hmac_sha256": keyed(cluster, secret)}
    assert rec["body"]["hmac_sha256"] not in (hashlib.sha256(secret.encode()).hexdigest(),
                                              hashlib.sha256(json.dumps(secret).encode()).hexdigest())
    rec = args_of(cluster, code_id)
    assert rec["input_tool"]["arguments"]["email"] == {"hmac_sha256": keyed(cluster, email)}
    rec = args_of(cluster, refused_id)
    assert rec["unknown_keys"] == 1 and "hmac_sha256" in rec
    # The fingerprint binding the key and the plan is keyed too.
    fp = cluster.psql(f"SELECT fingerprint FROM airlock.idempotency_keys WHERE key = '{key}'").strip()
    assert fp == keyed(cluster, {"tool": "note_secret", "arguments": args})
    # The stored reply holds the tool's columns only: the secret body is not among them.
    resp = cluster.psql(f"SELECT response FROM airlock.idempotency_keys WHERE key = '{key}'")
    assert "body" not in json.loads(resp)["changes"][0]["after"]
