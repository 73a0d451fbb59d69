"""HTTP-level behaviour of a real airlockd: routes, methods, limits, hostile bodies, shutdown."""
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import AIRLOCKD, ROOT, Daemon, ctl, own_cluster
from world import post, wait_until


def raw(d, payload, timeout=5, source="127.0.0.1"):
    """Sends bytes on a fresh connection from source; returns what came back until close or
    timeout."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=timeout, source_address=(source, 0))
    try:
        s.sendall(payload)
        chunks = []
        while True:
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            if not c:
                break
            chunks.append(c)
        return b"".join(chunks)
    finally:
        s.close()


def test_health_and_ready(daemon):
    r = requests.get(daemon.url + "/healthz", timeout=5)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = requests.get(daemon.url + "/readyz", timeout=5)
    assert r.status_code == 200 and r.json()["status"] == "ready"


def test_ready_reports_database_down(start_daemon):
    d = start_daemon(db="host=/nonexistent-airlock dbname=x")
    r = requests.get(d.url + "/readyz", timeout=5)
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
    assert r.json()["reason"] == "backend_unavailable"
    # Liveness does not depend on the database.
    assert requests.get(d.url + "/healthz", timeout=5).status_code == 200


def test_ping_and_initialize(daemon):
    r = post(daemon, {"jsonrpc": "2.0", "method": "ping", "id": 7})
    assert r.status_code == 200
    assert r.json() == {"jsonrpc": "2.0", "result": {}, "id": 7}
    r = post(daemon, {"jsonrpc": "2.0", "method": "initialize", "id": "a",
                     "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                "clientInfo": {"name": "t", "version": "1"}}}, path="/mcp")
    res = r.json()["result"]
    assert res["protocolVersion"] == "2025-06-18"
    assert res["serverInfo"]["name"] == "airlock"
    assert "tools" in res["capabilities"]
    # An unknown revision is answered with the newest one spoken here.
    r = post(daemon, {"jsonrpc": "2.0", "method": "initialize", "id": 1,
                     "params": {"protocolVersion": "1999-01-01"}})
    assert r.json()["result"]["protocolVersion"] == "2025-11-25"


def test_notification_is_202_without_body(daemon):
    r = post(daemon, {"jsonrpc": "2.0", "method": "notifications/initialized"}, path="/mcp")
    assert r.status_code == 202 and r.content == b""
    r = post(daemon, [{"jsonrpc": "2.0", "method": "ping"}, {"jsonrpc": "2.0", "method": "nope"}])
    assert r.status_code == 202 and r.content == b""


def test_batch_on_rpc_and_refused_on_mcp(daemon):
    batch = [{"jsonrpc": "2.0", "method": "ping", "id": 1},
             {"jsonrpc": "2.0", "method": "nope", "id": 2}, 5]
    r = post(daemon, batch)
    assert r.status_code == 200
    out = r.json()
    assert [o.get("id") for o in out] == [1, 2, None]
    assert out[1]["error"]["code"] == -32601 and out[1]["error"]["data"]["reason"] == "method_not_found"
    assert out[2]["error"]["code"] == -32600
    r = post(daemon, [{"jsonrpc": "2.0", "method": "ping", "id": 1}], path="/mcp")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == -32600


def test_parse_errors(daemon):
    for body, code, reason in [
        (b"{not json", -32700, "parse_error"),
        (b"\xff\xfe\x00garbage", -32700, "parse_error"),
        (b'{"jsonrpc":"2.0","method":"p\xffing","id":1}', -32700, "parse_error"),
        (b'{"jsonrpc":"2.0","method":"ping","id":1,"id":2}', -32600, "invalid_request"),
        (b'{"jsonrpc":"2.0","method":"ping\\u0000","id":1}', -32600, "invalid_request"),
        (b'{"jsonrpc":"2.0","method":"ping","params":[1e400],"id":1}', -32600, "invalid_request"),
        (b'"just a string"', -32600, "invalid_request"),
        (b'{"jsonrpc":"1.0","method":"ping","id":1}', -32600, "invalid_request"),
        (b"[]", -32600, "invalid_request"),
    ]:
        r = post(daemon, body)
        assert r.status_code == 200, body
        e = r.json()["error"]
        assert (e["code"], e["data"]["reason"]) == (code, reason), body
        # The id is echoed when it could be read, else null.
        assert r.json()["id"] == (1 if b'"jsonrpc":"1.0"' in body else None)


def test_nesting_and_batch_limits(start_daemon):
    d = start_daemon("--max-depth", "8", "--max-batch", "3")
    deep = "[" * 9 + "]" * 9
    assert post(d, deep).json()["error"]["code"] == -32600
    # Far deeper than jansson's own limit: refused by the scan, quickly, without recursion.
    assert post(d, "[" * 100000).json()["error"]["code"] == -32600
    r = post(d, [{"jsonrpc": "2.0", "method": "ping", "id": i} for i in range(4)])
    assert r.json()["error"]["code"] == -32600 and "limit" in r.json()["error"]["message"]
    r = post(d, [{"jsonrpc": "2.0", "method": "ping", "id": i} for i in range(3)])
    assert len(r.json()) == 3


def test_http_faults(start_daemon):
    d = start_daemon("--max-body", "1024")
    assert requests.get(d.url + "/rpc", timeout=5).status_code == 405
    assert requests.get(d.url + "/rpc", timeout=5).headers["Allow"] == "POST"
    assert requests.post(d.url + "/healthz", timeout=5).status_code == 405
    assert requests.get(d.url + "/nowhere", timeout=5).status_code == 404
    r = requests.post(d.url + "/rpc", data='{"jsonrpc":"2.0","method":"ping","id":1}',
                      headers={"Content-Type": "text/plain"}, timeout=5)
    assert r.status_code == 415
    r = requests.post(d.url + "/rpc", data='{}', timeout=5)
    assert r.status_code == 415
    r = post(d, {"jsonrpc": "2.0", "method": "ping", "id": 1},
            headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200
    # Oversized by Content-Length: refused before the body is read.
    out = raw(d, b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000000\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413")
    # Oversized and chunked: never buffered past the cap.
    chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
    out = raw(d, b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n")
    assert out == b"" or out.startswith(b"HTTP/1.1 413")
    # Both Content-Length and chunked.
    out = raw(d, b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[1,2]\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")
    # Headers and URI too large: libmicrohttpd answers itself.
    out = raw(d, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431")
    out = raw(d, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 414")
    # The server keeps serving.
    assert post(d, {"jsonrpc": "2.0", "method": "ping", "id": 1}).status_code == 200


def test_mcp_origin_and_version(start_daemon):
    d = start_daemon("--allow-origin", "https://app.example")
    ping = {"jsonrpc": "2.0", "method": "ping", "id": 1}
    assert post(d, ping, path="/mcp").status_code == 200
    assert post(d, ping, path="/mcp", headers={"Origin": "https://app.example"}).status_code == 200
    assert post(d, ping, path="/mcp", headers={"Origin": "https://evil.example"}).status_code == 403
    assert post(d, ping, path="/mcp", headers={"MCP-Protocol-Version": "2025-06-18"}).status_code == 200
    r = post(d, ping, path="/mcp", headers={"MCP-Protocol-Version": "1900-01-01"})
    assert r.status_code == 400 and r.json()["error"]["code"] == -32022
    assert "2025-11-25" in r.json()["error"]["data"]["supported"]


def test_slow_client_does_not_block_others(start_daemon):
    d = start_daemon("--conn-timeout", "2", "--threads", "1")
    s = socket.create_connection(("127.0.0.1", d.port))
    s.sendall(b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n{\"jsonrpc\"")
    # Another client is served meanwhile, on the same single HTTP thread.
    assert post(d, {"jsonrpc": "2.0", "method": "ping", "id": 1}).status_code == 200
    s.settimeout(6)
    t0 = time.monotonic()
    assert s.recv(100) == b""      # closed by the idle timeout
    assert time.monotonic() - t0 < 5.5
    s.close()


def test_garbage_flood_keeps_serving(daemon):
    import os
    for i in range(200):
        post(daemon, os.urandom(64 + i))
    for payload in [b"\x00" * 100, b"GARBAGE\r\n\r\n", b"POST /rpc HTTP/9.9\r\n\r\n"]:
        raw(daemon, payload, timeout=2)
    assert post(daemon, {"jsonrpc": "2.0", "method": "ping", "id": 1}).json()["result"] == {}


def metric(d, name, source="127.0.0.1"):
    """One value of /metrics, asked from a loopback address of choice (another address than
    the test's own is not held to the test's per-client connection cap)."""
    out = raw(d, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
              source=source)
    return int(out.decode().split(f"\n{name} ")[1].split()[0])


def in_flight(d):
    """The daemon's count of requests begun and not answered, this one included."""
    return metric(d, "airlock_requests_in_flight")


