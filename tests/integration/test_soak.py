"""Soak: the ASan+UBSan airlockd (build/asan, `make asan`) on a database of its own, for
AIRLOCK_SOAK_SECONDS (30 by default; longer by hand), under many client threads across two
tenants: reads, keyed writes (some retried with their key), dry-runs, reverts, calls.get,
code steps (run_python, a few), and hostile requests: text that is not JSON, bodies over
the cap, bad and missing tokens, the other tenant's ids, unknown tools, batches over the
limit, and slowloris-style requests that stop half-way (each given up after a bounded
wait, or closed by the daemon's connection timeout).

Then, asserted: every answer has the shape expected for its request (anything else is an
unexpected error, listed); every call that got an answer has its record, counted per
token and method against the client's tally, and every call id handed out is a record of
that token's tool; every keyed write had exactly one effect; `airlockctl audit seal` then
`audit verify` find the chain intact; every row a tenant's token was shown is that
tenant's; memory is flat after warm-up (VmRSS sampled every half second: the growth over
the last third is under a bound, see RSS_SLACK); and at SIGTERM the daemon exits 0 with no
sanitizer report (LeakSanitizer checks for leaks at exit).  The figures are printed
(pytest -s) and, with AIRLOCK_SOAK_REPORT=FILE, written there as JSON."""
import collections
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from conftest import ROOT, ctl, free_port, own_cluster
from world import World, ids_of, rpc, wait_until

ASAN_AIRLOCKD = ROOT / os.environ.get("AIRLOCK_ASAN_BUILD", "build/asan") / "airlockd"
SECONDS = float(os.environ.get("AIRLOCK_SOAK_SECONDS", "30"))
THREADS = int(os.environ.get("AIRLOCK_SOAK_THREADS", "8"))
CODE_STEPS_MAX = 6           # run_python calls in the whole run: a few, they cost ~100 ms each
MAX_BODY = 256 * 1024
MAX_BATCH = 16
CONN_TIMEOUT = 3
# ASan keeps freed blocks in a quarantine (256 MiB by default) before reusing them, so RSS
# climbs until the quarantine is full whatever the gateway does; it is made small here so
# that it fills during the warm-up.  What may remain over the last third: the quarantine's
# churn and the allocator's per-thread caches and arenas (a few MiB), plus the slack below.
QUARANTINE_MB = 8
RSS_SLACK_KB = 24 * 1024
JSON = {"Content-Type": "application/json"}
SANITIZER_REPORT = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                    "SUMMARY: ")


# --- the world: two tenants, their rows, their tokens ------------------------------------

def soak_tenants(cluster):
    """Two tenants of our own with four customers each and three invoices per customer, and
    an admin key."""
    world = World(cluster, "s", tenants=2, admin=True)
    world.inv = {}
    for t in world.tenants:
        world.sql(t, f"INSERT INTO billing.customers (email, name) SELECT 'c' || g || "
                     f"'@{t}.example', 'Customer ' || g FROM generate_series(1, 4) g")
        world.cust[t] = ids_of(world.sql(t, "SELECT id FROM billing.customers ORDER BY id"))
        out = world.sql(t, f"INSERT INTO billing.invoices (customer_id, number, status, amount, "
                           f"issued_at) SELECT c, '{t}-' || c || '-' || g, 'open', 10.5 * g, "
                           f"now() - g * interval '1 day' FROM unnest(ARRAY{world.cust[t]}) c, "
                           f"generate_series(1, 3) g RETURNING id")
        world.inv[t] = ids_of(out)
    return world


def other(world, t):
    """The other tenant."""
    return world.tenants[1 - world.tenants.index(t)]


def mint(world, tenant, task):
    """A token of tenant for the soak's tools, with the revert grant."""
    return world.token(tenant, "lookup_invoices", "get_customer", "add_support_note",
                       "run_python", extra=("--revert",), ttl="60m", task=task)


