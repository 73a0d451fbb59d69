"""The console at /console against a real airlockd and PostgreSQL: its headers (a strict
Content-Security-Policy, no framing, no caching), the Origin check on /rpc, the reads it
makes (airlock/calls.list, calls.get and audit.state for the admin credential and approver
tokens only, an approver held to its tenant), and the whole page in Debian's Chromium driven
by playwright-core (tests/browser, installed by `make browser-deps`): log in, filter calls,
open a write's diff, approve one plan and reject another, and the agent's commits succeed
and are refused.  Screenshots go to the test's own temporary directory."""
import json
import secrets
import shutil
import subprocess

import pytest
import requests

from conftest import ROOT, Daemon
from world import NO_LIMITS, World, err, result, rpc

BROWSER = ROOT / "tests" / "browser"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def world(cluster):
    """Two tenants of our own, a customer of a's, and an admin key."""
    w = World(cluster, "co", tenants=2, admin=True)
    w.add_customer(w.a, name="Console customer")
    return w


@pytest.fixture(scope="module")
def gw(cluster, world):
    d = Daemon(["--db", cluster.gateway_url, "--tools", str(ROOT / "tools"),
                "--admin-key-file", world.admin_key, *NO_LIMITS])
    yield d
    d.stop()


@pytest.fixture(scope="module")
def agent(world):
    return world.mint(world.a, "--tool", "void_invoice", "--tool", "update_invoice_status",
                      "--task", "agent-task")


@pytest.fixture(scope="module")
def approver(world):
    return world.mint(world.a, "--approver", "Pat Lead", "--task", "support-lead")


def test_page_and_its_headers(gw):
    for path in ("/console", "/console/", "/console/console.js", "/console/console.css"):
        r = requests.get(gw.url + path, timeout=10)
        assert r.status_code == 200, path
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "form-action 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert r.headers["Cache-Control"] == "no-store"
    page = requests.get(gw.url + "/console", timeout=10)
    assert page.headers["Content-Type"].startswith("text/html")
    # Nothing inline, nothing from elsewhere: one script and one style sheet of its own.
    html = page.text
    assert "<script>" not in html and "style=" not in html and "<style" not in html
    assert "http://" not in html and "https://" not in html
    assert '<script src="/console/console.js"' in html
    assert "localStorage" not in requests.get(gw.url + "/console/console.js", timeout=10).text
    assert requests.get(gw.url + "/console/nope.js", timeout=10).status_code == 404
    assert requests.post(gw.url + "/console", timeout=10).status_code == 405


def test_rpc_checks_origin(gw, world):
    host = gw.url.removeprefix("http://")
    for origin, status in (("https://evil.example", 403), ("null", 403),
                           (f"http://{host}", 200)):
        assert rpc(gw, world.admin, "ping", {}, headers={"Origin": origin}).status_code == status
    assert rpc(gw, world.admin, "ping", {}).status_code == 200   # no Origin: not a browser page


def test_calls_list_for_admin_and_approvers_only(gw, world, agent, approver):
    inv = world.add_invoice(world.a, amount="120.00", issued="now()")
    r = rpc(gw, agent, "tools/call", {"name": "update_invoice_status", "arguments":
                                      {"invoice_id": inv, "status": "paid"},
                                      "idempotency_key": secrets.token_hex(6)})
    write_id = result(r)["structuredContent"]["call_id"]
    assert err(rpc(gw, agent, "airlock/calls.list", {})) == (403, "approver_required")
    assert err(rpc(gw, agent, "airlock/audit.state", {})) == (403, "approver_required")
    page = result(rpc(gw, approver, "airlock/calls.list", {"tool": "update_invoice_status"}))
    assert page["calls"][0]["call_id"] == write_id and page["calls"][0]["changes"] == 1
    assert {c["tenant"] for c in page["calls"]} == {world.a}
    # An approver's tenant is its own, whatever it asks.
    page = result(rpc(gw, approver, "airlock/calls.list", {"tenant": world.b}))
    assert {c["tenant"] for c in page["calls"]} <= {world.a}
    # Newest first, paged by seq.
    page = result(rpc(gw, world.admin, "airlock/calls.list", {"tenant": world.a, "limit": 2}))
    seqs = [c["seq"] for c in page["calls"]]
    assert len(seqs) == 2 and seqs == sorted(seqs, reverse=True)
    assert page["next_before"] == str(seqs[-1])
    more = result(rpc(gw, world.admin, "airlock/calls.list",
                      {"tenant": world.a, "limit": 2, "before": page["next_before"]}))
    assert all(c["seq"] < seqs[-1] for c in more["calls"])
    # Filters: outcome and time.
    refused = result(rpc(gw, world.admin, "airlock/calls.list",
                         {"tenant": world.a, "outcome": "refused"}))
    assert all(c["outcome"] == "refused" for c in refused["calls"])
    assert result(rpc(gw, world.admin, "airlock/calls.list",
                      {"tenant": world.a, "from": "2999-01-01T00:00:00Z"}))["calls"] == []
    assert err(rpc(gw, world.admin, "airlock/calls.list", {"from": "yesterday-ish"})) == \
        (-32602, "invalid_params")
    # An approver reads its tenant's calls (any task), limited to the tool's columns.
    got = result(rpc(gw, approver, "airlock/calls.get", {"call_id": write_id}))
    assert got["changes"][0]["after"]["status"] == "paid"
    assert "customer_id" not in got["changes"][0]["after"]
    other = world.mint(world.b, "--approver", "Other")
    assert err(rpc(gw, other, "airlock/calls.get", {"call_id": write_id})) == \
        (-32602, "call_not_found")
    state = result(rpc(gw, approver, "airlock/audit.state", {}))
    assert state["tenant"] == world.a and state["recent_bad"] == 0 and state["head_links"]


