"""The gateway's database role, tried as a leaked credential would be: every way it had to
tamper with the record unseen (un-revoke or mint a token, choose a record's seq, attach
changes to a call already recorded, rewrite a key's answer, hold the sealer's lock) is
refused or, for the lock, raises the alarm; and what an owner forges behind the guards'
back, `airlockctl audit verify` names."""
import json
import re
import secrets
import subprocess
import uuid

import pytest
import requests

from conftest import ctl, own_cluster
from world import World, token_id, wait_until

DATAERR = 65


def gw(cluster, sql):
    """Runs sql as the gateway's login role; returns the CompletedProcess."""
    return cluster.psql(sql, url=cluster.gateway_url, check=False)


def refused(p, word="permission denied"):
    assert p.returncode != 0 and word in p.stderr, (p.stdout, p.stderr)


def mint(world):
    """A token of the world's tenant for get_customer, and its id."""
    token = world.token(world.a, "get_customer")
    return token, token_id(token)


def record_call(world):
    """A committed write-shaped record of the world's tenant, as the operator writes one;
    its id."""
    cid = str(uuid.uuid4())
    world.cluster.psql(f"INSERT INTO airlock.calls (id, at, tenant, method, tool, outcome)"
                       f" VALUES ('{cid}', now(), '{world.a}', 'tools/call',"
                       f" 'add_support_note', 'ok')")
    return cid


@pytest.fixture(scope="module")
def world(cluster):
    """A tenant of our own with a customer."""
    return World(cluster, "gr", tenants=1, customers=1)


# --- what the gateway's role may no longer do -----------------------------------------------

def test_gateway_cannot_write_the_airlock_tables(cluster, world):
    _, token_id = mint(world)
    ctl("token", "revoke", token_id, "--db", cluster.operator_url)
    forged = str(uuid.uuid4())
    for sql in (
            # un-revoke through the column grant
            f"UPDATE airlock.tokens SET revoked_at = NULL WHERE id = '{token_id}'",
            f"UPDATE airlock.tokens SET calls_used = 0",
            # mint by INSERT
            f"INSERT INTO airlock.tokens (id, hash, tenant, task, tools, expires_at) VALUES"
            f" ('abcdefabcdef', decode(repeat('ab', 32), 'hex'), '{world.a}', 't',"
            f" ARRAY['get_customer'], now() + interval '1 hour')",
            # a record of its own choosing, far-future seq included
            f"INSERT INTO airlock.calls (id, seq, at, method, outcome) OVERRIDING SYSTEM VALUE"
            f" VALUES ('{forged}', 1000000000000, now(), 'ping', 'ok')",
            f"INSERT INTO airlock.calls (id, at, method, outcome) VALUES ('{forged}', now(),"
            f" 'ping', 'ok')",
            f"INSERT INTO airlock.changes (call_id, table_name, key, op) SELECT id,"
            f" 'billing.customers', '{{}}', 'update' FROM airlock.calls LIMIT 1",
            "INSERT INTO airlock.refusals (second, client, reason, count) VALUES"
            " (now(), 'x', 'token_invalid', 1)",
            "UPDATE airlock.idempotency_keys SET response = '{}'",
            "DELETE FROM airlock.idempotency_keys",
            "INSERT INTO airlock.idempotency_keys (tenant, key, fingerprint, call_id, expires_at)"
            f" VALUES ('{world.a}', 'k', 'f', gen_random_uuid(), now())",
            "INSERT INTO airlock.plans (id, tenant, tool, fingerprint, updates, inserts,"
            f" expires_at) VALUES (gen_random_uuid(), '{world.a}', 't', 'f', '[]', '{{}}',"
            " now())",
            "SELECT * FROM airlock.seal()"):
        refused(gw(cluster, sql))
    assert cluster.psql(f"SELECT revoked_at IS NOT NULL FROM airlock.tokens"
                        f" WHERE id = '{token_id}'") == "t\n"
    # Even the owner cannot undo a revocation or change a token's grants.
    refused(cluster.psql(f"UPDATE airlock.tokens SET revoked_at = NULL WHERE id = '{token_id}'",
                         check=False), "cannot be undone")
    refused(cluster.psql(f"UPDATE airlock.tokens SET tools = ARRAY['x'] WHERE id = '{token_id}'",
                         check=False), "may change")


