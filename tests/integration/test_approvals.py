"""Approvals against a real airlockd and PostgreSQL: write tools that need an approver's
approval (always, above a row count, above an argument's value), approver tokens and the
airlock/plans.* methods, the commit of an approved plan (and the refusal of a pending,
rejected, expired or stale one), four eyes, tenancy, the chained record of every step,
the airlock_plans NOTIFY channel and airlockctl plan list|show|approve|reject|watch.

Every test works on a tenant and rows of its own and asserts on the database too."""
import hashlib
import json
import secrets
import select
import shutil
import subprocess

import pytest

from conftest import CTL, ROOT, Daemon, ctl
from world import NO_LIMITS, World, err, newkey, ok, result, rpc, tool

INTEROP = ROOT / "tests" / "interop"


def manifest(name, statement, properties, required, **extra):
    m = {"name": name, "description": f"Test tool {name}.", "kind": "write",
         "arguments": {"type": "object", "properties": properties, "required": required,
                       "additionalProperties": False},
         "statement": statement, "max_rows": 10}
    m.update(extra)
    return m


INVOICE = {"invoice_id": {"type": "integer", "minimum": 1}}
EXTRA_TOOLS = [
    # Always, with the string form.
    manifest("void_required", "UPDATE billing.invoices SET status = 'void' WHERE id = "
             "$invoice_id AND deleted_at IS NULL RETURNING id, status", INVOICE,
             ["invoice_id"], approval="required"),
    # Above a row count: one customer's open invoices, voided together.
    manifest("void_open_invoices", "UPDATE billing.invoices SET status = 'void' WHERE "
             "customer_id = $customer_id AND status = 'open' AND deleted_at IS NULL "
             "RETURNING id, status", {"customer_id": {"type": "integer", "minimum": 1}},
             ["customer_id"], approval={"above_rows": 1}),
    # Above an argument's value (a decimal string).
    manifest("set_amount", "UPDATE billing.invoices SET amount = $amount::numeric WHERE id = "
             "$invoice_id AND deleted_at IS NULL RETURNING id, amount",
             {**INVOICE, "amount": {"type": "string", "pattern": "^[0-9]{1,10}([.][0-9]{1,2})?$"}},
             ["invoice_id", "amount"], approval={"argument": "amount", "above": 100}),
]


# ---------------------------------------------------------------------------------------
# Requests


# ---------------------------------------------------------------------------------------
# The world: tenants and rows of our own


@pytest.fixture(scope="module")
def world(cluster, tmp_path_factory):
    tools = tmp_path_factory.mktemp("approvals") / "tools"
    shutil.copytree(ROOT / "tools", tools)
    for m in EXTRA_TOOLS:
        (tools / f"{m['name']}.json").write_text(json.dumps(m))
    return World(cluster, "ap", tenants=2, customers=1, tools=tools, admin=True)


@pytest.fixture(scope="module")
def gw(cluster, world):
    d = Daemon(["--db", cluster.gateway_url, "--tools", str(world.tools),
                "--admin-key-file", world.admin_key, *NO_LIMITS])
    yield d
    d.stop()


@pytest.fixture(scope="module")
def agent(world):
    return world.token(world.a, "void_invoice", "void_required", "void_open_invoices",
                       "set_amount", "update_invoice_status", task="agent-task")


# ---------------------------------------------------------------------------------------
# 1. Approval as policy

