"""/metrics against a real airlockd and PostgreSQL, read with a real Prometheus text-format
parser (Debian's python3-prometheus-client): calls by method, tool, outcome and reason;
latency histograms per tool; dry-runs, plans, replays and reverts; rate-limit refusals by
scope; audit batches; worker pools; sandbox runs by the limit that stopped them.  Every
assertion is on how much a counter moved for the calls the test made, each test on a
daemon of its own so no other traffic moves them."""
import json
import secrets
import shutil

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT
from world import JSON, NO_LIMITS, World, rpc, tool


def scrape(d):
    """{(sample name, frozenset of labels): value} of one /metrics answer."""
    r = requests.get(d.url + "/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def delta(before, after, name, **labels):
    key = (name, frozenset(labels.items()))
    return after.get(key, 0) - before.get(key, 0)


@pytest.fixture(scope="module")
def world(cluster):
    w = World(cluster, "mx", tenants=1)
    w.add_customer(w.a, email=f"m@{w.a}.example", name="M")
    return w


def test_existing_names_and_the_format(start_daemon):
    d = start_daemon(*NO_LIMITS, "--workers", "3", "--sandboxes", "2")
    m = scrape(d)
    for name in ("airlock_requests_in_flight", "airlock_http_connections", "airlock_db_pending",
                 "airlock_seal_lag_seconds", "airlock_seal_stalled"):
        assert (name, frozenset()) in m, name
    assert ("airlock_http_requests_total", frozenset({("class", "2xx")})) in m
    assert m[("airlock_pool_workers", frozenset({("pool", "db")}))] == 3
    assert m[("airlock_pool_workers", frozenset({("pool", "sandbox")}))] == 2
    assert m[("airlock_pool_busy", frozenset({("pool", "db")}))] == 0


def test_calls_by_method_tool_outcome_and_reason(start_daemon, world):
    d = start_daemon(*NO_LIMITS)
    tok = world.token(world.a, "get_customer")
    before = scrape(d)
    for _ in range(2):
        r = tool(d, tok, "get_customer", {"customer_id": world.cust[world.a][0]})
        assert r.json()["result"]["isError"] is False
    r = tool(d, tok, "get_customer", {"customer_id": 0})          # fails the schema
    assert r.json()["result"]["isError"] is True
    r = tool(d, tok, "lookup_invoices", {"customer_id": 1})       # not granted
    assert r.json()["error"]["data"]["reason"] == "tool_not_granted"
    r = tool(d, tok, "no_such_tool_" + secrets.token_hex(4), {})  # made-up name
    assert r.json()["error"]["data"]["reason"] == "tool_not_found"
    r = tool(d, "alk_" + "A" * 43, "get_customer", {"customer_id": 1})
    assert r.status_code == 401
    assert rpc(d, tok, "tools/list").status_code == 200
    after = scrape(d)

    calls = "airlock_calls_total"
    assert delta(before, after, calls, method="tools/call", tool="get_customer", outcome="ok",
                 reason="") == 2
    assert delta(before, after, calls, method="tools/call", tool="get_customer",
                 outcome="tool_error", reason="invalid_arguments") == 1
    assert delta(before, after, calls, method="tools/call", tool="lookup_invoices",
                 outcome="refused", reason="tool_not_granted") == 1
    # A name the catalog does not hold never becomes a label value.
    assert delta(before, after, calls, method="tools/call", tool="", outcome="refused",
                 reason="tool_not_found") == 1
    assert not any("no_such_tool" in str(k) for k in after)
    # Refused before its params were read: no tool label.
    assert delta(before, after, calls, method="tools/call", tool="", outcome="refused",
                 reason="token_invalid") == 1
    assert delta(before, after, calls, method="tools/list", tool="", outcome="ok", reason="") == 1
    total = sum(v for (n, _), v in after.items() if n == calls) - \
        sum(v for (n, _), v in before.items() if n == calls)
    assert total == 7

    lat = "airlock_call_duration_seconds"
    assert delta(before, after, lat + "_count", method="tools/call", tool="get_customer") == 3
    assert delta(before, after, lat + "_bucket", method="tools/call", tool="get_customer",
                 le="+Inf") == 3
    assert delta(before, after, lat + "_sum", method="tools/call", tool="get_customer") > 0
    # Buckets are cumulative.
    buckets = sorted((float(dict(k)["le"]), v) for (n, k), v in after.items()
                     if n == lat + "_bucket" and dict(k)["tool"] == "get_customer")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)