def test_gateway_functions_check_their_arguments(cluster, world):
    # The database assigns seq, whatever a record says.
    forged = str(uuid.uuid4())
    p = gw(cluster, f"CALL airlock.record_calls(json_build_array(json_build_object("
                    f"'id', '{forged}', 'at', now(), 'method', 'ping', 'outcome', 'ok',"
                    f" 'dry_run', false, 'seq', 1000000000000)))")
    assert p.returncode == 0, p.stderr
    seq = int(cluster.psql(f"SELECT seq FROM airlock.calls WHERE id = '{forged}'"))
    assert seq < 1000000000000
    # A record's time is now, not a day ago.
    refused(gw(cluster, "CALL airlock.record_calls(json_build_array(json_build_object("
                        "'id', gen_random_uuid(), 'at', now() - interval '1 day', 'method',"
                        " 'ping', 'outcome', 'ok', 'dry_run', false)))"), "is not now")
    # A minted token's id is its hash's, and its mint has a call id of its own.
    refused(gw(cluster, f"SELECT airlock.mint_token(gen_random_uuid(), 'abcdefabcdef',"
                        f" repeat('01', 32), '{world.a}', 't', '[\"get_customer\"]', '{{}}',"
                        f" false, false, 0, 60)"), "first 12 hex digits")
    refused(gw(cluster, f"SELECT airlock.mint_token('{forged}', '010101010101',"
                        f" repeat('01', 32), '{world.a}', 't', '[\"get_customer\"]', '{{}}',"
                        f" false, false, 0, 60)"), "call id of its own")
    refused(gw(cluster, f"SELECT airlock.mint_token(gen_random_uuid(), '010101010101',"
                        f" repeat('01', 32), '{world.a}', 't', '[\"get_customer\"]', '{{}}',"
                        f" false, false, 0, 999999)"), "out of range")
    # Revoking twice is harmless, and nothing un-revokes.
    _, token_id = mint(world)
    assert gw(cluster, f"SELECT * FROM airlock.revoke_token('{token_id}')").stdout \
        == f"{world.a}|f\n"
    assert gw(cluster, f"SELECT * FROM airlock.revoke_token('{token_id}')").stdout \
        == f"{world.a}|t\n"
    # A key's answer is stored only by the write that claimed it, in its transaction.
    key = f"k-{secrets.token_hex(4)}"
    cluster.psql(f"INSERT INTO airlock.idempotency_keys (tenant, key, fingerprint, call_id,"
                 f" response, expires_at) VALUES ('{world.a}', '{key}', 'f',"
                 f" gen_random_uuid(), 'the answer', now() - interval '1 s')")
    refused(gw(cluster, f"CALL airlock.store_key_response('{world.a}', '{key}', 'forged')"),
            "claimed")
    cluster.psql(f"INSERT INTO airlock.idempotency_keys (tenant, key, fingerprint, call_id,"
                 f" expires_at) VALUES ('{world.a}', '{key}-live', 'f', gen_random_uuid(),"
                 f" now() + interval '1 hour')")
    gw(cluster, f"SELECT airlock.sweep_key('{world.a}', '{key}-live')")
    assert cluster.psql(f"SELECT count(*) FROM airlock.idempotency_keys WHERE key ="
                        f" '{key}-live'") == "1\n"
    # Previewed changes and plans go only with a dry-run recorded in the same transaction.
    done = record_call(world)
    refused(gw(cluster, f"CALL airlock.record_preview('{done}', '[]')"), "dry-run")
    refused(gw(cluster, f"CALL airlock.create_plan('{done}', '{world.a}',"
                        f" 'add_support_note', 'f', '[]', '{{}}')"), "dry-run")


def as_write(cluster, world, call_id, then=""):
    """The gateway's write path done by hand: call id set, an UPDATE as the world's tenant, then
    `then`, in one transaction; returns the CompletedProcess."""
    script = (f"BEGIN;\n"
              f"SELECT set_config('airlock.call_id', '{call_id}', true) \\g /dev/null\n"
              f"SELECT set_config('role', 'tenant_{world.a}', true) \\g /dev/null\n"
              f"UPDATE billing.customers SET name = name WHERE id = {world.cust[world.a][0]};\n"
              f"SELECT set_config('role', 'none', true) \\g /dev/null\n"
              f"{then}\nCOMMIT;\n")
    return subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                           cluster.gateway_url], input=script, capture_output=True, text=True,
                          timeout=60)


def changes_of(cluster, call_id):
    return int(cluster.psql(f"SELECT count(*) FROM airlock.changes WHERE call_id = '{call_id}'"))


