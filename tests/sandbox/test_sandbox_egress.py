"""Egress: no network by default; with an allowlist, only the listed host:port pairs through
the proxy, every attempt reported."""
import json
import os
import socket
import threading
import time

import pytest

from integration.waiting import wait_until
FETCH = r"""
import sys, urllib.request
for url in sys.argv[1:]:
    try:
        r = urllib.request.urlopen(url, timeout=5)
        print(url, r.status, r.read().decode())
    except urllib.error.HTTPError as e:
        print(url, e.code, "")
    except OSError as e:
        print(url, "error", type(e).__name__)
"""


def fetch(sb, urls, *allow):
    args = [a for host in allow for a in ("--allow", host)]
    r = sb.run(["python3", "-c", FETCH, *urls], *args)
    assert r.json["exit_code"] == 0, r
    return r, {line.split()[0]: line.split()[1:] for line in r.out.splitlines()}


def test_allowlisted_listener_reachable_other_port_refused(sb, listener):
    good = listener(body=b"allowed-body")
    other = listener(body=b"other-body")
    ok_url = f"http://127.0.0.1:{good.port}/x"
    bad_url = f"http://127.0.0.1:{other.port}/x"
    r, got = fetch(sb, [ok_url, bad_url], f"127.0.0.1:{good.port}")
    assert got[ok_url] == ["200", "allowed-body"], r
    assert got[bad_url] == ["403"], r
    assert good.accepted == 1 and other.accepted == 0
    events = [(e["host"], e["port"], e["allowed"], e["reason"]) for e in r.json["egress"]]
    assert events == [("127.0.0.1", good.port, True, "allowed"),
                      ("127.0.0.1", other.port, False, "not_listed")], events


def test_connect_method_relays(sb, listener):
    lst = listener(body=b"tunnelled")
    r = sb.py(f"""
import socket
s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
s.sendall(b"CONNECT 127.0.0.1:{lst.port} HTTP/1.1\\r\\nHost: 127.0.0.1:{lst.port}\\r\\n\\r\\n")
print(s.recv(200).split(b"\\r\\n")[0].decode())
s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk: break
    data += chunk
print(data.split(b"\\r\\n\\r\\n", 1)[1].decode())
t = socket.create_connection(("127.0.0.1", 3128), timeout=5)
t.sendall(b"CONNECT 127.0.0.1:{lst.port + 1 if lst.port < 65535 else 1} HTTP/1.1\\r\\n\\r\\n")
print(t.recv(200).split(b"\\r\\n")[0].decode())
""", "--allow", f"127.0.0.1:{lst.port}")
    lines = r.out.splitlines()
    assert lines[0] == "HTTP/1.1 200 Connection established", r
    assert lines[1] == "tunnelled", r
    assert lines[2].startswith("HTTP/1.1 403"), r


def test_direct_connection_bypassing_proxy_fails(sb, listener):
    lst = listener()
    r = sb.py(f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {lst.port}), timeout=2); print("connected")
except OSError as e:
    print("failed", e.errno)
""", "--allow", f"127.0.0.1:{lst.port}")
    assert r.out.startswith("failed"), r
    assert lst.accepted == 0


def test_name_resolving_to_loopback_refused_unless_address_listed(sb, listener):
    lst = listener()
    url = f"http://localhost:{lst.port}/"
    r, got = fetch(sb, [url], f"localhost:{lst.port}")
    assert got[url] == ["403"], r
    assert r.json["egress"][0]["reason"] == "restricted_address", r
    assert lst.accepted == 0
    # Listing the address itself as well lets the name through.
    r, got = fetch(sb, [url], f"localhost:{lst.port}", f"127.0.0.1:{lst.port}")
    assert got[url][0] == "200", r
    assert lst.accepted == 1


def test_metadata_and_private_addresses_refused(sb):
    # Listed by a name that is not the address: the proxy must not dial them. The names
    # are literals the resolver answers without any traffic.
    urls = ["http://169.254.169.254/latest/meta-data/", "http://10.1.2.3:8080/",
            "http://[::1]:9/"]
    r, got = fetch(sb, urls, "169.254.169.254:81", "10.1.2.3:8081")
    for u in urls:
        assert got[u] == ["403"], (u, r)
    assert all(not e["allowed"] for e in r.json["egress"])


def test_no_proxy_without_allowlist(sb):
    r = sb.py("""