class Daemon:
    """The ASan airlockd; its stderr in a file."""

    def __init__(self, cluster, world, workdir):
        self.log = os.path.join(workdir, "airlockd.log")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, ASAN_OPTIONS=f"detect_leaks=1:quarantine_size_mb={QUARANTINE_MB}",
                   UBSAN_OPTIONS="print_stacktrace=1")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(ASAN_AIRLOCKD), "--listen", f"127.0.0.1:{self.port}",
                 "--db", cluster.gateway_url, "--tools", str(ROOT / "tools"),
                 "--admin-key-file", world.admin_key, "--rate-token", "0/0",
                 "--rate-tenant", "0/0", "--rate-client", "0/0",
                 "--max-body", str(MAX_BODY), "--max-batch", str(MAX_BATCH),
                 "--conn-timeout", str(CONN_TIMEOUT), "--max-conns-per-client", "512",
                 "--max-conns", "1024"], stdout=log, stderr=subprocess.STDOUT, env=env)
        def ready():
            assert self.proc.poll() is None, f"airlockd exited:\n{self.logtext()}"
            try:
                return requests.get(self.url + "/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_until(ready, timeout=30, every=0.1, what="the ASan airlockd ready")

    def logtext(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


# --- the client ---------------------------------------------------------------------------

class Tally:
    """What the clients saw, shared by every thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes = collections.Counter()      # (kind, outcome)
        self.unexpected = []                        # (kind, what was seen)
        self.recorded = collections.Counter()       # (task, method): answers that leave a record
        self.call_ids = {}                          # call id -> (task, tool)
        self.keyed = {}                             # note body -> tenant
        self.foreign_rows = []                      # rows shown to the wrong tenant
        self.code_steps = 0

    def seen(self, kind, outcome):
        with self.lock:
            self.outcomes[(kind, outcome)] += 1

    def wrong(self, kind, what):
        with self.lock:
            self.outcomes[(kind, "UNEXPECTED")] += 1
            if len(self.unexpected) < 50:
                self.unexpected.append((kind, str(what)[:800]))

    def record(self, task, method, n=1):
        with self.lock:
            self.recorded[(task, method)] += n


class Client(threading.Thread):
    def __init__(self, n, world, d, tally, deadline, peers):
        super().__init__(daemon=True)
        self.w, self.d, self.tally, self.deadline = world, d, tally, deadline
        self.tenant = world.tenants[n % 2]
        self.task = f"soak-{n}-{secrets.token_hex(3)}"
        self.token = mint(world, self.tenant, self.task)
        self.rng = random.Random(n)
        self.http = requests.Session()
        self.writes = []            # call ids of my committed writes, not yet reverted
        self.peers = peers          # tenant -> call ids handed out to that tenant
        self.failure = None

    # Requests --------------------------------------------------------------------------

    def post(self, body, token=None, headers=None, raw=None):
        h = dict(JSON)
        token = self.token if token is None else token
        if token:
            h["Authorization"] = f"Bearer {token}"
        h.update(headers or {})
        data = raw if raw is not None else json.dumps(body)
        return self.http.post(self.d.url + "/rpc", data=data, headers=h, timeout=60)

    def call(self, method, params, **kw):
        return self.post({"jsonrpc": "2.0", "id": self.rng.randrange(1 << 30), "method": method,
                          "params": params}, **kw)

    def tool(self, name, args, token=None, **extra):
        return self.call("tools/call", {"name": name, "arguments": args, **extra}, token=token)

    # Shapes ----------------------------------------------------------------------------

    def result(self, kind, r):
        """structuredContent of a successful tool result, else None (counted unexpected)."""
        try:
            body = r.json()
            res = body["result"]
            assert r.status_code == 200 and res["isError"] is False
            sc = res["structuredContent"]
            assert json.loads(res["content"][0]["text"]) == sc
            return sc
        except (ValueError, KeyError, TypeError, AssertionError, IndexError):
            self.tally.wrong(kind, f"{r.status_code} {r.text}")
            return None

    def error(self, kind, r, status, code, reason, about=""):
        try:
            e = r.json()["error"]
            assert r.status_code == status and e["code"] == code and \
                e["data"]["reason"] == reason
            self.tally.seen(kind, reason)
            return True
        except (ValueError, KeyError, TypeError, AssertionError):
            self.tally.wrong(kind, f"{about}{r.status_code} {r.text}")
            return False

    def own_rows(self, kind, rows, ids, field="id"):
        for row in rows:
            if int(row[field]) not in ids:
                with self.tally.lock:
                    self.tally.foreign_rows.append((self.tenant, kind, row))

    def handed_out(self, sc, tool):
        with self.tally.lock:
            self.tally.call_ids[sc["call_id"]] = (self.task, tool)
            self.peers[self.tenant].append(sc["call_id"])

    # The mix ---------------------------------------------------------------------------

    def read(self):
        cust = self.rng.choice(self.w.cust[self.tenant])
        if self.rng.random() < 0.5:
            sc = self.result("read", self.tool("lookup_invoices", {"customer_id": cust}))
            self.tally.record(self.task, "tools/call")
            if sc is not None and sc["row_count"] != 3:
                self.tally.wrong("read", sc)
            elif sc is not None:
                self.own_rows("read", sc["rows"], set(self.w.inv[self.tenant]))
                self.handed_out(sc, "lookup_invoices")
                self.tally.seen("read", "ok")
        else:
            sc = self.result("read", self.tool("get_customer", {"customer_id": cust}))
            self.tally.record(self.task, "tools/call")
            if sc is not None:
                self.own_rows("read", sc["rows"], set(self.w.cust[self.tenant]))
                self.handed_out(sc, "get_customer")
                self.tally.seen("read", "ok")

    def foreign_read(self):
        """The other tenant's customer: no row, not an error."""
        cust = self.rng.choice(self.w.cust[other(self.w, self.tenant)])
        sc = self.result("foreign_read", self.tool("lookup_invoices", {"customer_id": cust}))
        self.tally.record(self.task, "tools/call")
        if sc is not None:
            self.own_rows("foreign_read", sc["rows"], set(self.w.inv[self.tenant]))
            if sc["row_count"] != 0:
                self.tally.wrong("foreign_read", sc)
            else:
                self.handed_out(sc, "lookup_invoices")
                self.tally.seen("foreign_read", "no_rows")

    def write(self):
        body = f"soak {secrets.token_hex(8)}"
        key = f"k-{secrets.token_hex(8)}"
        args = {"customer_id": self.rng.choice(self.w.cust[self.tenant]), "body": body}
        sc = self.result("write", self.tool("add_support_note", args, idempotency_key=key))
        self.tally.record(self.task, "tools/call")
        if sc is None:
            return
        with self.tally.lock:
            self.tally.keyed[body] = self.tenant
        self.own_rows("write", sc["rows"], set(self.w.cust[self.tenant]), "customer_id")
        self.handed_out(sc, "add_support_note")
        self.writes.append(sc["call_id"])
        self.tally.seen("write", "ok")
        if self.rng.random() < 0.3:
            again = self.result("retry", self.tool("add_support_note", args,
                                                   idempotency_key=key))
            self.tally.record(self.task, "tools/call")
            if again is not None:
                if again["replayed"] is not True or again["call_id"] != sc["call_id"]:
                    self.tally.wrong("retry", again)
                else:
                    self.tally.seen("retry", "replayed")

    def dry_run(self):
        args = {"customer_id": self.rng.choice(self.w.cust[self.tenant]),
                "body": f"preview {secrets.token_hex(8)}"}
        sc = self.result("dry_run", self.tool("add_support_note", args, dry_run=True))
        self.tally.record(self.task, "tools/call")
        if sc is not None:
            if sc["dry_run"] is not True:
                self.tally.wrong("dry_run", sc)
            else:
                self.handed_out(sc, "add_support_note")
                self.tally.seen("dry_run", "ok")

    def revert(self):
        if not self.writes:
            return self.write()
        target = self.writes.pop(self.rng.randrange(len(self.writes)))
        sc = self.result("revert", self.call("airlock/calls.revert", {
            "call_id": target, "idempotency_key": f"rv-{secrets.token_hex(8)}"}))
        self.tally.record(self.task, "airlock/calls.revert")
        if sc is not None:
            self.handed_out(sc, "airlock/calls.revert")
            self.tally.seen("revert", "ok")

    def calls_get(self):
        mine = self.peers[self.tenant]
        theirs = self.peers[other(self.w, self.tenant)]
        if theirs and self.rng.random() < 0.5:
            # The other tenant's call id: as if there were none.
            cid = self.rng.choice(theirs)
            r = self.call("airlock/calls.get", {"call_id": cid})
            self.tally.record(self.task, "airlock/calls.get")
            self.error("foreign_call", r, 200, -32602, "call_not_found",
                       f"{cid} of {self.tally.call_ids.get(cid)}: ")
        elif mine:
            # One of my tenant's calls, possibly another task's: this token's task only.
            cid = self.rng.choice(mine)
            r = self.call("airlock/calls.get", {"call_id": cid})
            self.tally.record(self.task, "airlock/calls.get")
            with self.tally.lock:
                owner = self.tally.call_ids.get(cid, (None,))[0]
            if owner == self.task:
                try:
                    assert r.json()["result"]["call"]["call_id"] == cid
                    self.tally.seen("calls_get", "ok")
                except (ValueError, KeyError, TypeError, AssertionError):
                    self.tally.wrong("calls_get", r.text)
            else:
                self.error("calls_get_other_task", r, 200, -32602, "call_not_found",
                           f"{cid} of {self.tally.call_ids.get(cid)}: ")

    def code_step(self):
        with self.tally.lock:
            is_over = self.tally.code_steps >= CODE_STEPS_MAX
            self.tally.code_steps += not is_over
        if is_over:
            return self.read()
        n = self.rng.randrange(100)
        r = self.tool("run_python", {
            "code": "import json, sys\nprint(json.dumps(sum(json.load(sys.stdin))))",
            "input": list(range(n))})
        self.tally.record(self.task, "tools/call")
        # Two programs of a tenant at once is the default cap: a third, from another of its
        # threads, is refused as the contract says (429 concurrency_limited, with a retry).
        if r.status_code == 429:
            if self.error("code", r, 429, 429, "concurrency_limited"):
                assert r.json()["error"]["data"]["retryAfterSeconds"] >= 1
            return
        sc = self.result("code", r)
        if sc is not None:
            if json.dumps(sc).find(str(sum(range(n)))) < 0:
                self.tally.wrong("code", sc)
            else:
                self.handed_out(sc, "run_python")
                self.tally.seen("code", "ok")

    # Hostile --------------------------------------------------------------------------

    def bad_json(self):
        r = self.post(None, raw='{"jsonrpc": "2.0", "id": 1, "method": ')
        self.error("bad_json", r, 200, -32700, "parse_error")

    def huge_body(self):
        try:
            r = self.post(None, raw="[" + "1," * (MAX_BODY // 2) + "1]")
        except requests.ConnectionError:
            # The daemon answers 413 and closes while the body is still going out: a client
            # may see the reset first.
            self.tally.seen("huge_body", "closed")
            self.http = requests.Session()
            return
        if r.status_code == 413:
            self.tally.seen("huge_body", "413")
        else:
            self.tally.wrong("huge_body", f"{r.status_code} {r.text[:200]}")
        self.http = requests.Session()      # the daemon closed that connection

    def bad_token(self):
        token = self.rng.choice(["alk_" + secrets.token_urlsafe(32)[:43], "nonsense", ""])
        r = self.tool("get_customer", {"customer_id": 1}, token=token)
        if token == "":
            self.error("no_token", r, 401, 401, "token_missing")
        else:
            self.error("bad_token", r, 401, 401, "token_invalid")

    def unknown_tool(self):
        r = self.tool("drop_all_tables", {})
        self.tally.record(self.task, "tools/call")
        self.error("unknown_tool", r, 200, -32602, "tool_not_found")

    def big_batch(self):
        batch = [{"jsonrpc": "2.0", "id": i, "method": "ping"} for i in range(MAX_BATCH + 1)]
        r = self.post(batch)
        self.error("big_batch", r, 200, -32600, "invalid_request")

    def slowloris(self):
        """Half a request, then silence: given up after a bounded wait (or closed by the
        daemon's connection timeout, whichever comes first)."""
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        try:
            s.sendall(b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{\"jsonrpc\"")
            s.settimeout(self.rng.uniform(0.5, CONN_TIMEOUT + 2))
            try:
                data = s.recv(4096)
                self.tally.seen("slowloris", "closed_by_daemon" if not data else "answered")
            except socket.timeout:
                self.tally.seen("slowloris", "given_up")
        finally:
            s.close()
        # This thread's kept-alive connection idled past the daemon's connection timeout
        # meanwhile, and was closed: a new one for the next request.
        self.http.close()
        self.http = requests.Session()

    MIX = [(read, 36), (foreign_read, 5), (write, 14), (dry_run, 8), (revert, 5),
           (calls_get, 6), (code_step, 1), (bad_json, 4), (huge_body, 1), (bad_token, 5),
           (unknown_tool, 4), (big_batch, 3), (slowloris, 1)]

    def run(self):
        ops = [op for op, _ in self.MIX]
        weights = [w for _, w in self.MIX]
        try:
            while time.monotonic() < self.deadline:
                self.rng.choices(ops, weights)[0](self)
        except Exception as e:      # the thread's own failure (a timeout, a reset)
            self.failure = repr(e)


# --- the test -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def soak_world():
    if not ASAN_AIRLOCKD.exists():
        pytest.fail(f"{ASAN_AIRLOCKD} is missing: build it with `make asan` (make check "
                    f"and make integration do)")
    workdir = tempfile.mkdtemp(prefix="alk-soak-")
    # A database of its own: the audit chain verified at the end is this test's alone.
    with own_cluster(prefix="alk-soak-db-") as cluster:
        world = soak_tenants(cluster)
        d = Daemon(cluster, world, workdir)
        yield cluster, world, d
        d.stop()


def test_calls_get_of_a_previewed_insert(soak_world):
    """Found by the soak: a dry-run of an insert records its preview with a before-image
    that is JSON null, and airlock/calls.get of that call answered 503 (the image's
    conversion failed on it) instead of the record."""
    cluster, world, d = soak_world
    task = f"preview-{secrets.token_hex(3)}"
    token = mint(world, world.a, task)

    def call(method, params):
        return rpc(d, token, method, params, timeout=60)

    args = {"customer_id": world.cust[world.a][0], "body": f"preview {secrets.token_hex(4)}"}
    r = call("tools/call", {"name": "add_support_note", "arguments": args, "dry_run": True})
    cid = r.json()["result"]["structuredContent"]["call_id"]
    r = call("airlock/calls.get", {"call_id": cid})
    assert r.status_code == 200, r.text
    got = r.json()["result"]
    assert got["call"]["call_id"] == cid and got["call"]["dry_run"] is True
    [change] = got["changes"]
    assert change["action"] == "create" and change["before"] is None
    assert change["after"]["body"] == args["body"]


def test_soak(soak_world):
    cluster, world, d = soak_world
    tally = Tally()
    peers = {t: [] for t in world.tenants}
    start = time.monotonic()
    deadline = start + SECONDS
    clients = [Client(n, world, d, tally, deadline, peers) for n in range(THREADS)]
    rss = [(0.0, d.rss_kb())]
    for c in clients:
        c.start()
    while any(c.is_alive() for c in clients):
        time.sleep(0.5)        # the period of the RSS samples
        assert d.proc.poll() is None, f"airlockd died:\n{d.logtext()[-8000:]}"
        rss.append((time.monotonic() - start, d.rss_kb()))
    elapsed = time.monotonic() - start
    failures = [c.failure for c in clients if c.failure]
    assert not failures, failures

    # Memory: flat after warm-up.
    third = [kb for t, kb in rss if t >= SECONDS * 2 / 3]
    growth = third[-1] - third[0]
    # Every answer had its expected shape.
    total = sum(tally.outcomes.values())
    by_kind = collections.Counter()
    for (kind, outcome), n in tally.outcomes.items():
        by_kind[f"{kind}:{outcome}"] += n
    figures = {"seconds": round(elapsed, 1), "threads": THREADS, "requests": total,
               "per_second": round(total / elapsed, 1), "outcomes": dict(sorted(by_kind.items())),
               "rss_kb": {"start": rss[0][1], "after_warmup": third[0], "end": rss[-1][1],
                          "max": max(kb for _, kb in rss)},
               "last_third_growth_kb": growth, "code_steps": tally.code_steps}
    print("\nsoak figures:", json.dumps(figures, indent=1))
    if os.environ.get("AIRLOCK_SOAK_REPORT"):
        with open(os.environ["AIRLOCK_SOAK_REPORT"], "w") as f:
            json.dump(figures, f, indent=1)
    assert not tally.unexpected, "\n".join(f"{k}: {w}" for k, w in tally.unexpected)
    assert not tally.foreign_rows, tally.foreign_rows[:10]
    assert total > 0 and tally.outcomes[("write", "ok")] > 0

    # Every answered call has its record: per token (task) and method...
    tasks = [c.task for c in clients]
    rows = cluster.psql(
        "SELECT task, method, count(*) FROM airlock.calls WHERE task = ANY(ARRAY["
        + ",".join(f"'{t}'" for t in tasks) + "]) GROUP BY task, method")
    in_db = collections.Counter()
    for line in rows.splitlines():
        task, method, n = line.split("|")
        in_db[(task, method)] = int(n)
    assert in_db == tally.recorded, (in_db, tally.recorded)
    # ... and every call id handed out is a record of that task and tool.
    ids = list(tally.call_ids)
    got = {}
    for i in range(0, len(ids), 2000):
        chunk = ",".join(f"'{x}'" for x in ids[i:i + 2000])
        for line in cluster.psql(f"SELECT id, task, coalesce(tool, method) FROM airlock.calls"
                                 f" WHERE id IN ({chunk})").splitlines():
            cid, task, tool = line.split("|")
            got[cid] = (task, tool)
    missing = [(cid, want) for cid, want in tally.call_ids.items() if got.get(cid) != want]
    assert not missing, missing[:10]
    # Every keyed write had one effect (reverted ones are soft-deleted, still one row).
    for t in world.tenants:
        bodies = [b for b, tenant in tally.keyed.items() if tenant == t]
        if not bodies:
            continue
        counts = cluster.psql(
            f"SET ROLE tenant_{t}; SELECT count(*) FILTER (WHERE n <> 1), count(*) FROM "
            f"(SELECT body, count(*) n FROM billing.support_notes WHERE body LIKE 'soak %' "
            f"GROUP BY body) x").splitlines()[-1]
        bad, n = map(int, counts.split("|"))
        assert bad == 0 and n == len(bodies), (t, counts, len(bodies))
        # No preview left a row.
        assert cluster.psql(f"SET ROLE tenant_{t}; SELECT count(*) FROM billing.support_notes"
                            f" WHERE body LIKE 'preview %'").splitlines()[-1] == "0"

    # The audit chain: sealed, then verified intact.
    ctl("audit", "seal", "--db", cluster.operator_url)
    v = ctl("audit", "verify", "--db", cluster.operator_url, check=False)
    assert v.returncode == 0, v.stdout + v.stderr
    # Memory, then a clean stop: exit 0, no sanitizer report (no leak at exit).
    assert growth < RSS_SLACK_KB, figures
    rc = d.stop()
    log = d.logtext()
    reports = [line for line in log.splitlines() if any(s in line for s in SANITIZER_REPORT)]
    assert rc == 0 and not reports, f"exit {rc}:\n" + log[-8000:]