def test_dry_runs_plans_replays_and_reverts(start_daemon, world):
    d = start_daemon(*NO_LIMITS)
    tok = world.token(world.a, "add_support_note", extra=("--revert",))
    args = {"customer_id": world.cust[world.a][0], "body": "metrics " + secrets.token_hex(4)}
    before = scrape(d)
    preview = tool(d, tok, "add_support_note", args, dry_run=True).json()["result"]
    plan = preview["structuredContent"]["plan_id"]
    key = "mk-" + secrets.token_hex(6)
    done = tool(d, tok, "add_support_note", args, idempotency_key=key, plan_id=plan).json()
    assert done["result"]["isError"] is False, done
    again = tool(d, tok, "add_support_note", args, idempotency_key=key, plan_id=plan).json()
    assert again["result"]["structuredContent"]["replayed"] is True
    rv = rpc(d, tok, "airlock/calls.revert", {
        "call_id": done["result"]["structuredContent"]["call_id"],
        "idempotency_key": "rv-" + secrets.token_hex(6)}).json()
    assert "result" in rv, rv
    after = scrape(d)
    t = {"tool": "add_support_note"}
    assert delta(before, after, "airlock_dry_runs_total", **t) == 1
    assert delta(before, after, "airlock_plans_made_total", **t) == 1
    assert delta(before, after, "airlock_plans_committed_total", **t) == 1
    assert delta(before, after, "airlock_idempotent_replays_total", **t) == 1
    assert delta(before, after, "airlock_reverts_total") == 1
    assert sum(delta(before, after, n, **dict(k)) for (n, k) in after
               if n == "airlock_calls_total" and dict(k)["method"] == "airlock/calls.revert"
               and dict(k)["outcome"] == "ok") == 1


def test_rate_limit_refusals_by_scope(start_daemon, world):
    d = start_daemon("--rate-token", "1/1", "--rate-tenant", "0/0", "--rate-client", "0/0")
    tok = world.token(world.a, "get_customer")
    before = scrape(d)
    codes = [tool(d, tok, "get_customer", {"customer_id": world.cust[world.a][0]}).status_code
             for _ in range(3)]
    after = scrape(d)
    refused = codes.count(429)
    assert refused >= 1
    assert delta(before, after, "airlock_rate_limited_total", scope="token") == refused
    assert delta(before, after, "airlock_rate_limited_total", scope="client") == 0
    # Refused before its params were read: no tool label.
    assert delta(before, after, "airlock_calls_total", method="tools/call", tool="",
                 outcome="refused", reason="rate_limited") == refused

    c = start_daemon("--rate-client", "0.01/2")
    batch = [{"jsonrpc": "2.0", "id": i, "method": "ping"} for i in range(5)]
    # The first batch takes the whole bucket (a batch larger than the burst costs a full
    # bucket); the second, all or none, is refused, and counted once per call.
    r = requests.post(c.url + "/rpc", data=json.dumps(batch), headers=JSON, timeout=10)
    assert all("result" in x for x in r.json())
    before = scrape(c)
    r = requests.post(c.url + "/rpc", data=json.dumps(batch), headers=JSON, timeout=10)
    assert all(x["error"]["data"]["reason"] == "rate_limited" for x in r.json())
    after = scrape(c)
    assert delta(before, after, "airlock_rate_limited_total", scope="client") == 5


def test_audit_batches(start_daemon, world):
    d = start_daemon(*NO_LIMITS)
    tok = world.token(world.a, "get_customer")
    before = scrape(d)
    for _ in range(5):
        tool(d, tok, "get_customer", {"customer_id": world.cust[world.a][0]})
    after = scrape(d)
    # Each read's record is made durable by the audit writer before its answer: five
    # records in all, in one to five batches.
    assert delta(before, after, "airlock_audit_batch_records_sum") == 5
    n = delta(before, after, "airlock_audit_batch_records_count")
    assert 1 <= n <= 5
    assert delta(before, after, "airlock_audit_flush_seconds_count") == n
    assert delta(before, after, "airlock_audit_flush_seconds_sum") > 0


def test_sandbox_runs_by_limit(start_daemon, world, tmp_path):
    tools = tmp_path / "tools"
    shutil.copytree(ROOT / "tools", tools)
    (tools / "tiny_sh.json").write_text(json.dumps({
        "name": "tiny_sh", "description": "A shell with a small output cap.", "kind": "code",
        "arguments": {"type": "object", "properties": {"code": {"type": "string"}},
                      "required": ["code"], "additionalProperties": False},
        "code": {"interpreter": "sh", "limits": {"time_s": 10, "stdout_max": 64}}}))
    d = start_daemon(*NO_LIMITS, "--tools", str(tools))
    tok = world.token(world.a, "tiny_sh")
    before = scrape(d)
    r = tool(d, tok, "tiny_sh", {"code": "echo hi"}).json()
    assert r["result"]["isError"] is False, r
    r = tool(d, tok, "tiny_sh", {"code": "yes | head -c 100000"}).json()
    assert r["result"]["structuredContent"]["error"]["limit"] == "output", r
    after = scrape(d)
    assert delta(before, after, "airlock_sandbox_runs_total", limit="none") == 1
    assert delta(before, after, "airlock_sandbox_runs_total", limit="output") == 1
    assert delta(before, after, "airlock_calls_total", method="tools/call", tool="tiny_sh",
                 outcome="tool_error", reason="sandbox_limit") == 1