def send_partial(d, body, n):
    """A request whose headers and first n body bytes are sent, once the daemon counts it."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body[:n])
    wait_until(lambda: in_flight(d) >= 2, timeout=10, every=0.05,
               what="the partial request begun")
    return s


def test_sigterm_finishes_inflight_and_exits_zero(daemon):
    body = b'{"jsonrpc":"2.0","method":"ping","id":42}'
    kept = requests.Session()       # a connection kept open, as a load balancer's would be
    assert kept.get(daemon.url + "/readyz", timeout=5).status_code == 200
    s = send_partial(daemon, body, 10)
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.wait_log("no new connections")
    # Asked on that connection, the daemon is no longer ready...
    r = kept.get(daemon.url + "/readyz", timeout=5)
    assert r.status_code == 503 and r.json()["reason"] == "stopping"
    kept.close()
    # Stopped accepting new connections: one that reaches the kernel's queue is closed
    # before a byte of it is read, so no new request is ever answered...
    try:
        c = socket.create_connection(("127.0.0.1", daemon.port), timeout=2)
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        late = c.recv(100)
        c.close()
    except OSError:
        late = b""
    assert late == b""
    # ...but the request in flight is finished and answered.
    s.sendall(body[10:])
    out = b""
    while b'"id":42}' not in out:
        c = s.recv(4096)
        if not c:
            break
        out += c
    s.close()
    assert out.startswith(b"HTTP/1.1 200") and b'"result":{}' in out
    assert daemon.proc.wait(15) == 0
    assert '"msg":"stopped"' in daemon.logtext()


def test_request_log_line(daemon):
    post(daemon, {"jsonrpc": "2.0", "method": "ping", "id": 1})
    # The line is written once the response has gone out.
    lines = [json.loads(x) for x in daemon.wait_log('"rpc":"ping"').splitlines()
             if x.startswith("{")]
    reqs = [x for x in lines if x.get("msg") == "request" and x.get("rpc") == "ping"]
    assert reqs and reqs[-1]["status"] == 200 and reqs[-1]["path"] == "/rpc"
    assert {"ts", "level", "ms", "client", "method"} <= set(reqs[-1])


def test_request_finishing_after_the_grace_period(start_daemon):
    """A request whose body arrives after the grace period, when the workers are gone, is
    answered 503 (or dropped), and the daemon still exits cleanly."""
    d = start_daemon("--grace", "1")
    body = b'{"jsonrpc":"2.0","method":"tools/list","id":7}'
    s = send_partial(d, body, 5)
    d.proc.send_signal(signal.SIGTERM)
    d.wait_log("workers stopped")
    try:
        s.sendall(body[5:])
        out = s.recv(4096)
    except OSError:
        out = b""
    s.close()
    assert out == b"" or out.startswith(b"HTTP/1.1 503"), out
    assert d.proc.wait(15) == 0


def test_connections_per_client_are_capped(start_daemon):
    """A client holding many slow connections cannot take every slot (slowloris)."""
    d = start_daemon("--max-conns-per-client", "4", "--conn-timeout", "10")
    # The start-up probes' connections are gone first: one still open would take a slot.
    conns = lambda: metric(d, "airlock_http_connections", source="127.0.0.2")
    wait_until(lambda: conns() == 1, timeout=15, every=0.05,
               what="the start-up connections closed")
    held = []
    for _ in range(4):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")      # headers never finished
        held.append(s)
    # All four accepted (the count includes the /metrics request, from another address).
    wait_until(lambda: conns() >= 5, timeout=15, every=0.05,
               what="the four connections accepted")
    # The fifth from the same address is closed at once...
    extra = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        got = extra.recv(100)
    except ConnectionResetError:
        got = b""
    extra.close()
    assert got == b""
    # ...and once they go, the address is served again.
    for s in held:
        s.close()
    def served():
        try:
            return requests.get(d.url + "/healthz", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False
    wait_until(served, timeout=10, every=0.1, what="the address served again")


def test_trusted_proxy_names_the_client(start_daemon):
    d = start_daemon("--trust-proxy", "127.0.0.1", "--rate-client", "0.01/1")
    ping = {"jsonrpc": "2.0", "method": "ping", "id": 1}

    def via(addr):
        return post(d, ping, headers={"X-Forwarded-For": f"203.0.113.9, {addr}"}).status_code

    # Each forwarded client has its own bucket; the earlier, client-supplied hop is ignored.
    assert via("192.0.2.1") == 200 and via("192.0.2.2") == 200
    assert via("192.0.2.1") == 429
    # Garbage in the header leaves the proxy's own address.
    assert via("not-an-address") == 200 and via("also garbage") == 429
    clients = lambda: [json.loads(x).get("client") for x in d.logtext().splitlines()
                       if x.startswith("{")]
    wait_until(lambda: "192.0.2.1" in clients() and "192.0.2.2" in clients(),
               what="both forwarded clients in the log")
    assert "203.0.113.9" not in clients()


# --- X-Forwarded-For over several header lines -------------------------------------------

def unique_v6():
    """An address of the documentation range no other test uses, so the session cluster's
    refusal counts for it are this test's alone."""
    return "2001:db8:%x::%x" % (secrets.randbits(16), secrets.randbits(16))


