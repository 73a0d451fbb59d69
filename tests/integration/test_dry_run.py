"""Dry-runs against a real airlockd and PostgreSQL: a dry-run of every demo write changes
no row and leaves its record, captured preview and plan; a preview-only token.

Every test works on tenants and rows of its own (random names), asserts on the database as
well as on the answers, and never touches another test module's rows."""
import secrets

from world import newkey, ok, revert, tool, write_fixtures


world, gw, tok = write_fixtures("d")


def test_dry_run_of_every_demo_write_changes_no_row(gw, world, tok):
    t = world.a
    c0 = world.cust[t][0]
    inv_open, inv_paid = world.add_invoice(t), world.add_invoice(t, status="paid", amount="49.90")
    note = world.add_note(t, f"to delete {secrets.token_hex(4)}")
    # A committed write, so that a revert can be previewed too.
    done = ok(tool(gw, tok, "update_invoice_status", {"invoice_id": world.add_invoice(t),
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
        sc = ok(tool(gw, tok, name, args, key=key, dry_run=True))
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
        rec = world.summary(p)
        assert rec[0] == "ok" and rec[4] == "t", rec
        assert world.changes(p)
        assert world.cluster.psql(f"SELECT count(*) FROM airlock.plans WHERE id = '{p}' "
                                  f"AND expires_at > now() + interval '14 minutes'").strip() == "1"
    # The key is still free: a commit with other arguments takes it.
    ok(tool(gw, tok, "add_support_note", {"customer_id": c0, "body": f"after dry {key}"}, key=key))
    assert world.keyrow(t, key) is not None


def test_preview_only_token(gw, world):
    t = world.a
    pv = world.mint(t, "--preview-only")
    body, key = f"preview only {secrets.token_hex(4)}", newkey()
    inv = world.add_invoice(t)
    before = world.digest()
    sc = ok(tool(gw, pv, "add_support_note", {"customer_id": world.cust[t][0], "body": body}, key=key))
    assert sc["dry_run"] is True and sc["plan_id"] == sc["call_id"]
    assert sc["changes"][0]["action"] == "create" and sc["changes"][0]["after"]["body"] == body
    sc = ok(tool(gw, pv, "update_invoice_status", {"invoice_id": inv, "status": "void"}))
    assert sc["dry_run"] is True and sc["rows"][0]["status"] == "void"
    assert world.digest() == before
    assert world.notes(t, body) == 0 and world.keyrow(t, key) is None
    assert world.row(t, "invoices", inv)["status"] == "open"
    assert world.summary(sc["call_id"])[4] == "t"
