"""Revert against a real airlockd and PostgreSQL: what is refused, a changed row (conflict,
then force), a revert twice and a revert of a revert, soft deletes, inserts, two tables at
once, the token's task, its parameters, a revert's preview and plan, the quota, the
operator's revert comparing times in UTC.

Every test works on tenants and rows of its own (random names), asserts on the database as
well as on the answers, and never touches another test module's rows."""
import json
import os
import secrets
import uuid

from conftest import ctl
from world import err, newkey, ok, revert, rpc, tool, tool_error, write_fixtures


world, gw, tok = write_fixtures("v")


def test_revert_refusals(gw, world, tok):
    t = world.a
    # A token without the revert grant, and force without the admin credential.
    plain = world.mint(t)
    w_key = newkey()
    w = ok(tool(gw, tok, "add_support_note", {"customer_id": world.cust[t][0],
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
    wb = ok(tool(gw, tb, "add_support_note", {"customer_id": world.cust[world.b][0],
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
    rd = ok(tool(gw, tok, "get_customer", {"customer_id": world.cust[t][0]}))
    pv = ok(tool(gw, tok, "add_support_note", {"customer_id": world.cust[t][0], "body": "p"}, dry_run=True))
    te = tool_error(tool(gw, tok, "add_support_note", {"customer_id": 987654321, "body": "x"}, key=newkey()))
    task = rpc(gw, tok, "airlock/tokens.self").json()["result"]["task"]
    tool(gw, tok, "add_support_note", {"customer_id": world.cust[t][0], "body": "refused"})
    refused = world.cluster.psql(f"SELECT id FROM airlock.calls WHERE task = '{task}' AND "
                                 f"reason = 'key_required' ORDER BY at DESC LIMIT 1").strip()
    for cid in (rd["call_id"], pv["call_id"], te["call_id"], refused):
        r = revert(gw, tok, cid, key=newkey())
        assert err(r) == (-32602, "not_revertible"), (cid, r.text)


def test_revert_of_changed_row_conflicts_then_force(gw, world, tok):
    t = world.a
    inv = world.add_invoice(t)
    w = ok(tool(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "paid"}, key=newkey()))
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
    rec = world.summary(rv["call_id"])
    assert rec[:3] == ("ok", "-", fk) and rec[5] == "airlock/calls.revert"
    assert world.keyrow(t, fk) is not None
    assert world.cluster.psql(f"SELECT tenant FROM airlock.calls WHERE id = '{rv['call_id']}'").strip() == t


def test_double_revert_and_revert_of_a_revert(gw, world, tok):
    t = world.a
    inv = world.add_invoice(t)
    orig = world.row(t, "invoices", inv)
    w = ok(tool(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "void"}, key=newkey()))
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
    cust = world.add_customer(t)
    add = ok(tool(gw, tok, "add_support_note", {"customer_id": cust, "body": body}, key=newkey()))
    nid = int(add["rows"][0]["id"])
    live = lambda: world.sql(t, f"SELECT count(*) FROM billing.support_notes_live WHERE id = {nid}").split()[-1]
    assert live() == "1"
    dl = ok(tool(gw, tok, "delete_support_note", {"note_id": nid}, key=newkey()))
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
    inv = world.add_invoice(t, status="paid", amount="80.00")
    orig = world.row(t, "invoices", inv)
    key = newkey()
    sc = ok(tool(gw, tok, "refund_invoice", {"invoice_id": inv, "amount": "30.50",
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
    again = ok(tool(gw, tok, "refund_invoice", {"invoice_id": inv, "amount": "1.00",
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


def test_revert_is_limited_to_the_tokens_task(gw, world):
    t = world.a
    mine = world.mint(t, "--revert", "--task", f"task-one-{secrets.token_hex(3)}")
    other = world.mint(t, "--revert", "--task", f"task-two-{secrets.token_hex(3)}")
    w = ok(tool(gw, mine, "add_support_note", {"customer_id": world.cust[t][0],
                                                "body": f"task {secrets.token_hex(4)}"}, key=newkey()))
    # Same tenant, another task: the call is not there for it, and nothing changes.
    assert err(revert(gw, other, w["call_id"], key=newkey())) == (-32602, "call_not_found")
    assert world.row(t, "support_notes", w["rows"][0]["id"])["deleted_at"] is None
    assert ok(revert(gw, mine, w["call_id"], key=newkey()))["dry_run"] is False
    assert world.row(t, "support_notes", w["rows"][0]["id"])["deleted_at"] is not None


def test_revert_params_are_checked(gw, world, tok):
    t = world.a
    w = ok(tool(gw, tok, "add_support_note", {"customer_id": world.cust[t][0],
                                               "body": f"params {secrets.token_hex(4)}"}, key=newkey()))
    for extra in ({"dry_run": "true"}, {"force": 1}, {"bogus": 1}, {"plan_id": "not-a-uuid"}):
        r = revert(gw, tok, w["call_id"], key=newkey(), **extra)
        assert err(r) == (-32602, "invalid_params"), (extra, r.text)
    # Nothing was reverted by any of them, and each left a record.
    assert world.row(t, "support_notes", w["rows"][0]["id"])["deleted_at"] is None


def test_revert_preview_commits_with_its_plan(gw, world, tok):
    t = world.a
    w = ok(tool(gw, tok, "add_support_note", {"customer_id": world.cust[t][0],
                                               "body": f"rvplan {secrets.token_hex(4)}"}, key=newkey()))
    pv = ok(revert(gw, tok, w["call_id"], dry_run=True))
    assert pv["dry_run"] is True and pv["plan_id"] == pv["call_id"]
    assert world.row(t, "support_notes", w["rows"][0]["id"])["deleted_at"] is None
    done = ok(revert(gw, tok, w["call_id"], key=newkey(), plan_id=pv["plan_id"]))
    assert done["plan_id"] == pv["plan_id"]
    assert world.row(t, "support_notes", w["rows"][0]["id"])["deleted_at"] is not None


def test_a_revert_counts_against_the_quota(gw, world):
    t = world.a
    tk = world.mint(t, "--revert", "--max-calls", "3")
    inv = world.add_invoice(t)
    w = ok(tool(gw, tk, "update_invoice_status", {"invoice_id": inv, "status": "void"}, key=newkey()))
    r1 = ok(revert(gw, tk, w["call_id"], key=newkey()))
    r2 = ok(revert(gw, tk, r1["call_id"], key=newkey()))
    assert world.row(t, "invoices", inv)["status"] == "void"
    me = rpc(gw, tk, "airlock/tokens.self").json()["result"]
    assert me["calls_used"] == 3 and me["calls_left"] == 0
    # No fourth state change, not even a revert of the revert of the revert.
    assert err(revert(gw, tk, r2["call_id"], key=newkey())) == (403, "quota_exhausted")
    assert err(revert(gw, tk, r2["call_id"], dry_run=True)) == (403, "quota_exhausted")
    assert world.row(t, "invoices", inv)["status"] == "void"


def test_operator_revert_compares_times_in_utc(gw, world, tok):
    """The change record's images were written by the gateway's UTC session; an operator
    whose environment names another time zone reverts them all the same."""
    t = world.a
    inv = world.add_invoice(t)
    w = ok(tool(gw, tok, "update_invoice_status", {"invoice_id": inv, "status": "paid"}, key=newkey()))
    env = {**os.environ, "TZ": "America/New_York", "PGTZ": "America/New_York"}
    p = ctl("call", "revert", w["call_id"], "--db", world.cluster.operator_url, env=env, check=False)
    assert p.returncode == 0, p.stderr
    row = world.row(t, "invoices", inv)
    assert row["status"] == "open" and row["paid_at"] is None
    # And the gateway can revert the operator's revert: its images are in UTC too.
    rv = json.loads(p.stdout)["call_id"]
    ok(revert(gw, world.admin, rv, key=newkey()))
    assert world.row(t, "invoices", inv)["status"] == "paid"
