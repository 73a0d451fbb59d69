"""What every integration test file shares besides the fixtures of conftest.py: a JSON-RPC
client for airlockd (rpc, tool, revert and the readers of their answers), World (tenants of
our own on a cluster, with rows and tokens), and wait_until (a wait on a condition, never a
fixed sleep)."""
import json
import secrets

import requests

import pytest

from conftest import ROOT, Daemon, ctl
from waiting import wait_until  # noqa: F401 (shared: tests import it from here)

JSON = {"Content-Type": "application/json"}
# Every rate limit off, for tests that call faster than the defaults allow.
NO_LIMITS = ("--rate-token", "0/0", "--rate-tenant", "0/0", "--rate-client", "0/0")
# The demo catalog's reads and writes (tools/).
READ_TOOLS = ["lookup_invoices", "get_customer", "search_customers"]
WRITE_TOOLS = ["add_support_note", "update_invoice_status", "refund_invoice",
               "delete_support_note"]


# ---------------------------------------------------------------------------------------
# Requests

def message(method, params=None, rid=1):
    """A JSON-RPC request object (params left out when None)."""
    body = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        body["params"] = params
    return body


def post(d, body, token=None, *, path="/rpc", headers=None, session=None, timeout=30):
    """POSTs body (an object sent as JSON, or str/bytes sent as they are) to d's path with
    the token as Bearer credentials; returns the requests.Response."""
    h = dict(JSON)
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return (session or requests).post(d.url + path, data=data, headers=h, timeout=timeout)


def rpc(d, token, method, params=None, *, rid=1, **kw):
    """One JSON-RPC call; kw as for post (path, headers, session, timeout)."""
    return post(d, message(method, params, rid), token, **kw)


def tool(d, token, name, args=None, *, key=None, path="/rpc", headers=None, session=None,
         timeout=30, **extra):
    """tools/call of name with args; key is the idempotency key; extra are more params
    (dry_run, plan_id, _meta...)."""
    params = {"name": name, "arguments": {} if args is None else args}
    if key is not None:
        params["idempotency_key"] = key
    params.update(extra)
    return rpc(d, token, "tools/call", params, path=path, headers=headers, session=session,
               timeout=timeout)


def revert(d, token, call_id, key=None, **extra):
    """airlock/calls.revert of call_id."""
    params = {"call_id": call_id}
    if key is not None:
        params["idempotency_key"] = key
    params.update(extra)
    return rpc(d, token, "airlock/calls.revert", params)


def result(r):
    """The result of a 200 answer that is not a JSON-RPC error."""
    assert r.status_code == 200, r.text
    body = r.json()
    assert "result" in body, body
    return body["result"]


def ok(r):
    """structuredContent of a CallToolResult that is not a tool error (and whose text
    content is the same JSON)."""
    res = result(r)
    assert res["isError"] is False, res
    sc = res["structuredContent"]
    assert json.loads(res["content"][0]["text"]) == sc
    return sc


def tool_error(r, reason=None):
    """structuredContent of a tool error result ({"error": {...}, ...}); with reason, checks
    the error's reason and that the text content is its message."""
    res = result(r)
    assert res["isError"] is True, res
    sc = res["structuredContent"]
    if reason is not None:
        assert sc["error"]["reason"] == reason, sc
        assert res["content"][0]["text"] == sc["error"]["message"]
    return sc


def err(r):
    """(code, reason) of a JSON-RPC error answer."""
    e = r.json()["error"]
    return e["code"], e["data"]["reason"]


def newkey(tag="k"):
    """A fresh idempotency key."""
    return f"{tag}-{secrets.token_hex(8)}"