def test_gateway_cannot_attach_changes_to_another_call(cluster, world):
    # To a call recorded (and perhaps sealed) already: refused at once.
    done = record_call(world)
    refused(as_write(cluster, world, done), "recorded already")
    assert changes_of(cluster, done) == 0
    # To a call recorded later by another transaction (one still running when the change
    # was captured): the commit is refused, since the record is not this transaction's.
    later = str(uuid.uuid4())
    holder = subprocess.Popen(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                               cluster.operator_url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    holder.stdin.write(f"BEGIN; INSERT INTO airlock.calls (id, at, tenant, method, tool, outcome)"
                       f" VALUES ('{later}', now(), '{world.a}', 'tools/call',"
                       f" 'add_support_note', 'ok');\nSELECT pg_sleep(1);\nCOMMIT;\n")
    holder.stdin.close()
    p = as_write(cluster, world, later, "SELECT pg_sleep(2);")
    holder.wait(30)
    refused(p, "did not record as a write")
    assert changes_of(cluster, later) == 0
    # To a record of this transaction that is not a write.
    own = str(uuid.uuid4())
    p = as_write(cluster, world, own, f"CALL airlock.record_calls(json_build_array("
                 f"json_build_object('id', '{own}', 'at', now(), 'tenant', '{world.a}',"
                 f" 'method', 'tools/call', 'tool', 'get_customer', 'outcome', 'refused',"
                 f" 'dry_run', false)));")
    refused(p, "did not record as a write")
    # The gateway's own write, recorded in its transaction, still goes in.
    own = str(uuid.uuid4())
    p = as_write(cluster, world, own, f"CALL airlock.record_calls(json_build_array("
                 f"json_build_object('id', '{own}', 'at', now(), 'tenant', '{world.a}',"
                 f" 'method', 'tools/call', 'tool', 'add_support_note', 'outcome', 'ok',"
                 f" 'dry_run', false)));")
    assert p.returncode == 0, p.stderr
    assert changes_of(cluster, own) == 1


# --- the sealer's lock -----------------------------------------------------------------------

def metric(d, name):
    body = requests.get(d.url + "/metrics", timeout=5).text
    m = re.search(rf"^{name} (\S+)$", body, re.M)
    assert m, body
    return float(m.group(1))


def test_a_held_seal_lock_raises_the_alarm(cluster, start_daemon):
    d = start_daemon()
    assert metric(d, "airlock_seal_stalled") == 0
    # Advisory locks are not permission-checked: the gateway's role can take the sealer's.
    holder = subprocess.Popen(["psql", "-X", "-q", "-At", cluster.gateway_url],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        holder.stdin.write("SELECT pg_advisory_lock(hashtext('airlock.seal'));\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == ""   # the lock's (void) row
        wait_until(lambda: metric(d, "airlock_seal_stalled") == 1, every=0.25,
                   what="the alarm raised")
        assert metric(d, "airlock_seal_lag_seconds") >= 5
        log = d.wait_log("ALARM")
        assert log.count("ALARM") == 1 and "held by another session" in log
        # airlockctl audit seal says so too, instead of "nothing to seal".
        p = ctl("audit", "seal", "--db", cluster.operator_url, check=False)
        assert p.returncode != 0 and "held by another session" in p.stderr, p.stderr
    finally:
        holder.stdin.close()
        holder.wait(10)
    wait_until(lambda: metric(d, "airlock_seal_stalled") == 0, timeout=10, every=0.25,
               what="the alarm cleared")
    assert metric(d, "airlock_seal_lag_seconds") < 5
    d.wait_log("alarm cleared")


# --- what verify names -----------------------------------------------------------------------

def verify(c):
    return ctl("audit", "verify", "--db", c.operator_url, check=False)


def records(c, n, method="tools/call", outcome="ok"):
    out = c.psql(f"INSERT INTO airlock.calls (id, at, tenant, method, tool, outcome)"
                 f" SELECT gen_random_uuid(), now(), 'acme', '{method}', 'add_support_note',"
                 f" '{outcome}' FROM generate_series(1, {n}) RETURNING id")
    return [x for x in out.split() if len(x) == 36]


def forged_change(c, call_id):
    """An owner with the guards off attaches a change to call_id; returns its id."""
    out = c.psql("ALTER TABLE airlock.changes DISABLE TRIGGER USER;"
                 " INSERT INTO airlock.changes (call_id, tenant, table_name, key, op, digest)"
                 f" VALUES ('{call_id}', 'acme', 'billing.customers', '{{\"id\": 1}}', 'update',"
                 " 'x') RETURNING id;"
                 " UPDATE airlock.changes ch SET digest = encode(sha256(convert_to("
                 "airlock.change_canonical(ch), 'UTF8')), 'hex') WHERE digest = 'x';")
    c.psql("ALTER TABLE airlock.changes ENABLE TRIGGER USER")
    return [int(x) for x in out.split() if x.isdigit()][0]


def test_verify_names_a_forged_seq():
    with own_cluster("alk-gr-") as c:
        records(c, 3)
        forged = str(uuid.uuid4())
        c.psql("INSERT INTO airlock.calls (id, seq, at, tenant, method, outcome)"
               f" OVERRIDING SYSTEM VALUE VALUES ('{forged}', 1000000000000, now(), 'acme',"
               " 'ping', 'ok')")
        p = verify(c)
        assert p.returncode == DATAERR and re.search(
            rf"^record {forged}: forged seq \(1000000000000 was never issued", p.stdout, re.M), \
            p.stdout
        ctl("audit", "seal", "--db", c.operator_url)
        records(c, 2)
        ctl("audit", "seal", "--db", c.operator_url)
        assert f"record {forged}: forged seq" in verify(c).stdout


def test_verify_names_changes_attached_to_other_calls():
    with own_cluster("alk-gr-") as c:
        sealed, read, unsealed = records(c, 1)[0], None, None
        ctl("audit", "seal", "--db", c.operator_url)
        read = records(c, 1, method="tools/list")[0]
        unsealed = records(c, 1)[0]
        late = forged_change(c, sealed)
        on_read = forged_change(c, read)
        other = forged_change(c, unsealed)
        out = verify(c).stdout
        assert f"change {late}: attached to record {sealed} after it was sealed in checkpoint 1" \
            in out, out
        assert f"change {on_read}: attached to record {read}, which is not a write" in out, out
        assert (f"change {other}: attached to record {unsealed} by another transaction than"
                f" the record's") in out, out


def test_verify_names_un_revoked_and_unrecorded_tokens(start_daemon, tmp_path):
    with own_cluster("alk-gr-") as c:
        ctl("tenant", "add", "acme", "--db", c.operator_url)
        mint = ctl("token", "mint", "--tenant", "acme", "--tool", "get_customer", "--ttl", "10m",
                   "--db", c.operator_url)
        token_id = re.search(r"token ([0-9a-f]{12})", mint.stderr).group(1)
        ctl("token", "revoke", token_id, "--db", c.operator_url)
        # Minted and revoked by the admin over JSON-RPC too.
        key = tmp_path / "admin.key"
        ctl("token", "admin-key", key)
        d = start_daemon("--admin-key-file", key, db=c.gateway_url)
        admin = key.read_text().strip()

        def admin_call(method, params):
            r = requests.post(d.url + "/rpc", timeout=15, headers={
                "Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
                data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            return r.json()["result"]
        minted = admin_call("airlock/tokens.mint", {"tenant": "acme", "tools": ["get_customer"],
                                                    "ttl": 600})["token_id"]
        admin_call("airlock/tokens.revoke", {"token_id": minted})
        ctl("audit", "seal", "--db", c.operator_url)
        p = verify(c)
        assert p.returncode == 0, p.stdout + p.stderr
        # An owner with the guards off un-revokes a token and mints one by INSERT.
        c.psql("ALTER TABLE airlock.tokens DISABLE TRIGGER USER;"
               f" UPDATE airlock.tokens SET revoked_at = NULL WHERE id IN ('{token_id}',"
               f" '{minted}');"
               " INSERT INTO airlock.tokens (id, hash, tenant, task, tools, expires_at) VALUES"
               " ('abcdefabcdef', decode(repeat('ab', 32), 'hex'), 'acme', 't',"
               " ARRAY['get_customer'], now() + interval '1 hour');"
               " ALTER TABLE airlock.tokens ENABLE TRIGGER USER;")
        p = verify(c)
        assert p.returncode == DATAERR, p.stdout
        assert re.search(rf"^token {token_id}: un-revoked \(revoked by call [0-9a-f-]{{36}},"
                         rf" its revoked_at is empty now\)$", p.stdout, re.M), p.stdout
        assert f"token {minted}: un-revoked" in p.stdout, p.stdout
        assert "token abcdefabcdef: minted without a tokens.mint call record" in p.stdout, \
            p.stdout