def chromium_missing():
    if shutil.which("node") is None:
        return "node is missing: run `make bootstrap`"
    if not shutil.os.access(CHROMIUM, shutil.os.X_OK):
        return f"{CHROMIUM} is missing: run `make bootstrap` (Debian's chromium)"
    return None


def test_console_in_a_real_browser(gw, world, agent, approver, tmp_path):
    missing = chromium_missing()
    if missing:
        pytest.fail(f"Chromium cannot start ({missing}): make bootstrap installs it")
    assert (BROWSER / "node_modules" / "playwright-core" / "package.json").exists(), \
        "playwright-core is not installed: run `make browser-deps`"
    # A write with a diff to find, and two plans waiting for the support lead.
    inv = world.add_invoice(world.a, amount="120.00", issued="now()")
    r = rpc(gw, agent, "tools/call", {"name": "update_invoice_status", "arguments":
                                      {"invoice_id": inv, "status": "paid"},
                                      "idempotency_key": secrets.token_hex(6)})
    write_id = result(r)["structuredContent"]["call_id"]
    plans = []
    for _ in range(2):
        i = world.add_invoice(world.a, amount="120.00", issued="now()")
        sc = result(rpc(gw, agent, "tools/call", {"name": "void_invoice",
                                                  "arguments": {"invoice_id": i}}))["structuredContent"]
        assert sc["status"] == "approval_required"
        plans.append({"plan_id": sc["plan_id"], "tool": "void_invoice",
                      "arguments": {"invoice_id": i}})
    scenario = {"url": gw.url, "out_dir": str(tmp_path), "admin": world.admin,
                "approver": approver, "agent": agent, "tenant": world.a,
                "write": {"call_id": write_id, "tool": "update_invoice_status"},
                "approve": plans[0], "reject": plans[1]}
    p = subprocess.run(["node", str(BROWSER / "console_test.mjs")], input=json.dumps(scenario),
                       capture_output=True, text=True, timeout=180)
    if p.returncode == 3:
        pytest.fail(p.stderr.strip())
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    steps = out["steps"]
    assert out["console_errors"] == [], out["console_errors"]
    assert "script-src 'self'" in out["csp"]
    # Logged in as the auditor, filtered, and the write's diff.
    assert steps["admin_who"] == "admin"
    assert set(steps["filtered_tools"]) == {"update_invoice_status"}
    assert set(steps["filtered_outcomes"]) == {"ok"}
    assert ["status", '"open"', '"paid"'] in steps["diff"]
    assert "intact" in steps["chain_state"] and len(steps["anchor"]) in (0, 64)
    # The support lead: only its tenant; the preview; approve and reject.
    assert steps["approver_who"].startswith("Pat Lead") and steps["tenant_filter_hidden"]
    assert ["status", '"open"', '"void"'] in steps["preview_diff"]
    assert "approved" in steps["approved_message"]
    applied = steps["apply_approved"]["result"]
    assert applied["isError"] is False and applied["structuredContent"]["dry_run"] is False
    assert world.status(world.a, plans[0]["arguments"]["invoice_id"]) == "void"
    assert "rejected" in steps["rejected_message"]
    assert steps["apply_rejected"]["error"]["data"]["reason"] == "plan_rejected"
    assert world.status(world.a, plans[1]["arguments"]["invoice_id"]) == "open"
    assert plans[0]["plan_id"] not in steps["pending_left"]
    assert plans[1]["plan_id"] not in steps["pending_left"]
    assert ["status", '"void"'] in steps["applied_diff"]
    # Where the credential is not.
    assert out["storage"] == {"local": 0, "session": 0, "cookie": "",
                              "url": gw.url + "/console"}
    assert all(world.admin not in q["url"] and approver not in q["url"] for q in out["requests"])
    assert {q["method"] for q in out["requests"] if q["url"].endswith("/rpc")} == {"POST"}
    assert all(q["auth"] == "bearer" for q in out["requests"] if q["url"].endswith("/rpc"))
    # The decisions are recorded, with the notes typed in the page.
    rows = world.cluster.psql(
        f"SELECT method, arguments ->> 'note' FROM airlock.calls WHERE plan_id IN "
        f"('{plans[0]['plan_id']}', '{plans[1]['plan_id']}') AND method IN ('airlock/plans.approve', 'airlock/plans.reject')"
        f" ORDER BY seq")
    assert rows.splitlines() == ["airlock/plans.approve|Checked with the customer",
                                 "airlock/plans.reject|Duplicate of another request"]
    for name in ("console-call-diff.png", "console-plans.png", "console-applied.png",
                 "console-chain.png"):
        assert (tmp_path / name).stat().st_size > 10000, name
