"""Plans against a real airlockd and PostgreSQL: a preview's plan committed with its key,
plans bound to the state they saw (stale either way), to their arguments and tool, malformed
and expired plans, a retry after the plan expired, the sweeping of expired plans.

Every test works on tenants and rows of its own (random names), asserts on the database as
well as on the answers, and never touches another test module's rows."""
import secrets
import threading
import uuid

from world import READ_TOOLS, err, newkey, ok, revert, tool, wait_until, write_fixtures


world, gw, tok = write_fixtures("p")


def test_preview_commit_with_plan_then_revert(gw, world, tok):
    t = world.a
    inv = world.add_invoice(t)
    orig = world.row(t, "invoices", inv)
    args = {"invoice_id": inv, "status": "void"}
    pv = ok(tool(gw, tok, "update_invoice_status", args, dry_run=True))
    [ch] = pv["changes"]
    assert ch["table"] == "billing.invoices" and ch["key"]["id"] == str(inv)
    assert ch["before"]["status"] == "open" and ch["after"]["status"] == "void"
    assert ch["before"]["amount"] == "100.10"
    assert world.row(t, "invoices", inv) == orig
    key = newkey()
    sc = ok(tool(gw, tok, "update_invoice_status", args, key=key, plan_id=pv["plan_id"]))
    assert sc["dry_run"] is False and sc["plan_id"] == pv["plan_id"]
    assert sc["call_id"] != pv["call_id"]
    assert sc["changes"] == pv["changes"]
    assert world.row(t, "invoices", inv)["status"] == "void"
    assert world.summary(sc["call_id"]) == ("ok", "-", key, pv["plan_id"], "f", "tools/call")
    [(table, op, k, b, a)] = world.changes(sc["call_id"])
    assert (table, op, k["id"], b["status"], a["status"]) == ("billing.invoices", "update", inv, "open", "void")
    # A plan for an insert binds the number of rows inserted, not their new ids.
    nargs = {"customer_id": world.cust[t][0], "body": f"planned {secrets.token_hex(4)}"}
    npv = ok(tool(gw, tok, "add_support_note", nargs, dry_run=True))
    nsc = ok(tool(gw, tok, "add_support_note", nargs, key=newkey(), plan_id=npv["plan_id"]))
    assert nsc["plan_id"] == npv["plan_id"] and world.notes(t, nargs["body"]) == 1
    assert nsc["rows"][0]["id"] != npv["rows"][0]["id"]
    # Revert: the row is as it was.
    rkey = newkey("rv")
    rv = ok(revert(gw, tok, sc["call_id"], key=rkey))
    assert rv["dry_run"] is False and rv["replayed"] is False
    assert [(c["table"], c["action"]) for c in rv["changes"]] == [("billing.invoices", "update")]
    assert world.row(t, "invoices", inv) == orig
    assert world.summary(rv["call_id"]) == ("ok", "-", rkey, "-", "f", "airlock/calls.revert")
    assert len(world.changes(rv["call_id"])) == 1
    # The revert's key replays.
    again = ok(revert(gw, tok, sc["call_id"], key=rkey))
    assert again["replayed"] is True and again["call_id"] == rv["call_id"]
    assert world.row(t, "invoices", inv) == orig


def test_stale_plan(gw, world, tok):
    t = world.a
    inv = world.add_invoice(t)
    args = {"invoice_id": inv, "status": "paid"}
    pv = ok(tool(gw, tok, "update_invoice_status", args, dry_run=True))
    world.sql(t, f"UPDATE billing.invoices SET amount = 77.77 WHERE id = {inv}")
    changed = world.row(t, "invoices", inv)
    key = newkey()
    r = tool(gw, tok, "update_invoice_status", args, key=key, plan_id=pv["plan_id"])
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
    assert world.summary(cid)[:4] == ("refused", "plan_stale", key, pv["plan_id"])
    assert world.changes(cid) == []
    # A fresh preview commits, and the key that was refused is free.
    pv2 = ok(tool(gw, tok, "update_invoice_status", args, dry_run=True))
    ok(tool(gw, tok, "update_invoice_status", args, key=key, plan_id=pv2["plan_id"]))
    assert world.row(t, "invoices", inv)["status"] == "paid"


def test_stale_plan_the_other_way(gw, world, tok):
    """A previewed row that would no longer change, and inserts that would not happen."""
    t = world.a
    note = world.add_note(t, f"gone {secrets.token_hex(4)}")
    pv = ok(tool(gw, tok, "delete_support_note", {"note_id": note}, dry_run=True))
    world.sql(t, f"UPDATE billing.support_notes SET deleted_at = now() WHERE id = {note}")
    gone = world.row(t, "support_notes", note)
    r = tool(gw, tok, "delete_support_note", {"note_id": note}, key=newkey(), plan_id=pv["plan_id"])
    assert err(r) == (409, "plan_stale")
    assert [str(x["key"]["id"]) for x in r.json()["error"]["data"]["rows"]] == [str(note)]
    assert world.row(t, "support_notes", note) == gone

    inv = world.add_invoice(t, status="paid")
    args = {"invoice_id": inv, "amount": "10.00", "reason": "stale"}
    pv = ok(tool(gw, tok, "refund_invoice", args, dry_run=True))
    world.sql(t, f"UPDATE billing.invoices SET status = 'open' WHERE id = {inv}")
    r = tool(gw, tok, "refund_invoice", args, key=newkey(), plan_id=pv["plan_id"])
    assert err(r) == (409, "plan_stale")
    data = r.json()["error"]["data"]
    assert data["inserts_planned"] == {"billing.refunds": 1} and data["inserts_now"] == {}
    assert world.sql(t, f"SELECT count(*) FROM billing.refunds WHERE invoice_id = {inv}").split()[-1] == "0"
    assert world.row(t, "invoices", inv)["status"] == "open"


