"""Database faults: PostgreSQL restarted under a steady load of reads and keyed writes.
Calls in between are answered (200) or refused with 503 and retryAfterSeconds, none hangs,
the daemon reconnects by itself, and afterwards every answered call has its record and
every key exactly one effect."""
import secrets
import threading
import time

import requests

from conftest import ROOT, Daemon, ctl, own_cluster
from world import NO_LIMITS, World, rpc, wait_until

DEADLINE_S = 15         # no call may take longer than this, database down or not
READERS, WRITERS = 2, 2
LOAD_CALLS = 20        # calls answered (or refused) in each phase of the load


class Load:
    """Readers and writers calling until stopped; what came back, by kind."""

    def __init__(self, d, token, customer, tag):
        self.d, self.token, self.customer, self.tag = d, token, customer, tag
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok_calls = []          # call_ids of answered calls
        self.done_keys = {}         # key -> call_id of its answer
        self.refused = 0            # 503 with retryAfterSeconds
        self.unexpected = []        # anything else: a hang, another status, another error
        self.threads = [threading.Thread(target=self.read) for _ in range(READERS)] + \
                       [threading.Thread(target=self.write, args=(i,)) for i in range(WRITERS)]

    def call(self, s, params):
        """The structuredContent of an answer; None after a 503 (waited out); raises
        nothing, recording anything unexpected."""
        t0 = time.monotonic()
        try:
            r = rpc(self.d, self.token, "tools/call", params, session=s,
                    timeout=DEADLINE_S)
        except requests.RequestException as e:
            with self.lock:
                self.unexpected.append(f"{type(e).__name__} after {time.monotonic() - t0:.1f}s")
            return None
        body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else None
        if r.status_code == 503 and body and body["error"]["data"].get("retryAfterSeconds", 0) >= 1:
            with self.lock:
                self.refused += 1
            time.sleep(0.1)     # a client pausing before it tries again
            return None
        if r.status_code == 200 and body and "result" in body and not body["result"]["isError"]:
            sc = body["result"]["structuredContent"]
            with self.lock:
                self.ok_calls.append(sc["call_id"])
            return sc
        if r.status_code == 409 and body and body["error"]["data"]["reason"] == "key_in_flight":
            time.sleep(0.1)     # the key's first try is still running: try again
            return None
        with self.lock:
            self.unexpected.append(f"{r.status_code} {r.text[:300]}")
        return None

    def read(self):
        s = requests.Session()
        while not self.stop.is_set():
            self.call(s, {"name": "get_customer", "arguments": {"customer_id": self.customer}})

    def write(self, i):
        s = requests.Session()
        n = 0
        while not self.stop.is_set():
            key = f"{self.tag}-{i}-{n}"
            n += 1
            # The same key until it is answered: a write whose answer was lost is replayed.
            while True:
                sc = self.call(s, {"name": "add_support_note", "idempotency_key": key,
                                   "arguments": {"customer_id": self.customer,
                                                 "body": f"note {key}"}})
                if sc is not None:
                    with self.lock:
                        self.done_keys[key] = sc["call_id"]
                    break
                if self.unexpected:
                    return

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(DEADLINE_S * 4)
            assert not t.is_alive()


def wait_ready(d, want, timeout):
    """Waits until /readyz answers want; returns the time it did."""
    def ready():
        try:
            return requests.get(d.url + "/readyz", timeout=2).status_code == want
        except requests.RequestException:
            return False
    wait_until(ready, timeout=timeout, what=f"/readyz answering {want}")
    return time.monotonic()


def test_restart_under_load():
    with own_cluster(prefix="alk-flt-") as c:
        world = World(c, "flt", tenants=1, customers=1)
        tenant, customer = world.a, world.cust[world.a][0]
        token = world.token(tenant, "get_customer", "add_support_note")
        d = Daemon(["--db", c.gateway_url, "--tools", str(ROOT / "tools"), *NO_LIMITS])
        tag = f"flt{secrets.token_hex(3)}"
        try:
            # The load runs on until enough calls were answered, then refused with the
            # database down, then answered again once it is back.
            with Load(d, token, customer, tag) as load:
                wait_until(lambda: len(load.ok_calls) >= LOAD_CALLS or load.unexpected,
                           timeout=30, what="calls answered before the stop")
                before = len(load.ok_calls)
                ctl("dev-db", "stop", "--dir", c.dir)
                wait_ready(d, 503, 10)
                wait_until(lambda: load.refused >= LOAD_CALLS or load.unexpected,
                           timeout=30, what="calls refused while the database is down")
                during = load.refused
                ctl("dev-db", "start", "--dir", c.dir)
                t0 = time.monotonic()
                back = wait_ready(d, 200, 30) - t0
                ok_at_back = len(load.ok_calls)
                wait_until(lambda: len(load.ok_calls) >= ok_at_back + LOAD_CALLS
                           or load.unexpected, timeout=30, what="calls answered after the start")
            assert not load.unexpected, load.unexpected[:10]
            assert before > 0 and during > 0, (before, during)
            assert len(load.ok_calls) > ok_at_back, "no call answered after the restart"
            print(f"answered {len(load.ok_calls)}, refused 503 {load.refused}, "
                  f"keys {len(load.done_keys)}, ready again {back:.2f}s after the start")

            # Every answered call has its record (written behind the answer: wait for it).
            ids = set(load.ok_calls)
            wait_until(lambda: ids <= set(c.psql("SELECT id FROM airlock.calls WHERE tenant = "
                                                 f"'{tenant}' AND outcome = 'ok'").split()),
                       timeout=30, every=0.2, what="every answered call recorded")
            # Every key exactly one effect: one note, one key row naming the answered call.
            counts = c.psql(f"SET ROLE tenant_{tenant}; SELECT body, count(*) FROM"
                            f" billing.support_notes WHERE body LIKE 'note {tag}-%' GROUP BY body")
            per_body = dict(line.split("|") for line in counts.split("\n") if "|" in line)
            assert set(per_body.values()) <= {"1"}, {k: v for k, v in per_body.items() if v != "1"}
            assert {f"note {k}" for k in load.done_keys} <= set(per_body)
            keyrows = c.psql(f"SELECT key, call_id FROM airlock.idempotency_keys WHERE tenant ="
                             f" '{tenant}' AND key LIKE '{tag}-%'")
            by_key = dict(line.split("|") for line in keyrows.split("\n") if "|" in line)
            for k, call_id in load.done_keys.items():
                assert by_key.get(k) == call_id, (k, call_id, by_key.get(k))
            # A key never answered (the load stopped during its tries) left at most one effect
            # too, which the loop above counts.
            assert len(per_body) <= len(by_key)
        finally:
            assert d.stop() == 0, d.logtext()[-3000:]