import os, socket
print(sorted(k for k in os.environ if "proxy" in k.lower()))
try:
    socket.create_connection(("127.0.0.1", 3128), timeout=2); print("connected")
except OSError:
    print("no proxy")
print(os.path.exists("/airlock/proxy.sock"), os.path.exists("/airlock"))
""")
    # Under gVisor /airlock holds the guest init, never a proxy socket without an allowlist.
    there = "False True" if sb.is_gvisor else "False False"
    assert r.out.splitlines() == ["[]", "no proxy", there], r


def test_proxy_variables_set(sb, listener):
    lst = listener()
    r = sb.py("import os; print(*(os.environ[k] for k in ('HTTP_PROXY', 'HTTPS_PROXY', "
              "'http_proxy', 'https_proxy')))", "--allow", f"127.0.0.1:{lst.port}")
    assert r.out.split() == ["http://127.0.0.1:3128"] * 4, r


def test_allowlisted_netns_listener_through_proxy(sb, netns):
    port = 19000 + os.getpid() % 1000
    if port not in netns.counts:
        netns.serve(port)
    before = netns.counts[port]
    ok = f"http://{netns.NS_ADDR}:{port}/"
    other = f"http://{netns.NS_ADDR}:{port + 1}/"
    r, got = fetch(sb, [ok, other], f"{netns.NS_ADDR}:{port}")
    assert got[ok] == ["200", "netns"], r
    assert got[other] == ["403"], r
    wait_until(lambda: netns.counts[port] != before, timeout=2, what="the netns server's hit")
    assert netns.counts[port] == before + 1


def test_bad_proxy_requests_answered_400(sb, listener):
    lst = listener()
    r = sb.py("""
import socket
for req in (b"GARBAGE\\r\\n\\r\\n", b"GET /relative HTTP/1.1\\r\\n\\r\\n",
            b"GET https://x/ HTTP/1.1\\r\\n\\r\\n", b"GET http://user@h:1/ HTTP/1.1\\r\\n\\r\\n"):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
    s.sendall(req)
    print(s.recv(100).split(b"\\r\\n")[0].decode())
""", "--allow", f"127.0.0.1:{lst.port}")
    assert r.out.splitlines() == ["HTTP/1.1 400 bad request"] + \
        ["HTTP/1.1 400 bad request: CONNECT host:port or an absolute http:// URL"] * 3, r


def test_proxy_socket_not_left_behind(sb, listener):
    lst = listener()
    before = {p for p in os.listdir("/tmp") if p.startswith("airlock-sb-")}
    sb.py("pass", "--allow", f"127.0.0.1:{lst.port}")
    after = {p for p in os.listdir("/tmp") if p.startswith("airlock-sb-")}
    assert after <= before


def test_unlisted_host_never_resolved(sb):
    # A name outside the list is refused before any lookup: no DNS traffic leaves.
    r, got = fetch(sb, ["http://example.com/"], "127.0.0.1:9")
    assert got["http://example.com/"] == ["403"], r
    assert r.json["egress"][0]["reason"] == "not_listed"
    assert socket  # the module is used by the listener fixture


class Recorder:
    """An upstream HTTP server on the host's loopback that keeps every byte each connection
    brought, answers one keep-alive response, and goes on reading for a while, so that a
    second request forwarded on the same connection would be seen."""

    def __init__(self, linger=1.0):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.linger = linger
        self.conns = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_for(self, c, data, secs):
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            c.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = c.recv(65536)
            except socket.timeout:
                break
            except OSError:
                return data, False
            if not chunk:
                return data, False
            data += chunk
        return data, True

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(b"")
            data = b""
            deadline = time.monotonic() + 5
            while b"\r\n\r\n" not in data and time.monotonic() < deadline:
                data, is_open = self._read_for(c, data, 0.2)
                self.conns[-1] = data
                if not is_open:
                    break
            # Whatever else arrives before answering and after it is recorded too.
            data, is_open = self._read_for(c, data, 0.3)
            self.conns[-1] = data
            try:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nrecorded")
            except OSError:
                pass
            if is_open:
                data, _ = self._read_for(c, data, self.linger)
                self.conns[-1] = data
            c.close()
            self.done.set()

    def requests(self, i=0):
        """The request lines and the Host headers one connection carried."""
        lines = self.conns[i].split(b"\r\n")
        starts = [ln for ln in lines if ln.split(b" ")[-1:] in ([b"HTTP/1.1"], [b"HTTP/1.0"])]
        hosts = [ln.split(b":", 1)[1].strip() for ln in lines if ln.lower().startswith(b"host:")]
        return starts, hosts

    def close(self):
        self.sock.close()


@pytest.fixture
def recorder():
    made = []

    def make(**kw):
        r = Recorder(**kw)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


# Sends raw bytes to the forwarder, in pieces with a pause between them, and prints what
# came back until the proxy closed the connection.
RAW = r"""
import json, socket, sys, time
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
for piece in json.loads(sys.argv[1]):
    s.sendall(piece.encode("latin-1"))
    time.sleep(0.2)
