"""The write path against a real airlockd and PostgreSQL: row caps, constraint errors,
change capture and the call record of writes, calls.get, and answers, previews and replays
that show only the tool's columns.

Every test works on tenants and rows of its own (random names), asserts on the database as
well as on the answers, and never touches another test module's rows."""
import json
import secrets
import shutil
import uuid

from conftest import ROOT
from world import NO_LIMITS, err, newkey, ok, revert, rpc, tool, tool_error, write_fixtures


world, gw, tok = write_fixtures("w")


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
    cust = world.add_customer(t)
    n1, n2 = world.add_note(t, "cap one", cust), world.add_note(t, "cap two", cust)
    tk = world.mint(t, tools=["touch_notes"])
    key = newkey("cap")
    sc = tool_error(tool(d, tk, "touch_notes", {"customer_id": cust}, key=key))
    e = sc["error"]
    assert e["reason"] == "row_cap_exceeded" and e["count"] == 2 and e["max_rows"] == 1
    assert "2" in e["message"] and "nothing was changed" in e["message"]
    assert world.row(t, "support_notes", n1)["body"] == "cap one"
    assert world.row(t, "support_notes", n2)["body"] == "cap two"
    assert world.keyrow(t, key) is None
    assert world.summary(sc["call_id"])[:3] == ("tool_error", "row_cap_exceeded", key)
    assert world.changes(sc["call_id"]) == []
    # The same key, within the cap, commits.
    world.sql(t, f"UPDATE billing.support_notes SET customer_id = {world.cust[t][0]} WHERE id = {n2}")
    sc = ok(tool(d, tk, "touch_notes", {"customer_id": cust}, key=key))
    assert sc["row_count"] == 1
    assert world.row(t, "support_notes", n1)["body"] == "cap one!"
    assert world.row(t, "support_notes", n2)["body"] == "cap two"


def test_constraint_violation_rolls_back(gw, world, tok):
    t = world.a
    own = world.cust[t][0]
    other_inv = world.add_invoice(world.b)
    cases = [
        ({"customer_id": world.cust[world.b][0]}, "support_notes_tenant_customer_id_fkey"),
        ({"customer_id": 987654321}, "support_notes_tenant_customer_id_fkey"),
        ({"customer_id": own, "invoice_id": other_inv}, "support_notes_tenant_invoice_id_fkey"),
    ]
    before = world.digest()
    for extra, constraint in cases:
        key, body = newkey("fk"), f"fk note {secrets.token_hex(4)}"
        r = tool(gw, tok, "add_support_note", {**extra, "body": body}, key=key)
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
        assert world.summary(sc["call_id"])[:3] == ("tool_error", "constraint_violated", key)
        # The key is free: a valid call with it commits.
        good = ok(tool(gw, tok, "add_support_note", {"customer_id": own, "body": body}, key=key))
        assert good["replayed"] is False and world.notes(t, body) == 1
        world.sql(t, f"UPDATE billing.support_notes SET deleted_at = now() WHERE body = '{body}'")
    after = world.digest()
    assert after[(world.b, "support_notes")] == before[(world.b, "support_notes")]


def test_call_records_of_writes(gw, world):
    t = world.a
    task = f"task-{secrets.token_hex(4)}"
    tk = world.mint(t, "--task", task, "--revert")
    inv = world.add_invoice(t)
    args = {"invoice_id": inv, "status": "void"}
    key = newkey()
    pv = ok(tool(gw, tk, "update_invoice_status", args, dry_run=True))
    tool(gw, tk, "update_invoice_status", args)                                    # no key
    sc = ok(tool(gw, tk, "update_invoice_status", args, key=key, plan_id=pv["plan_id"]))
    rp = ok(tool(gw, tk, "update_invoice_status", args, key=key))                  # replay
    tool(gw, tk, "update_invoice_status", {**args, "status": "paid"}, key=key)     # 422
    te = tool_error(tool(gw, tk, "add_support_note", {"customer_id": 987654321, "body": "x"}, key=newkey()))
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
    inv = world.add_invoice(t)
    sc = ok(tool(gw, tk, "update_invoice_status", {"invoice_id": inv, "status": "void"}, key=newkey()))
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
    note = ok(tool(gw, tk, "add_support_note", {"customer_id": world.cust[t][0], "body": "g"}, key=newkey()))
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


INVOICE_TOOL_COLUMNS = {"id", "number", "status", "amount", "paid_at", "tenant"}


def test_previews_answers_and_replays_show_only_the_tools_columns(gw, world):
    """update_invoice_status returns id, number, status, amount and paid_at: an invoice's
    customer, currency and dates are not the tool's to show."""
    t = world.a
    pv_tok = world.mint(t, "--preview-only", tools=["update_invoice_status"])
    inv = world.add_invoice(t)
    args = {"invoice_id": inv, "status": "void"}
    shown = []
    pv = ok(tool(gw, pv_tok, "update_invoice_status", args))
    shown.append(pv)
    tk = world.mint(t, "--revert", tools=["update_invoice_status"])
    pv = ok(tool(gw, tk, "update_invoice_status", args, dry_run=True))
    key = newkey()
    sc = ok(tool(gw, tk, "update_invoice_status", args, key=key, plan_id=pv["plan_id"]))
    again = ok(tool(gw, tk, "update_invoice_status", args, key=key))
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