def post_raw(d, body, header_lines):
    """A POST of body to /rpc with these header lines as sent, each on its own line (requests
    would merge repeated headers into one); returns the HTTP status."""
    out = raw(d, b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\n" + b"".join(h.encode() + b"\r\n" for h in header_lines)
              + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return int(out.split(b" ", 2)[1])


def refusals(cluster, client, reason, want, timeout=10):
    """The refusals counted for client and reason, once they reach want (they are written
    when their second is over), or what there is at the timeout."""
    count = lambda: int(cluster.psql(f"SELECT coalesce(sum(count), 0) FROM airlock.refusals"
                                     f" WHERE client = '{client}' AND reason = '{reason}'"))
    try:
        wait_until(lambda: count() >= want, timeout=timeout, every=0.1)
    except AssertionError:
        pass        # the caller compares what there is with what it wanted
    return count()


def test_trusted_proxy_reads_the_last_forwarded_line(start_daemon, cluster):
    """The proxy appends its peer to the last X-Forwarded-For line; every earlier line and
    entry is the client's own word, and cannot pick its rate-limit bucket or its record."""
    d = start_daemon("--trust-proxy", "127.0.0.1", "--rate-client", "0.01/1")
    ping = b'{"jsonrpc":"2.0","method":"ping","id":1}'
    a, b, forged = unique_v6(), unique_v6(), unique_v6()
    assert post_raw(d, ping, [f"X-Forwarded-For: {forged}",
                              f"X-Forwarded-For: 203.0.113.9, {a}"]) == 200
    # Same first line, another last entry: another client, with a bucket of its own.
    assert post_raw(d, ping, [f"X-Forwarded-For: {forged}", f"X-Forwarded-For: {b}"]) == 200
    # Another first line, the same last entry: the same client, whose one request is spent.
    assert post_raw(d, ping, [f"X-Forwarded-For: {b}", "X-Forwarded-For: 192.0.2.1",
                              f"x-forwarded-for: {a}"]) == 429
    # The refusal is recorded against the address the proxy named.
    assert refusals(cluster, a, "rate_limited", 1) == 1
    assert refusals(cluster, forged, "rate_limited", 1, timeout=1.5) == 0
    d.wait_log(a)
    clients = [json.loads(x).get("client") for x in d.logtext().splitlines()
               if x.startswith("{") and '"request"' in x]
    assert clients.count(a) == 2 and clients.count(b) == 1 and forged not in clients


# --- /readyz is throttled, /healthz is not -----------------------------------------------

def test_readyz_is_rate_limited_per_client(start_daemon):
    """/readyz asks the database, so a flood of it is held to the client address's rate;
    /healthz answers from memory and stays unthrottled, for liveness probes."""
    d = start_daemon("--rate-client", "0.01/5")
    codes = [requests.get(d.url + "/readyz", timeout=5).status_code for _ in range(8)]
    assert codes == [200] * 5 + [429] * 3, codes
    r = requests.get(d.url + "/readyz", timeout=5)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.json() == {"status": "unavailable", "reason": "rate_limited"}
    assert all(requests.get(d.url + "/healthz", timeout=5).status_code == 200
               for _ in range(50))


# --- a batch is charged per call ---------------------------------------------------------

def test_batch_is_rate_limited_per_call(start_daemon, cluster):
    """A batch of N calls costs N units of its address's rate, all or none: a batch of
    unknown tokens costs as many lookups as it is charged for."""
    d = start_daemon("--trust-proxy", "127.0.0.1", "--rate-client", "0.01/10")
    addr = unique_v6()
    h = {"Authorization": "Bearer alk_" + "A" * 43, "X-Forwarded-For": addr}

    def batch(n):
        out = post(d, [{"jsonrpc": "2.0", "method": "tools/list", "id": i} for i in range(n)],
                  headers=h).json()
        assert len(out) == n
        return {e["error"]["data"]["reason"] for e in out}

    assert batch(6) == {"token_invalid"}        # 6 of 10 units
    assert batch(6) == {"rate_limited"}         # 4 left: refused whole, nothing spent
    assert batch(4) == {"token_invalid"}        # the last 4
    r = post(d, {"jsonrpc": "2.0", "method": "tools/list", "id": 1}, headers=h)
    assert r.status_code == 429
    # Ten lookups answered, seven calls refused for the rate, each counted.
    assert refusals(cluster, addr, "token_invalid", 10) == 10
    assert refusals(cluster, addr, "rate_limited", 7) == 7


# --- secrets stay off the command line ---------------------------------------------------

def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().decode(errors="replace")


def test_no_password_on_the_command_line(daemon, cluster):
    """Started as the demo starts it (--db with the dev-db's gateway URL)."""
    argv = cmdline(daemon.proc.pid)
    assert "--db" in argv and "passfile=" in argv
    assert not any(pw in argv for pw in cluster.passwords().values()), argv
    assert requests.get(daemon.url + "/readyz", timeout=5).status_code == 200
    assert "command line" not in daemon.logtext()


@pytest.mark.parametrize("db", [
    "postgresql://airlock_gateway:not-the-password@/airlock?host=/nonexistent-airlock",
    "host=/nonexistent-airlock dbname=airlock user=airlock_gateway password=not-the-password",
])
def test_password_in_argv_is_warned_about_and_wiped(start_daemon, db):
    d = start_daemon(db=db)
    log = d.wait_log("password is on the command line")
    lines = [json.loads(x) for x in log.splitlines()
             if x.startswith("{") and "password is on the command line" in x]
    assert len(lines) == 1 and lines[0]["level"] == "warn"
    assert "not-the-password" not in log
    # The value is wiped from the process's arguments once read.
    assert "not-the-password" not in cmdline(d.proc.pid)


def test_db_from_file_or_environment(cluster, tmp_path):
    path = tmp_path / "db.conninfo"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (cluster.gateway_url + "\n").encode())
    os.close(fd)
    tools = ["--tools", str(ROOT / "tools")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AIRLOCK_"))}
    for args, extra in [(["--db-file", str(path)], {}),
                        ([], {"AIRLOCK_DB_FILE": str(path)}),
                        ([], {"AIRLOCK_DB": "postgresql://x:not-the-password@/nowhere"}),
                        ([], {"AIRLOCK_DB": cluster.gateway_url})]:
        d = Daemon([*args, *tools], env={**env, **extra})
        try:
            ready = requests.get(d.url + "/readyz", timeout=5).status_code
            # A password in the environment is not warned about: only root and the
            # daemon's own account read /proc/PID/environ.
            assert "command line" not in d.logtext()
            assert ready == (503 if "nowhere" in str(extra) else 200), (args, extra)
        finally:
            assert d.stop() == 0
    # A conninfo file others may read is refused, like the admin key.
    os.chmod(path, 0o640)
    p = subprocess.run([str(AIRLOCKD), "--listen", "127.0.0.1:1", "--db-file", str(path),
                        *tools], capture_output=True, text=True, timeout=30)
    assert p.returncode == 78 and str(path) in p.stderr, p.stderr


def test_admin_key_file_open_to_others_refuses_start(cluster, tmp_path):
    key = tmp_path / "admin.key"
    ctl("token", "admin-key", key)
    argv = [str(AIRLOCKD), "--listen", "127.0.0.1:1", "--db", cluster.gateway_url,
            "--tools", str(ROOT / "tools"), "--admin-key-file", str(key)]
    for mode in (0o640, 0o620, 0o604, 0o602, 0o644):
        os.chmod(key, mode)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert p.returncode == 78, (oct(mode), p.returncode, p.stderr)
        assert str(key) in p.stderr and "group or others" in p.stderr, p.stderr
    os.chmod(key, 0o600)
    d = Daemon(argv[3:])
    try:
        secret = key.read_text().strip()
        me = {"jsonrpc": "2.0", "method": "airlock/tokens.self", "id": 1}
        bearer = {"Authorization": f"Bearer {secret}"}
        assert post(d, me, headers=bearer).json()["result"] == {"admin": True}
        # A replacement others may read is refused as well, until its mode is fixed.
        tmp = tmp_path / "admin.key.new"
        tmp.write_text(secret + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, key)
        assert post(d, me, headers=bearer).status_code == 401
        assert "group or others" in d.logtext()
        os.chmod(key, 0o600)
        assert post(d, me, headers=bearer).json()["result"] == {"admin": True}
    finally:
        assert d.stop() == 0


# --- a database outage is logged once ----------------------------------------------------

def test_database_outage_is_logged_once_then_counted():
    """While the database is down, every worker fails on every call: the log says so once,
    counts the repeats, and says when it is back, with the count."""
    with own_cluster(prefix="alk-down-") as c:
        d = Daemon(["--db", c.gateway_url, "--tools", str(ROOT / "tools"), "--workers", "4",
                    "--rate-client", "0/0"])
        try:
            assert requests.get(d.url + "/readyz", timeout=5).status_code == 200
            ctl("dev-db", "stop", "--dir", c.dir)
            answered = []
            until = time.monotonic() + 2

            def hammer():
                h = {"Authorization": "Bearer alk_" + "B" * 43}
                while time.monotonic() < until:
                    answered.append(requests.get(d.url + "/readyz", timeout=5).status_code)
                    answered.append(post(d, {"jsonrpc": "2.0", "method": "tools/list", "id": 1},
                                        headers=h).status_code)

            threads = [threading.Thread(target=hammer) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert answered.count(503) >= 20, answered
            lines = [json.loads(x) for x in d.logtext().splitlines() if x.startswith("{")]
            down = [x for x in lines if x.get("level") == "warn" and
                    x["msg"].startswith(("database unavailable", "database connection lost"))]
            assert 1 <= len(down) <= 3, down
            ctl("dev-db", "start", "--dir", c.dir)
            wait_until(lambda: requests.get(d.url + "/readyz", timeout=5).status_code == 200,
                       timeout=30, every=0.1, what="the database back")
            d.wait_log('"database back"')
            back = [json.loads(x) for x in d.logtext().splitlines()
                    if x.startswith("{") and '"database back"' in x]
            assert len(back) == 1
            assert back[0]["failures"] >= answered.count(503) // 2, back
            assert back[0]["down_s"] >= 1
        finally:
            assert d.stop() == 0