def test_plan_with_other_arguments_or_tool(gw, world, tok):
    t = world.a
    inv = world.add_invoice(t)
    before = world.row(t, "invoices", inv)
    pv = ok(tool(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "void"}, dry_run=True))
    cases = [
        ("update_invoice_status", {"invoice_id": inv, "status": "paid"}, pv["plan_id"]),
        ("refund_invoice", {"invoice_id": inv, "amount": "1", "reason": "x"}, pv["plan_id"]),
        ("update_invoice_status", {"invoice_id": inv, "status": "void"}, str(uuid.uuid4())),
        ("update_invoice_status", {"invoice_id": inv, "status": "void"}, str(uuid.uuid4()).upper()),
    ]
    for name, args, plan in cases:
        key = newkey()
        r = tool(gw, tok, name, args, key=key, plan_id=plan)
        assert err(r) == (409, "plan_mismatch"), (name, args, r.text)
        assert world.keyrow(t, key) is None
    # Another tenant cannot use our plan, even with the same arguments.
    tb = world.mint(world.b)
    r = tool(gw, tb, "update_invoice_status", {"invoice_id": inv, "status": "void"},
              key=newkey(), plan_id=pv["plan_id"])
    assert err(r) == (409, "plan_mismatch")
    assert world.row(t, "invoices", inv) == before


def test_malformed_plan_id_is_a_bad_parameter(gw, world, tok):
    """A plan id that is no call id is -32602, is recorded, and disturbs no other call (call
    records are written in shared batches: one record that cannot be stored must not take
    the others down with it)."""
    t = world.a
    inv = world.add_invoice(t)
    task = f"badplan-{secrets.token_hex(4)}"
    tk = world.mint(t, "--task", task)
    reader = world.mint(world.b, tools=READ_TOOLS)
    bads = ["x" * 36, "not-a-plan", "{" * 36, "0" * 36]
    answers, reads = [], []

    def bad(plan):
        answers.append(tool(gw, tk, "update_invoice_status", {"invoice_id": inv, "status": "void"},
                             key=newkey(), plan_id=plan))

    def read():
        reads.append(tool(gw, reader, "get_customer", {"customer_id": world.cust[world.b][0]}))

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


def test_expired_plan(gw, world, tok):
    t = world.a
    inv = world.add_invoice(t)
    args = {"invoice_id": inv, "status": "void"}
    pv = ok(tool(gw, tok, "update_invoice_status", args, dry_run=True))
    out = world.cluster.psql(f"UPDATE airlock.plans SET expires_at = now() - interval '1 s' "
                             f"WHERE id = '{pv['plan_id']}'")
    assert out.strip() == "UPDATE 1"
    key = newkey()
    r = tool(gw, tok, "update_invoice_status", args, key=key, plan_id=pv["plan_id"])
    assert err(r) == (409, "plan_expired")
    assert world.row(t, "invoices", inv)["status"] == "open"
    assert world.keyrow(t, key) is None


def test_retry_after_plan_expired_replays(gw, world, tok):
    t = world.a
    inv = world.add_invoice(t)
    pv = ok(tool(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "void"}, dry_run=True))
    key = newkey()
    first = ok(tool(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "void"},
                     key=key, plan_id=pv["plan_id"]))
    world.cluster.psql(f"UPDATE airlock.plans SET expires_at = now() - interval '1 s' "
                       f"WHERE id = '{pv['plan_id']}'")
    again = ok(tool(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "void"},
                     key=key, plan_id=pv["plan_id"]))
    assert again["replayed"] is True and again["call_id"] == first["call_id"]


def test_expired_plans_are_swept(start_daemon, world, cluster):
    """Plans expired for over an hour go in the background round; recent ones stay."""
    old, recent = str(uuid.uuid4()), str(uuid.uuid4())
    for pid, at in ((old, "now() - interval '2 hours'"), (recent, "now() - interval '1 minute'")):
        cluster.psql(f"INSERT INTO airlock.plans (id, tenant, tool, fingerprint, updates, inserts,"
                     f" expires_at) VALUES ('{pid}', '{world.a}', 'x', 'f', '[]', '{{}}', {at})")
    start_daemon()
    q = lambda pid: cluster.psql(f"SELECT count(*) FROM airlock.plans WHERE id = '{pid}'").strip()
    wait_until(lambda: q(old) == "0", timeout=10, every=0.2, what="the old plan swept")
    assert q(recent) == "1"