data = b""
while True:
    try:
        chunk = s.recv(65536)
    except OSError as e:
        print("error", type(e).__name__); break
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode("latin-1"))
"""


def raw(sb, pieces, *allow):
    args = [a for host in allow for a in ("--allow", host)]
    r = sb.run(["python3", "-c", RAW, json.dumps(pieces)], *args)
    assert r.json["exit_code"] == 0, r
    return r


def test_pipelined_request_not_forwarded_and_host_rewritten(sb, recorder):
    up = recorder()
    origin = f"127.0.0.1:{up.port}"
    r = raw(sb, [f"GET http://{origin}/first HTTP/1.1\r\nHost: evil.example\r\n"
                 f"User-Agent: probe\r\n\r\n"
                 f"GET http://{origin}/second HTTP/1.1\r\nHost: evil.example\r\n\r\n"],
            origin)
    assert r.out.startswith("HTTP/1.1 200 OK") and r.out.count("HTTP/1.1") == 1, r
    assert up.done.wait(5) and len(up.conns) == 1, up.conns
    starts, hosts = up.requests()
    assert starts == [b"GET /first HTTP/1.1"], up.conns
    assert hosts == [origin.encode()], up.conns
    assert b"evil.example" not in up.conns[0] and b"/second" not in up.conns[0], up.conns
    assert b"User-Agent: probe\r\n" in up.conns[0], up.conns


def test_request_body_forwarded_and_nothing_after_it(sb, recorder):
    up = recorder()
    origin = f"127.0.0.1:{up.port}"
    r = raw(sb, [f"POST http://{origin}/post HTTP/1.1\r\nHost: {origin}\r\n"
                 "Content-Length: 11\r\n\r\nhello",
                 f" worldGET /smuggled HTTP/1.1\r\nHost: {origin}\r\n\r\n"], origin)
    assert r.out.startswith("HTTP/1.1 200 OK"), r
    assert up.done.wait(5) and len(up.conns) == 1, up.conns
    head, body = up.conns[0].split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /post HTTP/1.1\r\n"), up.conns
    assert body == b"hello world", up.conns


def test_query_only_url_gets_a_root_path(sb, recorder):
    up = recorder(linger=0)
    origin = f"127.0.0.1:{up.port}"
    r = raw(sb, [f"GET http://{origin}?x=1 HTTP/1.1\r\n\r\n"], origin)
    assert r.out.startswith("HTTP/1.1 200 OK"), r
    assert up.done.wait(5)
    starts, hosts = up.requests()
    assert starts == [b"GET /?x=1 HTTP/1.1"] and hosts == [origin.encode()], up.conns


def test_host_is_the_listed_name(sb, recorder):
    up = recorder(linger=0)
    r = raw(sb, [f"GET http://LocalHost:{up.port}/n HTTP/1.0\r\n"
                 f"Host: 127.0.0.1:{up.port}\r\nhost: other\r\n\r\n"],
            f"localhost:{up.port}", f"127.0.0.1:{up.port}")
    assert r.out.startswith("HTTP/1.1 200 OK"), r
    assert up.done.wait(5)
    starts, hosts = up.requests()
    assert starts == [b"GET /n HTTP/1.0"], up.conns
    assert hosts == [f"localhost:{up.port}".encode()], up.conns


def test_chunked_request_body_refused(sb, recorder):
    up = recorder(linger=0)
    origin = f"127.0.0.1:{up.port}"
    r = raw(sb, [f"POST http://{origin}/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n0\r\n\r\n"], origin)
    assert r.out.startswith("HTTP/1.1 411 "), r
    assert r.json["egress"][0]["reason"] == "bad_request", r
    time.sleep(0.3)        # a check that nothing comes: a stray connection would come this soon
    assert up.conns == [], up.conns
