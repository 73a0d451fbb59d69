"""Fixtures for the sandbox tests: the airlock-sandbox program run as root and as an
unprivileged user (with a cgroup subtree delegated to it, as an operator would), listeners
on the host's loopback, and a network namespace made by the test."""
import json
import os
import pwd
import shutil
import socket
import subprocess
import threading
import uuid

import pytest

from .sbhelpers import (CGROUP, SANDBOX, UNPRIV, UNPRIV_GROUP, cgroup_dirs, gvisor_leftovers,
                        leftover_sandboxes, runsc_unavailable)


class Result:
    def __init__(self, proc):
        self.proc = proc
        self.returncode = proc.returncode
        self.stderr = proc.stderr.decode(errors="replace")
        try:
            self.json = json.loads(proc.stdout)
        except ValueError as e:
            raise AssertionError(f"airlock-sandbox printed no JSON (exit {proc.returncode}):\n"
                                 f"{proc.stdout[:2000]!r}\n{self.stderr}") from e
        self.out = self.json["stdout"]
        self.err = self.json["stderr"]
        self.limit = self.json["limit"]

    def __repr__(self):
        return f"Result({self.json!r})"


class Launcher:
    """Runs airlock-sandbox as one identity (root, or the unprivileged user) at one
    isolation level (namespace, or gvisor)."""

    def __init__(self, identity, cgroup_parent, isolation="namespace", warm=False):
        self.identity = identity
        self.cgroup_parent = cgroup_parent
        self.isolation = isolation
        self.warm = warm

    @property
    def is_gvisor(self):
        return self.isolation == "gvisor"

    def prefix(self):
        if self.identity == "root":
            return []
        return ["setpriv", f"--reuid={UNPRIV}", f"--regid={UNPRIV_GROUP}", "--clear-groups"]

    def argv(self, args, cmd):
        extra = ["--cgroup-parent", self.cgroup_parent, "--isolation", self.isolation]
        if self.warm:
            # As in a warm pool: the sandbox is started ahead and waits, blocked reading
            # descriptor 3, until the hand-over gives it its program (here: go on to CMD).
            extra += ["--warm", "--program", "go\n"]
            cmd = ["sh", "-c", 'read -r _ <&3; exec 3<&-; exec "$@"', "warm", *cmd]
        return [*self.prefix(), str(SANDBOX), "run", *extra, *args, "--", *cmd]

    def raw(self, args, cmd, input=b"", env=None, pass_fds=(), timeout=60):
        """Runs the CLI without --json; returns the CompletedProcess (bytes)."""
        return subprocess.run(self.argv(args, cmd), input=input, capture_output=True,
                              env=env, pass_fds=pass_fds, timeout=timeout, cwd="/")

    def run(self, cmd, *args, input=b"", env=None, pass_fds=(), timeout=60):
        """Runs cmd in a sandbox with --json; returns a Result."""
        before = set(gvisor_leftovers())
        p = self.raw(["--json", *args], cmd, input=input, env=env, pass_fds=pass_fds,
                     timeout=timeout)
        r = Result(p)
        assert not leftover_sandboxes(self.cgroup_parent), "a sandbox's cgroup was left behind"
        left = set(gvisor_leftovers()) - before
        assert not left, f"a gVisor sandbox's bundle or processes were left behind: {left}"
        return r

    def py(self, code, *args, **kw):
        """Runs a python3 probe in the sandbox."""
        return self.run(["python3", "-c", code], *args, **kw)

    def sh(self, script, *args, **kw):
        return self.run(["sh", "-c", script], *args, **kw)


@pytest.fixture(scope="session", autouse=True)
def built():
    assert SANDBOX.is_file() and os.access(SANDBOX, os.X_OK), \
        f"{SANDBOX} is not built (make build/airlock-sandbox)"
    assert os.geteuid() == 0, "the sandbox tests run as root (they also run probes as nobody)"


@pytest.fixture(scope="session")
def delegated():
    """A cgroup parent for the unprivileged user, owned by it, as an operator delegates one."""
    name = f"airlock-test-{os.getpid()}"
    pw = pwd.getpwnam(UNPRIV)
    dirs = cgroup_dirs(name)
    for d in dirs:
        d.mkdir()
        for p in [d, *d.iterdir()]:
            os.chown(p, pw.pw_uid, pw.pw_gid)
    if (CGROUP / "cgroup.controllers").exists():
        (dirs[0] / "cgroup.subtree_control").write_text("+pids +memory")
    yield name
    for d in dirs:
        for sub in d.iterdir() if d.is_dir() else []:
            if sub.is_dir():
                sub.rmdir()
        d.rmdir()


@pytest.fixture(scope="session")
def root_parent():
    name = f"airlock-test-root-{os.getpid()}"
    yield name
    for d in cgroup_dirs(name):
        if d.is_dir():
            d.rmdir()


