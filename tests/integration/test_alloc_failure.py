"""Allocation failure: the chaos build of airlockd (make chaos: ASan, every allocation of the
gateway's own code and of jansson counted by tests/chaos/alloc.c) has its Nth allocation
fail while it serves one request of each kind: a read, a keyed write, tools/list, a refused
call, a batch, /metrics and /readyz.

One daemon serves every probe.  For each kind, the request's allocations are counted first
(the least of a few runs, after a warm-up), then N walks 1..count (every STRIDE-th, with a
random offset, to bound the time; AIRLOCK_ALLOC_STRIDE=1 walks every one, from
AIRLOCK_ALLOC_FROM if set; AIRLOCK_CHAOS_TRACE=1 logs each failed allocation's stack) and
for each N:
the answer is the normal one (a failure the code recovered from), -32603 internal or 503;
and the next request of that kind, with nothing failing, gets its normal answer.  A keyed
write's retry with its key has exactly one effect.  At SIGTERM the daemon exits 0 and its
stderr holds no sanitizer report: no crash, no leak (LeakSanitizer runs at exit).

What is not failed: allocations inside libpq and libmicrohttpd (shared libraries, which
--wrap does not reach) and libc's internal ones."""
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import ROOT, free_port
from world import NO_LIMITS, World, message, post, wait_until

CHAOS = ROOT / os.environ.get("AIRLOCK_CHAOS_BUILD", "build/chaos") / "airlockd"
STRIDE = int(os.environ.get("AIRLOCK_ALLOC_STRIDE", "0"))   # 0: chosen per kind
PROBES_PER_KIND = int(os.environ.get("AIRLOCK_ALLOC_PROBES", "40"))
SANITIZER_REPORT = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                    "SUMMARY: ")