def token_id(token):
    """The public id of a token: the first 12 hex digits of its SHA-256."""
    import hashlib
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def metric(d, name, **labels):
    """The value of one sample of d's /metrics (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    sample = f"{name}{{{want}}}" if want else name
    for line in requests.get(d.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0


# ---------------------------------------------------------------------------------------
# Code tools

class Listener:
    """An HTTP server on 127.0.0.1 that answers every GET with its path, counting hits (the
    destination of a code tool's allowed egress)."""

    def __init__(self):
        import http.server
        import threading
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                body = f"hello {self.path}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def code_manifest(name, interpreter, limits, allow=None):
    """The manifest of a code tool taking code and input."""
    code = {"interpreter": interpreter, "limits": limits}
    if allow is not None:
        code["allow"] = allow
    return {"name": name, "description": f"Test tool {name}.", "kind": "code",
            "arguments": {"type": "object",
                          "properties": {"code": {"type": "string"},
                                         "input": {"type": ["object", "array", "string",
                                                            "number", "boolean", "null"]}},
                          "required": ["code"], "additionalProperties": False},
            "code": code}


# ---------------------------------------------------------------------------------------
# The world: tenants and rows of our own

def ids_of(out):
    """psql prints every statement's result: the ids are the lines of digits."""
    return [int(x) for x in out.split("\n") if x.strip().isdigit()]


class World:
    """Tenants of our own on a cluster (random names, so that no two test files ever see
    each other's rows), helpers to add rows to them and read them back, tokens, and
    optionally an admin key.  The tenants are world.a, world.b, world.c (as many as asked);
    a test file that needs a particular set of rows adds them in its world fixture."""

    def __init__(self, cluster, prefix, tenants=2, customers=0, tools=None, admin=False,
                 grant=()):
        self.cluster = cluster
        self.tools = tools or ROOT / "tools"
        self.grant = list(grant)
        self.sfx = secrets.token_hex(3)
        self.tenants = [f"{prefix}{'abcd'[i] if tenants > 1 else ''}{self.sfx}"
                        for i in range(tenants)]
        for t in self.tenants:
            ctl("tenant", "add", t, "--db", cluster.operator_url)
        self.a = self.tenants[0]
        self.b = self.tenants[1] if tenants > 1 else None
        self.c = self.tenants[2] if tenants > 2 else None
        # world.cust[t]: the ids of tenant t's customers, oldest first.
        self.cust = {t: [] for t in self.tenants}
        for t in self.tenants:
            for _ in range(customers):
                self.add_customer(t)
        if admin:
            self.admin_key = f"{cluster.dir}/admin-{prefix}{self.sfx}.key"
            ctl("token", "admin-key", self.admin_key)
            with open(self.admin_key) as f:
                self.admin = f.read().strip()

    # --- SQL

    def sql(self, tenant, sql):
        """Runs sql as the tenant's role (row-level security applies); returns psql's output."""
        return self.cluster.psql(f"SET ROLE tenant_{tenant}; {sql}")

    def one(self, sql):
        """The last line of what sql printed as the operator, or None."""
        out = self.cluster.psql(sql).strip()
        return out.split("\n")[-1] if out else None

    # --- rows

    def add_customer(self, t, email=None, name=None, company=None):
        """A new customer of t, also appended to world.cust[t]; its id."""
        n = secrets.token_hex(4)
        email = email or f"c{n}@{t}.example"
        name = name or f"Customer {n}"
        cols, vals = "email, name", f"'{email}', '{name}'"
        if company is not None:
            cols, vals = cols + ", company", vals + f", '{company}'"
        cid = ids_of(self.sql(t, f"INSERT INTO billing.customers ({cols}) VALUES ({vals}) "
                                 f"RETURNING id"))[0]
        self.cust[t].append(cid)
        return cid

    def add_invoice(self, t, cust=None, status="open", amount="100.10", number=None,
                    issued="now() - interval '1 day'"):
        cust = cust or self.cust[t][0]
        number = number or f"INV-{secrets.token_hex(5)}"
        paid = "now()" if status == "paid" else "NULL"
        return ids_of(self.sql(t, (
            f"INSERT INTO billing.invoices (customer_id, number, status, amount, issued_at, "
            f"paid_at) VALUES ({cust}, '{number}', '{status}', {amount}, {issued}, {paid}) "
            f"RETURNING id")))[0]

    def add_note(self, t, body, cust=None):
        cust = cust or self.cust[t][0]
        return ids_of(self.sql(t, f"INSERT INTO billing.support_notes (customer_id, body) "
                                  f"VALUES ({cust}, '{body}') RETURNING id"))[0]

    def row(self, t, table, rid):
        """A row of billing.<table> as the tenant sees it, as a dict; None if unseen."""
        out = self.sql(t, f"SELECT to_jsonb(x) FROM billing.{table} x WHERE id = {rid}")
        lines = [x for x in out.split("\n") if x.startswith("{")]
        return json.loads(lines[0]) if lines else None

    def status(self, t, inv):
        return self.sql(t, f"SELECT status FROM billing.invoices WHERE id = {inv}").split()[-1]

    def amount(self, t, inv):
        return self.sql(t, f"SELECT amount FROM billing.invoices WHERE id = {inv}").split()[-1]

    def notes(self, t, body):
        """How many notes (soft-deleted ones too) of tenant t have this body."""
        return int(self.sql(t, f"SELECT count(*) FROM billing.support_notes "
                               f"WHERE body = '{body}'").split()[-1])

    # --- the record

    @staticmethod
    def _as_json(columns):
        if not columns:
            return "row_to_json(c)"
        return "json_build_object(" + ", ".join(f"'{x}', {x}" for x in columns) + ")"

    def record(self, call_id, *columns):
        """The call record (airlock.calls) as a dict of its columns (only these columns if
        named); None if absent."""
        out = self.cluster.psql(f"SELECT {self._as_json(columns)} FROM airlock.calls c "
                                f"WHERE id = '{call_id}'")
        return json.loads(out) if out.strip() else None

    def records_of(self, token, *columns):
        """The call records of a token, oldest first, as for record."""
        rows = self.cluster.psql(f"SELECT {self._as_json(columns)} FROM airlock.calls c "
                                 f"WHERE token_id = '{token_id(token)}' ORDER BY at")
        return [json.loads(x) for x in rows.splitlines() if x.strip()]

    def summary(self, call_id):
        """(outcome, reason, idempotency key, plan id, dry_run, method) of a call record as
        psql prints them: '-' for NULL, 't' or 'f'; None if absent."""
        out = self.cluster.psql(
            f"SELECT outcome, coalesce(reason, '-'), coalesce(idempotency_key, '-'), "
            f"coalesce(plan_id::text, '-'), dry_run, method FROM airlock.calls "
            f"WHERE id = '{call_id}'").strip()
        return tuple(out.split("|")) if out else None

    def keyrow(self, t, key):
        """[call_id, 't' once answered] of tenant t's idempotency key; None if absent."""
        out = self.cluster.psql(f"SELECT call_id, response IS NOT NULL FROM "
                                f"airlock.idempotency_keys WHERE tenant = '{t}' AND key = '{key}'")
        return out.strip().split("|") if out.strip() else None

    def digest(self):
        """Every row of every billing table of tenants a and b, as one digest per table and
        tenant (row-level security shows each tenant only its own)."""
        out = {}
        for t in (self.a, self.b):
            for table in ("customers", "invoices", "refunds", "support_notes"):
                out[(t, table)] = self.sql(t, f"SELECT count(*) || ':' || coalesce(md5("
                                              f"string_agg(x::text, ',' ORDER BY id)), '-') "
                                              f"FROM billing.{table} x").split()[-1]
        return out

    def plan(self, plan_id):
        """The plan (airlock.plans) as a dict; None if absent."""
        out = self.cluster.psql(f"SELECT row_to_json(p) FROM airlock.plans p "
                                f"WHERE id = '{plan_id}'")
        return json.loads(out) if out.strip() else None

    def changes(self, call_id):
        """The captured changes of a call: [(table, op, key, before, after)]."""
        out = self.cluster.psql(
            f"SELECT coalesce(json_agg(json_build_array(table_name, op, key, before, after) "
            f"ORDER BY id), '[]') FROM airlock.changes WHERE call_id = '{call_id}'")
        return json.loads(out)

    # --- tokens

    def token(self, tenant, *tools, extra=(), ttl="10m", task=None, catalog=False):
        """A token of tenant for these tools, minted by airlockctl; extra are more mint
        options (--revert, --bind ..., --max-calls N); catalog checks the tools against
        this world's catalog (--tools)."""
        argv = ["token", "mint", "--tenant", tenant, "--ttl", ttl,
                "--db", self.cluster.operator_url]
        if catalog:
            argv += ["--tools", str(self.tools)]
        for t in tools:
            argv += ["--tool", t]
        if task:
            argv += ["--task", task]
        return ctl(*argv, *map(str, extra)).stdout.strip()

    def mint(self, tenant, *extra, tools=None, ttl="10m"):
        """A token of tenant for tools (by default the world's grant), with more mint
        options in extra."""
        return self.token(tenant, *(self.grant if tools is None else tools), extra=extra,
                          ttl=ttl)

    def approver(self, tenant, name="Pat Lead", task=None, ttl="10m"):
        """An approver's token for tenant."""
        argv = ["token", "mint", "--approver", name, "--tenant", tenant, "--ttl", ttl,
                "--db", self.cluster.operator_url]
        if task:
            argv += ["--task", task]
        return ctl(*argv).stdout.strip()


def billing_world(cluster, prefix, grant):
    """Two tenants with two customers each ('c0@<tenant>.example', 'Customer 0 of <tenant>')
    and three invoices of the first customer: <tenant>-1 open (100.10, two days old),
    <tenant>-2 paid (9999999999.99, a day old) and <tenant>-3 soft-deleted; an admin key."""
    w = World(cluster, prefix, tenants=2, admin=True, grant=grant)
    for t in w.tenants:
        for i in range(2):
            w.add_customer(t, email=f"c{i}@{t}.example", name=f"Customer {i} of {t}",
                           company=f"Co {t}")
        c0 = w.cust[t][0]
        w.sql(t, f"INSERT INTO billing.invoices "
                 f"(customer_id, number, status, amount, issued_at, paid_at) VALUES "
                 f"({c0}, '{t}-1', 'open', 100.10, now() - interval '2 days', NULL), "
                 f"({c0}, '{t}-2', 'paid', 9999999999.99, now() - interval '1 day', now()), "
                 f"({c0}, '{t}-3', 'open', 5.00, now(), NULL)")
        w.sql(t, f"UPDATE billing.invoices SET deleted_at = now() WHERE number = '{t}-3'")
    return w


def write_fixtures(prefix):
    """The module fixtures the files of write tests share, as (world, gw, tok): world, three
    tenants of the module's own (named with prefix) with two customers each and an admin key,
    granted the write tools and two reads; gw, airlockd on the demo catalog with that admin
    key and no rate limits; tok, a token of tenant a with every demo tool and the revert
    grant.  A test file says `world, gw, tok = write_fixtures("w")`."""
    @pytest.fixture(scope="module")
    def world(cluster):
        return World(cluster, prefix, tenants=3, customers=2, admin=True,
                     grant=WRITE_TOOLS + READ_TOOLS[:2])

    @pytest.fixture(scope="module")
    def gw(cluster, world):
        d = Daemon(["--db", cluster.gateway_url, "--tools", str(ROOT / "tools"),
                    "--admin-key-file", world.admin_key, *NO_LIMITS])
        yield d
        d.stop()

    @pytest.fixture(scope="module")
    def tok(world):
        return world.mint(world.a, "--revert")

    return world, gw, tok
