"""Fixtures for the integration tests: a throwaway PostgreSQL cluster made by
`airlockctl dev-db`, migrated, and real airlockd processes on free ports."""
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
# AIRLOCK_BUILD=build/asan runs the same tests against the sanitizer build.
BUILD = ROOT / os.environ.get("AIRLOCK_BUILD", "build")
CTL = BUILD / "airlockctl"
AIRLOCKD = BUILD / "airlockd"


def ctl(*args, check=True, env=None, input=None):
    """Runs airlockctl; returns the CompletedProcess (text mode)."""
    p = subprocess.run([str(CTL), *map(str, args)], capture_output=True, text=True,
                       env=env, input=input, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"airlockctl {' '.join(map(str, args))} exited {p.returncode}:\n"
                             f"{p.stdout}\n{p.stderr}")
    return p


class Cluster:
    """A dev-db.  Its URLs carry no password: they name the dev-db's libpq passfile, so
    psql and every program given one finds the password there, and no command line holds
    it."""

    def __init__(self, path):
        self.dir = path
        self.operator_url = ctl("dev-db", "url", "--dir", path).stdout.strip()
        self.gateway_url = ctl("dev-db", "url", "--role", "gateway", "--dir", path).stdout.strip()

    def passwords(self):
        """The roles' passwords, from the passfile (host:port:database:user:password)."""
        with open(os.path.join(self.dir, "pgpass")) as f:
            return {line.rsplit(":", 2)[1]: line.rsplit(":", 2)[2]
                    for line in f.read().splitlines() if line and not line.startswith("#")}

    def psql(self, sql, url=None, check=True):
        """Runs SQL through psql; returns stdout (unaligned, tuples only)."""
        p = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", url or self.operator_url,
                            "-c", sql], capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"psql failed: {p.stderr}")
        return p if not check else p.stdout


@contextlib.contextmanager
def own_cluster(prefix="alk-", migrate=True):
    """A throwaway cluster made by airlockctl dev-db (migrated unless told not to), stopped
    and removed afterwards."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    try:
        ctl("dev-db", "start", "--dir", path)
        c = Cluster(path)
        if migrate:
            ctl("migrate", "--db", c.operator_url, "--dir", ROOT / "migrations")
        yield c
    finally:
        ctl("dev-db", "stop", "--dir", path, check=False)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster():
    with own_cluster() as c:
        yield c


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """A running airlockd; stop() sends SIGTERM and returns the exit code."""

    def __init__(self, args, env=None):
        # Warm sandboxes only where a test asks for them (--warm N): each one started ahead
        # is a sandbox boot (a gVisor one costs about a second of CPU) per daemon.
        if not any(str(a).startswith("--warm") or str(a) == "--config" for a in args):
            args = [*args, "--warm", "0"]
        # The port is free when chosen but could be taken before airlockd binds it: a start
        # that fails for that reason (exit 69, "cannot listen") is tried on another port.
        for attempt in range(3):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.log = tempfile.NamedTemporaryFile(prefix="airlockd-", suffix=".log",
                                                   delete=False)
            self.proc = subprocess.Popen([str(AIRLOCKD), "--listen", f"127.0.0.1:{self.port}",
                                          *args], stdout=self.log, stderr=subprocess.STDOUT,
                                         env=env)
            if self._up():
                return
            if not (self.proc.returncode == 69 and "cannot listen" in self.logtext()):
                break
        log = self.logtext()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("airlockd did not come up:\n" + log)
        raise AssertionError(f"airlockd exited {self.proc.returncode}:\n{log}")

    def _up(self):
        """True once /healthz answers; False if the process exited or 15 s passed."""
        def answered():
            if self.proc.poll() is not None:
                return "exited"
            try:
                return requests.get(self.url + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False
        try:
            return wait_until(answered, timeout=15, what="airlockd answering") is True
        except AssertionError:
            return False

    def wait_log(self, text, timeout=15):
        """Waits until the log holds text; returns the log."""
        try:
            wait_until(lambda: text in self.logtext(), timeout=timeout)
        except AssertionError:
            raise AssertionError(f"no {text!r} in the log:\n{self.logtext()}") from None
        return self.logtext()

    def logtext(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.returncode == 0 and os.path.exists(self.log.name):
            os.unlink(self.log.name)
        return self.proc.returncode


@pytest.fixture
def start_daemon(cluster):
    """Factory: start_daemon(*extra_args) -> Daemon, stopped at teardown."""
    started = []

    def start(*args, db=None, env=None):
        d = Daemon(["--db", db or cluster.gateway_url, "--tools", str(ROOT / "tools"), *args], env=env)
        started.append(d)
        return d

    yield start
    # A daemon the test left running must stop cleanly: exit 0 after SIGTERM (under the
    # sanitizer build that includes no leak and no error report).
    unclean = []
    for d in started:
        was_running = d.proc.poll() is None
        rc = d.stop()
        if was_running and rc != 0:
            unclean.append((rc, d.logtext()[-3000:]))
    assert not unclean, unclean


@pytest.fixture
def daemon(start_daemon):
    return start_daemon()