class Chaos:
    """The chaos airlockd and its control socket."""

    def __init__(self, args, workdir):
        if not CHAOS.exists():
            pytest.fail(f"{CHAOS} is missing: build it with `make chaos` (make integration "
                        f"and make check do)")
        self.sock = os.path.join(workdir, "chaos.sock")
        self.log = os.path.join(workdir, "airlockd.log")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, AIRLOCK_CHAOS_SOCKET=self.sock,
                   ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
                   UBSAN_OPTIONS="print_stacktrace=1")
        if os.environ.get("AIRLOCK_CHAOS_TRACE"):
            env["AIRLOCK_CHAOS_TRACE"] = "1"     # each failed allocation's stack in the log
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(CHAOS), "--listen", f"127.0.0.1:{self.port}",
                                          *args], stdout=log, stderr=subprocess.STDOUT, env=env)
        def ready():
            assert self.proc.poll() is None, f"chaos airlockd exited:\n{self.logtext()}"
            try:
                return requests.get(self.url + "/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_until(ready, timeout=30, every=0.1, what="the chaos airlockd ready")

    def logtext(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def control(self, line):
        self.alive(f"before {line!r}")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.sock)
            s.sendall(line.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = s.recv(128)
                assert chunk, "the chaos control socket closed"
                answer += chunk
        answer = answer.decode().strip()
        assert not answer.startswith("error"), answer
        return answer

    def stat(self):
        _, count, _, failed, _, spared = self.control("stat").split()
        return int(count), int(failed), int(spared)

    def alive(self, why):
        assert self.proc.poll() is None, (f"airlockd died ({self.proc.returncode}) {why}:\n"
                                          f"{self.logtext()[-6000:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


# --- What an answer may be --------------------------------------------------------------

def rpc_outcome(obj, is_normal):
    """'normal', 'internal' or 'unavailable' for one JSON-RPC response object; anything else
    is an AssertionError naming it."""
    if "error" in obj:
        e = obj["error"]
        if e["code"] == -32603 and e["data"]["reason"] == "internal":
            return "internal"
        if e["code"] == 503 and e["data"]["reason"] == "backend_unavailable":
            assert isinstance(e["data"].get("retryAfterSeconds"), int), obj
            return "unavailable"
    assert is_normal(obj), f"neither the normal answer, -32603 nor 503: {obj}"
    return "normal"


def single_outcome(r, is_normal):
    assert r.headers.get("Content-Type", "").startswith("application/json"), \
        (r.status_code, r.text)
    body = r.json()
    outcome = rpc_outcome(body, is_normal)
    expected = {"normal": None, "internal": 200, "unavailable": 503}[outcome]
    if expected is not None:
        assert r.status_code == expected, (r.status_code, body)
    return outcome


def tool_ok(obj):
    res = obj.get("result")
    return (res is not None and res["isError"] is False and
            json.loads(res["content"][0]["text"]) == res["structuredContent"])


# --- The kinds of request ---------------------------------------------------------------

class Kinds:
    """Each kind: send() -> (outcome, context); check_normal(context) sends the next request
    of that kind with nothing failing and asserts its normal answer."""

    def __init__(self, d, world):
        self.d, self.w = d, world
        self.tok_a = world.token(world.a, "lookup_invoices", "get_customer", "add_support_note",
                                 ttl="30m")

    # A read: lookup_invoices of one of the tenant's customers, two rows.
    def read(self):
        r = post(self.d, token=self.tok_a, body=message("tools/call", {
            "name": "lookup_invoices", "arguments": {"customer_id": self.w.cust[self.w.a][0]}}))
        return single_outcome(r, lambda o: tool_ok(o) and
                              o["result"]["structuredContent"]["row_count"] == 2), None

    # A keyed write: a note with a body and key of its own.
    def write(self):
        key, body = f"k-{secrets.token_hex(8)}", f"chaos {secrets.token_hex(6)}"
        args = {"customer_id": self.w.cust[self.w.a][0], "body": body}
        r = post(self.d, token=self.tok_a, body=message("tools/call", {
            "name": "add_support_note", "arguments": args, "idempotency_key": key}))
        return single_outcome(r, lambda o: tool_ok(o) and
                              o["result"]["structuredContent"]["rows"][0]["body"] == body), \
            (key, args)

    def write_again(self, ctx):
        """The same write retried with its key: one effect, whatever the first try did."""
        key, args = ctx
        r = post(self.d, token=self.tok_a, body=message("tools/call", {
            "name": "add_support_note", "arguments": args, "idempotency_key": key}))
        assert r.status_code == 200 and tool_ok(r.json()), r.text
        assert self.w.notes(self.w.a, args["body"]) == 1

    def tools_list(self):
        r = post(self.d, token=self.tok_a, body=message("tools/list"))
        return single_outcome(r, lambda o: sorted(t["name"] for t in o["result"]["tools"]) ==
                              ["add_support_note", "get_customer", "lookup_invoices"]), None

    # A refused call: a tool the token does not grant.
    def refused(self):
        r = post(self.d, token=self.tok_a, body=message("tools/call", {
            "name": "refund_invoice", "arguments": {"invoice_id": self.w.inv[self.w.a][0]}}))
        return single_outcome(r, lambda o: "error" in o and o["error"]["code"] == 403 and
                              o["error"]["data"]["reason"] == "tool_not_granted"), None

    # A batch: a read, tools/list, ping, a notification and an unknown method.
    def batch(self):
        cust = self.w.cust[self.w.a][1]
        body = [message("tools/call", {"name": "get_customer", "arguments": {"customer_id": cust}},
                     rid=1),
                message("tools/list", rid=2), message("ping", rid=3),
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                message("no/such", rid=5)]
        r = post(self.d, token=self.tok_a, body=body)
        assert r.status_code == 200, r.text
        answers = r.json()
        if isinstance(answers, dict):
            # The whole batch failed as one: an error object for it all.
            return rpc_outcome(answers, lambda o: False), None
        normal = {1: lambda o: tool_ok(o) and
                  o["result"]["structuredContent"]["rows"][0]["id"] == str(cust),
                  2: lambda o: len(o["result"]["tools"]) == 3,
                  3: lambda o: o.get("result") == {},
                  5: lambda o: o["error"]["code"] == -32601}
        assert sorted(a["id"] for a in answers) == [1, 2, 3, 5], answers
        outcomes = {rpc_outcome(a, normal[a["id"]]) for a in answers}
        return ("normal" if outcomes == {"normal"} else
                "internal" if "internal" in outcomes else "unavailable"), None

    def metrics(self):
        r = requests.get(self.d.url + "/metrics", timeout=30)
        if r.status_code == 200:
            assert "airlock_" in r.text, r.text[:500]
            return "normal", None
        assert r.status_code in (500, 503), (r.status_code, r.text)
        return "unavailable", None

    def readyz(self):
        r = requests.get(self.d.url + "/readyz", timeout=30)
        if r.status_code == 200:
            assert r.json() == {"status": "ready"}
            return "normal", None
        assert r.status_code in (500, 503), (r.status_code, r.text)
        return "unavailable", None


KINDS = os.environ.get("AIRLOCK_ALLOC_KINDS",
                       "read write tools_list refused batch metrics readyz").split()


@pytest.fixture(scope="module")
def chaos(cluster):
    workdir = tempfile.mkdtemp(prefix="alk-chaos-")
    world = World(cluster, "o", tenants=2, admin=True)
    world.inv = {}
    for t in world.tenants:
        c0 = world.add_customer(t, email=f"a@{t}.example", name="Ada")
        world.add_customer(t, email=f"b@{t}.example", name="Bob")
        world.inv[t] = [world.add_invoice(t, c0, number=f"{t}-1", issued="now()"),
                        world.add_invoice(t, c0, number=f"{t}-2", status="void", amount="7.5",
                                          issued="now()")]
    # One HTTP thread and one database worker: a request's allocations happen in one order.
    d = Chaos(["--db", cluster.gateway_url, "--tools", str(ROOT / "tools"),
               "--admin-key-file", world.admin_key, "--threads", "1", "--workers", "1",
               *NO_LIMITS], workdir)
    yield d, Kinds(d, world)
    d.stop()


def probe_kind(d, kinds, kind, rng):
    send = getattr(kinds, kind)
    for _ in range(3):            # warm-up: connections made, statements prepared
        assert send()[0] == "normal"
    counts = []
    for _ in range(3):
        d.control("count")
        assert send()[0] == "normal"
        time.sleep(0.05)          # what runs after the answer (the request's log line)
        counts.append(d.stat()[0])
        d.control("off")
    total = min(counts)
    assert total > 0, f"{kind}: no allocation counted: is this the chaos build?"
    stride = STRIDE or max(1, -(-total // PROBES_PER_KIND))
    tally = {"normal": 0, "internal": 0, "unavailable": 0}
    wrong = []
    first = max(1, int(os.environ.get("AIRLOCK_ALLOC_FROM", "1")))
    for n in range(first + rng.randrange(stride), total + 1, stride):
        d.control(f"fail {n}")
        try:
            outcome, ctx = send()
            tally[outcome] += 1
        except (AssertionError, requests.RequestException, ValueError, KeyError, TypeError,
                IndexError) as e:
            outcome = None
            wrong.append(f"{kind}, allocation {n} of {total} failed: {str(e)[:600]}")
        finally:
            time.sleep(0.02)      # what runs after the answer, as above
            d.control("off")
        d.alive(f"after allocation {n} of {kind} failed")
        # Recovered: the next request of the kind gets its normal answer.
        try:
            if kind == "write" and outcome is not None:
                kinds.write_again(ctx)
            else:
                assert send()[0] == "normal"
        except (AssertionError, requests.RequestException, ValueError, KeyError, TypeError,
                IndexError) as e:
            wrong.append(f"{kind}, after allocation {n} failed, the next request: "
                         f"{str(e)[:600]}")
    return total, stride, tally, wrong


def test_nth_allocation_fails_during_each_kind_of_request(chaos):
    d, kinds = chaos
    rng = random.Random(os.environ.get("AIRLOCK_ALLOC_SEED", secrets.randbits(32)))
    report = {}
    for kind in KINDS:
        report[kind] = probe_kind(d, kinds, kind, rng)
    print("\nallocation failure: kind: allocations, stride, outcomes")
    for kind, (total, stride, tally, _) in report.items():
        print(f"  {kind}: {total}, every {stride}, {tally}")
    wrong = [w for _, _, _, ws in report.values() for w in ws]
    # Some failure was seen as such (the counter reaches the request's code).
    assert sum(t["internal"] + t["unavailable"] for _, _, t, _ in report.values()) > 0
    # No leak, no sanitizer report: the daemon exits 0 at SIGTERM.
    rc = d.stop()
    log = d.logtext()
    reports = [line for line in log.splitlines() if any(s in line for s in SANITIZER_REPORT)]
    assert rc == 0 and not reports, f"exit {rc}:\n" + log[-8000:]
    assert not wrong, "\n".join(wrong)
