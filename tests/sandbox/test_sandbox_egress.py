"""Egress: no network by default; with an allowlist, only the listed host:port pairs through
the proxy, every attempt reported."""
import os
import socket
import time

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
print(os.path.exists("/airlock"))
""")
    assert r.out.splitlines() == ["[]", "no proxy", "False"], r


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
    deadline = time.time() + 2
    while netns.counts[port] == before and time.time() < deadline:
        time.sleep(0.05)
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