def test_required_write_is_held_as_a_preview(gw, world, agent):
    inv = world.add_invoice(world.a, amount="50.00")
    # No idempotency key needed: nothing will be committed.
    sc = ok(tool(gw, agent, "void_required", {"invoice_id": inv}))
    assert sc["status"] == "approval_required"
    assert sc["dry_run"] is True and sc["plan_id"] == sc["call_id"]
    assert sc["changes"][0]["action"] == "update"
    assert sc["changes"][0]["before"]["status"] == "open"
    assert sc["changes"][0]["after"]["status"] == "void"
    assert sc["approval"] == {"four_eyes": False}
    assert world.status(world.a, inv) == "open"
    # With a key the same: the key is not used up.
    k = newkey()
    sc2 = ok(tool(gw, agent, "void_required", {"invoice_id": inv}, idempotency_key=k))
    assert sc2["status"] == "approval_required" and sc2["plan_id"] != sc["plan_id"]
    assert world.status(world.a, inv) == "open"
    assert world.one(f"SELECT count(*) FROM airlock.idempotency_keys WHERE key = '{k}'") == "0"
    # The plan waits, with who asked; the record is a preview that says why.
    p = world.plan(sc["plan_id"])
    assert p["approval"] == "pending" and p["tenant"] == world.a
    assert p["asked_task"] == "agent-task" and p["asked_by"] == world.record(sc["call_id"])["token_id"]
    rec = world.record(sc2["call_id"])
    assert rec["dry_run"] is True and rec["outcome"] == "ok"
    assert rec["reason"] == "approval_required" and rec["idempotency_key"] is None
    # A commit of the pending plan is refused, and changes nothing.
    r = tool(gw, agent, "void_required", {"invoice_id": inv}, plan_id=sc["plan_id"],
             idempotency_key=newkey())
    assert err(r) == (403, "approval_pending")
    assert world.status(world.a, inv) == "open"


def test_a_write_that_changes_nothing_needs_no_approval(gw, world, agent):
    inv = world.add_invoice(world.a, status="void", amount="50.00")
    # void_invoice voids open invoices only: nothing to approve, nothing held.
    sc = ok(tool(gw, agent, "void_invoice", {"invoice_id": inv}, idempotency_key=newkey()))
    assert sc["dry_run"] is False and sc["row_count"] == 0 and "status" not in sc
    assert world.one(f"SELECT count(*) FROM airlock.plans WHERE tenant = '{world.a}' AND "
                     f"id = '{sc['call_id']}'") == "0"
    assert world.status(world.a, inv) == "void"
    # Without a key it is only a preview: nothing commits without one.
    sc = ok(tool(gw, agent, "void_invoice", {"invoice_id": inv}))
    assert sc["dry_run"] is True and sc["row_count"] == 0 and "status" not in sc


def test_explicit_preview_of_a_held_tool_waits_too(gw, world, agent):
    inv = world.add_invoice(world.a, amount="50.00")
    sc = ok(tool(gw, agent, "void_invoice", {"invoice_id": inv}, dry_run=True))
    assert sc["status"] == "approval_required" and sc["approval"] == {"four_eyes": True}
    assert world.plan(sc["plan_id"])["four_eyes"] is True
    # A tool without approval previews as before: no status, no pending plan.
    sc = ok(tool(gw, agent, "update_invoice_status", {"invoice_id": inv, "status": "paid"},
                 dry_run=True))
    assert "status" not in sc and world.plan(sc["plan_id"])["approval"] is None


def test_threshold_on_rows(gw, world, agent):
    one = world.add_customer(world.a)
    inv = world.add_invoice(world.a, one, amount="50.00")
    sc = ok(tool(gw, agent, "void_open_invoices", {"customer_id": one}, idempotency_key=newkey()))
    assert sc["dry_run"] is False and "status" not in sc
    assert world.status(world.a, inv) == "void"
    many = world.add_customer(world.a)
    invs = [world.add_invoice(world.a, many, amount="50.00") for _ in range(3)]
    sc = ok(tool(gw, agent, "void_open_invoices", {"customer_id": many}, idempotency_key=newkey()))
    assert sc["status"] == "approval_required" and sc["dry_run"] is True
    assert len(sc["changes"]) == 3
    assert [world.status(world.a, i) for i in invs] == ["open"] * 3


def test_threshold_on_an_argument(gw, world, agent):
    inv = world.add_invoice(world.a, amount="50.00")
    sc = ok(tool(gw, agent, "set_amount", {"invoice_id": inv, "amount": "99.99"},
                 idempotency_key=newkey()))
    assert sc["dry_run"] is False and world.amount(world.a, inv) == "99.99"
    sc = ok(tool(gw, agent, "set_amount", {"invoice_id": inv, "amount": "100.01"},
                 idempotency_key=newkey()))
    assert sc["status"] == "approval_required"
    assert world.amount(world.a, inv) == "99.99"


