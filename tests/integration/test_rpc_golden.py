"""The protocol's golden files: each case under tests/rpc/<case>/ is one HTTP request to
airlockd whose answer must be exactly the case's expected.json, once the few values that
vary from run to run are masked.  One airlockd, on a database of its own seeded with fixed
rows, answers every case.  The layout of a case and the masking rule: tests/rpc/README.md.

AIRLOCK_GOLDEN_WRITE=1 writes each case's expected.json from the answer instead of
comparing (for a new case, or a change of the protocol; review the diff)."""
import json
import os
import re

import pytest
import requests

from conftest import ROOT, Daemon, ctl, own_cluster
from world import NO_LIMITS

CASES = ROOT / "tests" / "rpc"
TENANT = "golden"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")
# Keys whose values vary from run to run whatever they look like.
VARYING = {"token_id": "<token_id>", "token": "<token>", "duration_ms": "<ms>",
           "wall_ms": "<ms>", "cpu_ms": "<ms>"}


def mask(value):
    """value with every UUID, timestamp and VARYING key's value replaced by a marker, and
    a text content that is JSON parsed and masked the same way."""
    if isinstance(value, dict):
        if value.get("type") == "text" and isinstance(value.get("text"), str):
            try:        # a text content that is JSON (the structuredContent again)
                return {**value, "text": mask(json.loads(value["text"]))}
            except ValueError:
                pass
        return {k: VARYING[k] if k in VARYING and value[k] is not None else mask(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    if isinstance(value, str):
        if UUID.match(value):
            return "<uuid>"
        if TIME.match(value):
            return "<time>"
    return value


@pytest.fixture(scope="module")
def golden():
    """An airlockd on a fresh database with tenant `golden`: customers 1 and 2, invoices 1
    (open) and 2 (paid) of customer 1, at fixed times; the substitutions for headers."""
    with own_cluster(prefix="alk-rpc-") as c:
        db = ("--db", c.operator_url)
        ctl("tenant", "add", TENANT, *db)
        c.psql(f"SET ROLE tenant_{TENANT}; "
               "INSERT INTO billing.customers (email, name, company) VALUES "
               "('ada@golden.example', 'Ada', 'Golden Co'), ('bob@golden.example', 'Bob', NULL); "
               "INSERT INTO billing.invoices (customer_id, number, status, amount, issued_at, "
               "paid_at) VALUES (1, 'G-1', 'open', 100.10, '2026-01-02 03:04:05+00', NULL), "
               "(1, 'G-2', 'paid', 20.00, '2026-01-01 00:00:00+00', '2026-01-03 00:00:00+00')")
        key = os.path.join(c.dir, "admin.key")
        ctl("token", "admin-key", key)

        def mint(task, *tools):
            argv = ["token", "mint", "--tenant", TENANT, "--ttl", "10m", "--task", task, *db]
            for t in tools:
                argv += ["--tool", t]
            return ctl(*argv).stdout.strip()

        subst = {"TOKEN": mint("golden-agent", "lookup_invoices", "get_customer", "update_invoice_status",
                               "add_support_note"),
                 "READER": mint("golden-reader", "get_customer"),
                 "ADMIN": open(key).read().strip()}
        d = Daemon(["--db", c.gateway_url, "--tools", str(ROOT / "tools"),
                    "--admin-key-file", key, *NO_LIMITS])
        yield d, subst
        d.stop()


def substitute(text, subst):
    return re.sub(r"\$\{(\w+)\}", lambda m: subst[m.group(1)], text)


def send(d, subst, headers, body):
    """POSTs body (text) with headers (":path" names the path, /rpc by default)."""
    h = {k: substitute(v, subst) for k, v in headers.items() if not k.startswith(":")}
    h.setdefault("Content-Type", "application/json")
    return requests.post(d.url + headers.get(":path", "/rpc"), data=body.encode(), headers=h,
                         timeout=30)


def answer(r, header_names):
    """The answer as a golden file holds it: status, the named headers, the masked body."""
    try:
        body = mask(r.json()) if r.content else None
    except ValueError:
        body = r.text
    return {"status": r.status_code,
            "headers": {k: r.headers.get(k) for k in header_names},
            "body": body}


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_golden(golden, case):
    d, subst = golden
    where = CASES / case
    headers = json.loads((where / "headers.json").read_text()) \
        if (where / "headers.json").exists() else {}
    for step in json.loads((where / "setup.json").read_text()) \
            if (where / "setup.json").exists() else []:
        r = send(d, subst, step.get("headers", headers), json.dumps(step["body"]))
        assert r.status_code < 500, r.text
    r = send(d, subst, headers, (where / "request.json").read_text())
    path = where / "expected.json"
    if os.environ.get("AIRLOCK_GOLDEN_WRITE"):
        names = json.loads(path.read_text())["headers"] if path.exists() else ["Content-Type"]
        path.write_text(json.dumps(answer(r, names), indent=2, ensure_ascii=False) + "\n")
    expected = json.loads(path.read_text())
    assert answer(r, expected["headers"]) == expected