def need_gvisor():
    why = runsc_unavailable()
    if why:
        pytest.fail(f"gVisor cannot start a sandbox here ({why}): make bootstrap installs runsc; run as root")


@pytest.fixture(params=["root", "nobody", "warm", "gvisor", "gvisor-warm"])
def sb(request, delegated, root_parent):
    """The launcher at the namespace level as root and as the unprivileged user, and at
    the gVisor level (as root: runsc needs it); started cold, and started ahead and handed
    its input once ready, as a warm pool's sandbox is ("warm")."""
    if request.param == "root":
        return Launcher("root", root_parent)
    if request.param == "warm":
        return Launcher("root", root_parent, warm=True)
    if request.param.startswith("gvisor"):
        need_gvisor()
        return Launcher("root", root_parent, "gvisor", warm=request.param.endswith("warm"))
    return Launcher("nobody", delegated)


@pytest.fixture(params=["namespace", "gvisor"])
def sb_root(request, root_parent):
    """The launcher as root, at each level."""
    if request.param == "gvisor":
        need_gvisor()
    return Launcher("root", root_parent, request.param)


class Listener:
    """A TCP listener on the host that counts the connections it accepts and answers each
    with a fixed HTTP response."""

    def __init__(self, host="127.0.0.1", family=socket.AF_INET, body=b"ok"):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.body = body
        self.closing = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self.closing:
                c.close()
                return
            self.accepted += 1
            try:
                c.settimeout(2)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = c.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(self.body), self.body))
            except OSError:
                pass
            finally:
                c.close()

    def close(self):
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@pytest.fixture
def listener():
    made = []

    def make(**kw):
        lst = Listener(**kw)
        made.append(lst)
        return lst
    yield make
    for lst in made:
        lst.close()


SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    print("conn", flush=True)
    try:
        c.settimeout(2); c.recv(4096)
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nnetns")
    except OSError:
        pass
    c.close()
"""


class Netns:
    """A network namespace made for the test, joined to the host by a veth pair, with
    listeners inside counting connections."""
    HOST_ADDR = "198.18.77.1"
    NS_ADDR = "198.18.77.2"

    def __init__(self):
        self.reap()
        tag = uuid.uuid4().hex[:6]
        self.name = f"airlock-t-{os.getpid()}-{tag}"
        self.veth = f"alk{tag}h"
        self.peer = f"alk{tag}n"
        self.servers = []
        self.counts = {}
        ip = ["ip"]
        subprocess.run([*ip, "netns", "add", self.name], check=True)
        subprocess.run([*ip, "link", "add", self.veth, "type", "veth", "peer", "name",
                        self.peer], check=True)
        subprocess.run([*ip, "link", "set", self.peer, "netns", self.name], check=True)
        subprocess.run([*ip, "addr", "add", f"{self.HOST_ADDR}/30", "dev", self.veth],
                       check=True)
        subprocess.run([*ip, "link", "set", self.veth, "up"], check=True)
        nsip = [*ip, "netns", "exec", self.name, "ip"]
        subprocess.run([*nsip, "addr", "add", f"{self.NS_ADDR}/30", "dev", self.peer],
                       check=True)
        subprocess.run([*nsip, "link", "set", self.peer, "up"], check=True)
        subprocess.run([*nsip, "link", "set", "lo", "up"], check=True)

    @staticmethod
    def reap():
        """Removes the namespaces of test runs that were killed before their clean-up (named
        for a process that is gone): theirs hold the fixed addresses this one needs."""
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for name in (line.split()[0] for line in names.splitlines() if line.strip()):
            parts = name.split("-")
            if len(parts) != 4 or parts[:2] != ["airlock", "t"] or not parts[2].isdigit() or \
                    os.path.exists(f"/proc/{parts[2]}"):
                continue
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", name], check=False)

    def serve(self, port):
        p = subprocess.Popen(["ip", "netns", "exec", self.name, "/usr/bin/python3", "-c",
                              SERVER, self.NS_ADDR, str(port)], stdout=subprocess.PIPE,
                             text=True)
        assert p.stdout.readline().strip() == "ready"
        self.counts[port] = 0

        def count():
            for line in p.stdout:
                if line.strip() == "conn":
                    self.counts[port] += 1
        threading.Thread(target=count, daemon=True).start()
        self.servers.append(p)

    def close(self):
        for p in self.servers:
            p.kill()
            p.wait()
        subprocess.run(["ip", "link", "del", self.veth], check=False)
        subprocess.run(["ip", "netns", "del", self.name], check=False)


@pytest.fixture(scope="module")
def netns():
    if shutil.which("ip") is None:
        raise AssertionError("the ip command (iproute2) is needed")
    ns = Netns()
    yield ns
    ns.close()