def test_held_result_conforms_to_the_output_schema(gw, world, agent):
    """The official MCP SDK client validates structuredContent against outputSchema (and the
    interop client's strict Ajv too): a held preview must pass both."""
    node = shutil.which("node")
    assert node is not None, "node is missing: run `make bootstrap`"
    assert (INTEROP / "node_modules" / "@modelcontextprotocol" / "sdk").exists(), \
        "the MCP SDK is not installed: run `make interop-deps`"
    inv = world.add_invoice(world.a, amount="50.00")
    p = subprocess.run([node, str(INTEROP / "mcp_client.mjs"), gw.url + "/mcp", agent],
                       input=json.dumps({"calls": [
                           {"name": "void_invoice", "arguments": {"invoice_id": inv}}]}),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert out["warnings"] == [] and out["schema_faults"] == {}, out
    entry = out["results"][0]
    assert "error" not in entry and "strict_errors" not in entry, entry
    assert entry["result"]["isError"] is False
    assert entry["result"]["structuredContent"]["status"] == "approval_required"


def test_manifest_checks(cluster, tmp_path):
    bad = [
        ({"approval": "maybe"}, "approval must be"),
        ({"approval": {"above_rows": -1}}, "above_rows"),
        ({"approval": {"argument": "invoice_id"}}, "go together"),
        ({"approval": {"argument": "nope", "above": 1}}, "argument must name"),
        ({"approval": {"four_eyes": "yes"}}, "four_eyes"),
        ({"approval": {"when": 1}}, "unknown key 'when'"),
    ]
    for extra, message in bad:
        d = tmp_path / secrets.token_hex(3)
        d.mkdir()
        m = manifest("w", "UPDATE billing.invoices SET status = 'void' WHERE id = $invoice_id "
                     "RETURNING id", INVOICE, ["invoice_id"], **extra)
        (d / "w.json").write_text(json.dumps(m))
        p = ctl("tool", "check", "--tools", d, "--db", cluster.operator_url, check=False)
        assert p.returncode != 0 and message in p.stderr, (extra, p.stderr)
    d = tmp_path / "read"
    d.mkdir()
    (d / "r.json").write_text(json.dumps({
        "name": "r", "description": "r", "kind": "read", "approval": "required",
        "arguments": {"type": "object", "properties": {}, "required": [],
                      "additionalProperties": False},
        "statement": "SELECT 1 AS one"}))
    p = ctl("tool", "check", "--tools", d, "--db", cluster.operator_url, check=False)
    assert p.returncode != 0 and "write tools only" in p.stderr


# ---------------------------------------------------------------------------------------
# 2. Approvers

def held(gw, agent, world, name="void_required", args=None):
    """A held call on a fresh open invoice of tenant a: (invoice, plan_id)."""
    inv = world.add_invoice(world.a, amount="50.00")
    sc = ok(tool(gw, agent, name, args or {"invoice_id": inv}, idempotency_key=newkey()))
    assert sc["status"] == "approval_required"
    return inv, sc["plan_id"]


def decide(gw, tok, plan_id, approve=True, note=None):
    params = {"plan_id": plan_id}
    if note is not None:
        params["note"] = note
    return rpc(gw, tok, "airlock/plans.approve" if approve else "airlock/plans.reject", params)


def test_approver_tokens_call_no_tools(gw, world, agent):
    appr = world.approver(world.a, "Pat Lead")
    listed = ctl("token", "list", "--tenant", world.a, "--db", world.cluster.operator_url).stdout
    assert "approver:Pat Lead" in listed
    r = tool(gw, appr, "void_required", {"invoice_id": 1}, idempotency_key=newkey())
    assert err(r) == (403, "tool_not_granted") and "approver" in r.json()["error"]["message"]
    assert result(rpc(gw, appr, "tools/list"))["tools"] == []
    me = result(rpc(gw, appr, "airlock/tokens.self"))
    assert me["approver"] == "Pat Lead" and me["tools"] == [] and me["tenant"] == world.a
    # A token that calls tools is no approver, and the other way round.
    assert err(rpc(gw, agent, "airlock/plans.list")) == (403, "approver_required")
    p = ctl("token", "mint", "--approver", "X", "--tool", "void_invoice", "--tenant", world.a,
            "--ttl", "1m", "--db", world.cluster.operator_url, check=False)
    assert p.returncode == 64
    # Minted over JSON-RPC with the admin credential too, never with tools.
    r = rpc(gw, world.admin, "airlock/tokens.mint", {"tenant": world.a, "approver": "Robin",
                                                     "ttl": 60})
    tok = result(r)["token"]
    assert result(rpc(gw, tok, "airlock/tokens.self"))["approver"] == "Robin"
    r = rpc(gw, world.admin, "airlock/tokens.mint", {"tenant": world.a, "approver": "Robin",
                                                     "tools": ["void_invoice"], "ttl": 60})
    assert err(r) == (-32602, "invalid_params")


def test_approve_then_apply(gw, world, agent):
    appr = world.approver(world.a, "Pat Lead", task="support-lead")
    inv, plan_id = held(gw, agent, world)
    plans = result(rpc(gw, appr, "airlock/plans.list"))["plans"]
    mine = [p for p in plans if p["plan_id"] == plan_id]
    assert mine and mine[0]["status"] == "pending" and mine[0]["tool"] == "void_required"
    assert mine[0]["asked_task"] == "agent-task" and mine[0]["rows_updated"] == 1
    got = result(rpc(gw, appr, "airlock/plans.get", {"plan_id": plan_id}))["plan"]
    assert got["arguments"] == {"invoice_id": inv}
    assert got["changes"][0]["after"]["status"] == "void"
    # Columns the tool does not show stay hidden from an approver token too.
    assert "customer_id" not in got["changes"][0]["after"]
    sc = result(decide(gw, appr, plan_id, note="customer asked, ticket 42"))
    assert sc["status"] == "approved" and sc["approver"] == "Pat Lead"
    assert world.status(world.a, inv) == "open"  # an approval changes nothing by itself
    k = newkey("apply")
    r = tool(gw, agent, "void_required", {"invoice_id": inv}, plan_id=plan_id, idempotency_key=k)
    applied = ok(r)
    assert applied["dry_run"] is False and applied["plan_id"] == plan_id
    assert world.status(world.a, inv) == "void"
    again = ok(tool(gw, agent, "void_required", {"invoice_id": inv}, plan_id=plan_id,
                    idempotency_key=k))
    assert again["replayed"] is True and again["call_id"] == applied["call_id"]
    p = world.plan(plan_id)
    assert p["approval"] == "approved" and p["note"] == "customer asked, ticket 42"
    assert p["approver"] == "Pat Lead" and p["decided_task"] == "support-lead"
    listed = result(rpc(gw, appr, "airlock/plans.list", {"status": "approved"}))["plans"]
    assert [x["applied_by"] for x in listed if x["plan_id"] == plan_id] == [applied["call_id"]]
    # Decided once only.
    assert err(decide(gw, appr, plan_id)) == (409, "plan_decided")
    assert err(decide(gw, appr, plan_id, approve=False)) == (409, "plan_decided")


def test_reject_then_apply_is_refused(gw, world, agent):
    appr = world.approver(world.a)
    inv, plan_id = held(gw, agent, world)
    sc = result(decide(gw, appr, plan_id, approve=False, note="not this one"))
    assert sc["status"] == "rejected"
    r = tool(gw, agent, "void_required", {"invoice_id": inv}, plan_id=plan_id,
             idempotency_key=newkey())
    assert err(r) == (403, "plan_rejected")
    assert world.status(world.a, inv) == "open"
    assert world.plan(plan_id)["approval"] == "rejected"


def test_an_approval_never_covers_a_changed_world(gw, world, agent):
    appr = world.approver(world.a)
    inv, plan_id = held(gw, agent, world)
    result(decide(gw, appr, plan_id))
    world.sql(world.a, f"UPDATE billing.invoices SET amount = amount + 1 WHERE id = {inv}")
    r = tool(gw, agent, "void_required", {"invoice_id": inv}, plan_id=plan_id,
             idempotency_key=newkey())
    assert err(r) == (409, "plan_stale")
    assert world.status(world.a, inv) == "open"
    # Other arguments are another plan.
    inv2, plan2 = held(gw, agent, world)
    result(decide(gw, appr, plan2))
    r = tool(gw, agent, "void_required", {"invoice_id": inv}, plan_id=plan2,
             idempotency_key=newkey())
    assert err(r) == (409, "plan_mismatch")
    assert world.status(world.a, inv2) == "open"


def test_approvals_expire_with_their_plan(gw, world, agent):
    appr = world.approver(world.a)
    inv, plan_id = held(gw, agent, world)
    result(decide(gw, appr, plan_id))
    world.cluster.psql(f"UPDATE airlock.plans SET expires_at = now() - interval '1 second' "
                       f"WHERE id = '{plan_id}'")
    r = tool(gw, agent, "void_required", {"invoice_id": inv}, plan_id=plan_id,
             idempotency_key=newkey())
    assert err(r) == (409, "plan_expired")
    assert world.status(world.a, inv) == "open"
    # A pending plan past its time can no longer be approved.
    inv, plan_id = held(gw, agent, world)
    world.cluster.psql(f"UPDATE airlock.plans SET expires_at = now() - interval '1 second' "
                       f"WHERE id = '{plan_id}'")
    assert err(decide(gw, appr, plan_id)) == (409, "plan_expired")
    assert [p["status"] for p in result(rpc(gw, appr, "airlock/plans.list",
                                            {"status": "expired"}))["plans"]
            if p["plan_id"] == plan_id] == ["expired"]


def test_an_approver_decides_only_its_tenants_plans(gw, world, agent):
    other = world.approver(world.b, "Other Tenant")
    inv, plan_id = held(gw, agent, world)
    assert err(decide(gw, other, plan_id)) == (-32602, "plan_not_found")
    assert err(rpc(gw, other, "airlock/plans.get", {"plan_id": plan_id})) == \
        (-32602, "plan_not_found")
    assert plan_id not in [p["plan_id"] for p in result(
        rpc(gw, other, "airlock/plans.list", {"status": "all"}))["plans"]]
    # tenant is the admin's filter only: an approver's is its own, whatever it asks.
    assert plan_id not in [p["plan_id"] for p in result(
        rpc(gw, other, "airlock/plans.list", {"tenant": world.a}))["plans"]]
    assert world.plan(plan_id)["approval"] == "pending"
    # The admin credential sees and decides every tenant's.
    assert plan_id in [p["plan_id"] for p in result(
        rpc(gw, world.admin, "airlock/plans.list", {"tenant": world.a}))["plans"]]
    assert result(decide(gw, world.admin, plan_id))["approver"] == "admin"


def test_four_eyes(gw, world, agent):
    same_task = world.approver(world.a, "Same Task", task="agent-task")
    other_task = world.approver(world.a, "Other Task", task="lead-task")
    inv, plan_id = held(gw, agent, world, name="void_invoice")
    assert err(decide(gw, same_task, plan_id)) == (403, "four_eyes")
    assert world.plan(plan_id)["approval"] == "pending"
    # Rejecting one's own is allowed: it only stops a write.
    result(decide(gw, other_task, plan_id))
    ok(tool(gw, agent, "void_invoice", {"invoice_id": inv}, plan_id=plan_id,
            idempotency_key=newkey()))
    assert world.status(world.a, inv) == "void"
    # Without four eyes the same task may approve.
    inv, plan_id = held(gw, agent, world)
    result(decide(gw, same_task, plan_id))


def test_airlockctl_plan(gw, world, agent):
    db = ("--db", world.cluster.operator_url)
    inv, plan_id = held(gw, agent, world)
    out = ctl("plan", "list", "--tenant", world.a, *db).stdout
    line = [x for x in out.splitlines() if x.startswith(plan_id)]
    assert line and line[0].split("\t")[1:5] == [world.a, "void_required", "pending", "agent-task"]
    shown = json.loads(ctl("plan", "show", plan_id, *db).stdout)
    assert shown["plan"]["plan_id"] == plan_id and shown["arguments"] == {"invoice_id": inv}
    assert shown["changes"][0]["after"]["status"] == "void"
    out = ctl("plan", "approve", plan_id, "--note", "ok by phone", "--by", "Sam Ops", *db).stdout
    assert out.startswith(f"approved {plan_id}")
    p = world.plan(plan_id)
    assert p["approval"] == "approved" and p["approver"] == "Sam Ops"
    assert p["decided_by"] == "operator" and p["note"] == "ok by phone"
    assert ctl("plan", "approve", plan_id, *db, check=False).returncode == 65
    ok(tool(gw, agent, "void_required", {"invoice_id": inv}, plan_id=plan_id,
            idempotency_key=newkey()))
    inv, plan_id = held(gw, agent, world)
    ctl("plan", "reject", plan_id, "--note", "no", *db)
    assert err(tool(gw, agent, "void_required", {"invoice_id": inv}, plan_id=plan_id,
                    idempotency_key=newkey())) == (403, "plan_rejected")
    assert ctl("plan", "show", "00000000-0000-4000-8000-000000000000", *db,
               check=False).returncode == 65


# ---------------------------------------------------------------------------------------
# 3. Everything recorded, in the chained record

def test_every_step_is_in_the_chained_record(gw, world, agent):
    db = ("--db", world.cluster.operator_url)
    appr = world.approver(world.a, "Pat Lead", task="lead-42")
    inv, plan_id = held(gw, agent, world, name="void_invoice")
    same = world.approver(world.a, "Self", task="agent-task")
    assert err(decide(gw, same, plan_id)) == (403, "four_eyes")
    result(decide(gw, appr, plan_id, note="checked with the customer"))
    applied = ok(tool(gw, agent, "void_invoice", {"invoice_id": inv}, plan_id=plan_id,
                      idempotency_key=newkey()))
    inv2, rejected = held(gw, agent, world, name="void_invoice")
    result(decide(gw, appr, rejected, approve=False, note="duplicate request"))
    r = tool(gw, agent, "void_invoice", {"invoice_id": inv2}, plan_id=rejected,
             idempotency_key=newkey())
    assert err(r) == (403, "plan_rejected")

    ctl("audit", "seal", *db)
    v = ctl("audit", "verify", "--tenant", world.a, *db)
    assert v.stdout.startswith("intact"), v.stdout
    lines = [json.loads(x) for x in ctl("audit", "export", "--format", "jsonl", "--tenant",
                                        world.a, *db).stdout.splitlines()]
    about = [x for x in lines if x["plan_id"] == plan_id or x["id"] == plan_id]
    by_method = {}
    for x in about:
        by_method.setdefault((x["method"], x["outcome"]), []).append(x)
    # Who asked: the held preview, by the agent's token and task.
    asked = [x for x in about if x["id"] == plan_id][0]
    assert asked["dry_run"] is True and asked["reason"] == "approval_required"
    assert asked["task"] == "agent-task" and asked["checkpoint"] is not None
    assert asked["changes"][0]["after"]["status"] == "void"
    # Who approved, when, with which note; and the refused attempt of the asking task.
    approved = by_method[("airlock/plans.approve", "ok")][0]
    assert approved["task"] == "lead-42" and approved["tool"] == "void_invoice"
    assert approved["arguments"] == {"plan_id": plan_id, "note": "checked with the customer",
                                     "approver": "Pat Lead"}
    assert approved["token_id"] == world.plan(plan_id)["decided_by"]
    assert approved["checkpoint"] is not None and approved["tenant"] == world.a
    refused = by_method[("airlock/plans.approve", "refused")][0]
    assert refused["reason"] == "four_eyes" and refused["task"] == "agent-task"
    # Which call applied it.
    commit = by_method[("tools/call", "ok")]
    assert [x["id"] for x in commit if not x["dry_run"]] == [applied["call_id"]]
    assert world.plan(plan_id)["decision_call"] == approved["id"]
    # The rejection and the refused commit.
    rej = [x for x in lines if x["plan_id"] == rejected and x["method"] == "airlock/plans.reject"]
    assert rej and rej[0]["arguments"]["note"] == "duplicate request"
    refused_commit = [x for x in lines if x["plan_id"] == rejected and x["method"] == "tools/call"
                      and x["outcome"] == "refused"]
    assert refused_commit and refused_commit[0]["reason"] == "plan_rejected"
    # A decision cannot be slipped in without its record (the gateway's role, directly).
    p = world.cluster.psql(f"SELECT * FROM airlock.decide_plan('{rejected}', 'approved', NULL,"
                           f" 'x', NULL, 'x', NULL, gen_random_uuid())",
                           url=world.cluster.gateway_url, check=False)
    assert p.returncode != 0 and "own call record" in p.stderr


def result_digest(answer):
    """A result's digest as docs/auditing.md defines it: the SHA-256 of jansson's canonical
    JSON (compact, keys sorted, non-ASCII escaped), without call_id and replayed."""
    view = {k: v for k, v in answer.items() if k not in ("call_id", "replayed")}
    text = json.dumps(view, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def test_airlockctl_records_a_decision_as_the_gateway_does(gw, world, agent):
    """airlockctl plan approve writes the record airlockd writes for airlock/plans.approve:
    the same fields, a result digest over the same answer, arguments kept the same way, and
    the trigger's digest over its canonical text."""
    db = ("--db", world.cluster.operator_url)
    appr = world.approver(world.a, "Pat Lead", task="lead-9")
    _, by_gw = held(gw, agent, world)
    answer = result(decide(gw, appr, by_gw, note="checked"))
    _, by_ctl = held(gw, agent, world)
    ctl("plan", "approve", by_ctl, "--note", "checked", "--by", "Sam Ops", *db)
    g = world.record(world.plan(by_gw)["decision_call"])
    c = world.record(world.plan(by_ctl)["decision_call"])
    # Who decided differs (an approver's token, task and address; the operator), not how.
    assert g["task"] == "lead-9" and g["client"] == "127.0.0.1"
    assert c["task"] is None and c["token_id"] == "operator" and c["client"] == "airlockctl"
    for r, plan_id, approver in ((g, by_gw, "Pat Lead"), (c, by_ctl, "Sam Ops")):
        assert r["method"] == "airlock/plans.approve" and r["outcome"] == "ok"
        assert r["tenant"] == world.a and r["tool"] == "void_required"
        assert r["plan_id"] == plan_id and r["dry_run"] is False
        assert r["arguments"] == {"plan_id": plan_id, "note": "checked", "approver": approver}
        assert isinstance(r["duration_ms"], (int, float)) and r["duration_ms"] >= 0
        assert r["reason"] is None and r["idempotency_key"] is None and r["egress"] is None
    # The result digest covers the gateway's answer to a decision, whoever made it.
    assert g["result_digest"] == result_digest(answer)
    assert c["result_digest"] == result_digest({**answer, "plan_id": by_ctl,
                                                "decided_by": "operator", "approver": "Sam Ops"})
    ids = f"'{g['id']}', '{c['id']}'"
    assert world.one("SELECT count(*) FROM airlock.calls c WHERE id IN (" + ids + ") AND "
                     "digest = encode(sha256(convert_to(airlock.call_canonical(c), 'UTF8')),"
                     " 'hex')") == "2"


# ---------------------------------------------------------------------------------------
# 4. The airlock_plans channel and airlockctl plan watch

def test_plan_watch_prints_pending_plans_as_they_come(gw, world, agent):
    agent_b = world.token(world.b, "void_required", task="agent-b")
    w = subprocess.Popen([str(CTL), "plan", "watch", "--tenant", world.a, "--count", "2",
                          "--db", world.cluster.operator_url], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        # It says when it listens; what comes after that is seen.
        ready, _, _ = select.select([w.stderr], [], [], 15)
        assert ready and "watching" in w.stderr.readline()
        inv_b = world.add_invoice(world.b, amount="50.00")
        ok(tool(gw, agent_b, "void_required", {"invoice_id": inv_b}))   # another tenant's
        _, first = held(gw, agent, world)
        # A plain preview of a tool without approval is not announced.
        ok(tool(gw, agent, "update_invoice_status", {"invoice_id": inv_b, "status": "paid"},
                dry_run=True))
        _, second = held(gw, agent, world, name="void_invoice")
        out, errs = w.communicate(timeout=15)
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
    assert w.returncode == 0, errs
    lines = out.splitlines()
    assert len(lines) == 2
    got = [json.loads(x) for x in lines]
    assert [x["plan_id"] for x in got] == [first, second]
    assert all(x["status"] == "pending" and x["tenant"] == world.a for x in got)
    assert got[0]["tool"] == "void_required" and got[1]["four_eyes"] is True
    assert got[0]["asked_task"] == "agent-task" and got[0]["rows_updated"] == 1


def test_watch_stops_on_sigint(world):
    w = subprocess.Popen([str(CTL), "plan", "watch", "--db", world.cluster.operator_url],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([w.stderr], [], [], 15)
    assert ready and "watching" in w.stderr.readline()
    w.send_signal(2)
    assert w.wait(timeout=10) == 0
