"""airlockctl doctor and airlockd's start-up gate: they pass on the demo database and fail,
naming the fault, on each fault injected as the cluster's superuser."""
import os
import shutil
import signal
import stat
import subprocess
import time

import pytest
import requests

from conftest import AIRLOCKD, CTL, ROOT, Daemon, ctl, free_port, own_cluster

SEED = ROOT / "scripts" / "demo-seed.sql"
CONFIG = 78


class Demo:
    """A dev-db cluster, migrated and seeded as `make demo` does, with a superuser way in:
    the dev-db throws the superuser's password away, so the test trusts it on the socket."""

    def __init__(self, c):
        self.c = c
        self.op = c.operator_url
        self.gw = c.gateway_url
        sock = os.path.realpath(os.path.join(c.dir, "sock"))
        self.su = f"host={sock} port=5432 dbname=airlock user=airlock_bootstrap"
        hba = os.path.join(c.dir, "data", "pg_hba.conf")
        with open(hba) as f:
            text = f.read()
        with open(hba, "w") as f:
            f.write("local all airlock_bootstrap trust\n" + text)
        with open(os.path.join(c.dir, "data", "postmaster.pid")) as f:
            os.kill(int(f.readline()), signal.SIGHUP)
        deadline = time.monotonic() + 10
        while self.sql("SELECT 1", check=False).returncode != 0:
            assert time.monotonic() < deadline, "the superuser cannot log in"
            time.sleep(0.1)

    def sql(self, sql, check=True):
        p = subprocess.run(["psql", "-X", "-At", "-q", "-v", "ON_ERROR_STOP=1", self.su, "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if check:
            assert p.returncode == 0, p.stderr
        return p

    def doctor(self, *args, tools=None):
        return ctl("doctor", "--db", self.op, "--tools", tools or ROOT / "tools",
                   "--pid", os.getpid(), *args, check=False)


@pytest.fixture(scope="module")
def demo():
    with own_cluster(prefix="alk-doc-") as c:
        ctl("tenant", "add", "acme", "--db", c.operator_url)
        ctl("tenant", "add", "globex", "--db", c.operator_url)
        p = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", c.operator_url, "-f",
                            str(SEED)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        yield Demo(c)


def rows(out):
    """The table's rows as (check, status, detail)."""
    lines = out.splitlines()
    assert lines[0].split() == ["CHECK", "STATUS", "DETAIL"], out
    return [(ln[:17].strip(), ln[18:24].strip(), ln[25:]) for ln in lines[1:]]


def failures(p):
    return [(c, d) for c, s, d in rows(p.stdout) if s == "FAIL"]


def test_demo_passes(demo, tmp_path):
    key = tmp_path / "admin.key"
    ctl("token", "admin-key", key)
    p = demo.doctor("--admin-key-file", key)
    assert p.returncode == 0, p.stdout + p.stderr
    got = rows(p.stdout)
    assert {c for c, _, _ in got} >= {
        "role", "superuser", "bypassrls", "createrole", "inherit", "table owner", "direct grant",
        "rls", "policy", "view", "security definer", "tenant key", "argv", "admin key file",
        "bwrap", "user namespaces", "seccomp", "gvisor"}
    assert all(s == "ok" for _, s, _ in got), p.stdout


# (the fault as SQL, its undoing, the check that must fail, a fragment of its detail)
FAULTS = [
    ("ALTER ROLE airlock_gateway SUPERUSER", "ALTER ROLE airlock_gateway NOSUPERUSER",
     "superuser", "role airlock_gateway is SUPERUSER"),
    ("ALTER ROLE airlock_gateway BYPASSRLS", "ALTER ROLE airlock_gateway NOBYPASSRLS",
     "bypassrls", "role airlock_gateway is BYPASSRLS"),
    ("ALTER ROLE airlock_gateway CREATEROLE", "ALTER ROLE airlock_gateway NOCREATEROLE",
     "createrole", "role airlock_gateway is CREATEROLE"),
    ("ALTER ROLE airlock_gateway INHERIT", "ALTER ROLE airlock_gateway NOINHERIT",
     "inherit", "role airlock_gateway is INHERIT"),
    ("CREATE ROLE doc_admin NOLOGIN BYPASSRLS; GRANT doc_admin TO airlock_gateway",
     "DROP ROLE doc_admin",
     "bypassrls", "role airlock_gateway can SET ROLE to doc_admin, which is BYPASSRLS"),
    ("ALTER TABLE billing.refunds OWNER TO airlock_gateway",
     "ALTER TABLE billing.refunds OWNER TO airlock_operator",
     "table owner", "billing.refunds is owned by airlock_gateway"),
    ("GRANT airlock_operator TO airlock_gateway", "REVOKE airlock_operator FROM airlock_gateway",
     "table owner", "billing.customers is owned by airlock_operator, which airlock_gateway can become"),
    ("GRANT SELECT ON billing.invoices TO airlock_gateway",
     "REVOKE SELECT ON billing.invoices FROM airlock_gateway",
     "direct grant", "billing.invoices grants SELECT to airlock_gateway"),
    ("GRANT SELECT (email) ON billing.customers TO PUBLIC",
     "REVOKE SELECT (email) ON billing.customers FROM PUBLIC",
     "direct grant", "billing.customers column email grants SELECT to PUBLIC"),
    ("ALTER TABLE billing.support_notes DISABLE ROW LEVEL SECURITY",
     "ALTER TABLE billing.support_notes ENABLE ROW LEVEL SECURITY",
     "rls", "billing.support_notes: row-level security is not enabled"),
    ("ALTER TABLE billing.invoices NO FORCE ROW LEVEL SECURITY",
     "ALTER TABLE billing.invoices FORCE ROW LEVEL SECURITY",
     "rls", "billing.invoices: row-level security is not forced"),
    ("CREATE POLICY by_setting ON billing.invoices AS RESTRICTIVE"
     " USING (tenant = current_setting('airlock.tenant')::name)",
     "DROP POLICY by_setting ON billing.invoices",
     "policy", "billing.invoices: policy by_setting is keyed on a setting"),
    ("ALTER POLICY tenant_isolation ON billing.refunds"
     " USING (tenant = current_setting('app.tenant')::name)",
     "ALTER POLICY tenant_isolation ON billing.refunds USING (tenant = current_user)",
     "policy", "billing.refunds: policy tenant_isolation is keyed on a setting"),
    ("CREATE POLICY wide ON billing.customers USING (true)",
     "DROP POLICY wide ON billing.customers",
     "policy", "billing.customers: permissive policy wide besides tenant_isolation"),
    ("CREATE VIEW billing.all_invoices AS SELECT * FROM billing.invoices",
     "DROP VIEW billing.all_invoices",
     "view", "view billing.all_invoices reads billing.invoices and is not security_invoker"),
    ("ALTER VIEW billing.customers_live SET (security_invoker = off)",
     "ALTER VIEW billing.customers_live SET (security_invoker = on)",
     "view", "view billing.customers_live reads billing.customers"),
    ("CREATE MATERIALIZED VIEW billing.note_copy AS SELECT * FROM billing.support_notes WITH NO DATA",
     "DROP MATERIALIZED VIEW billing.note_copy",
     "view", "materialized view billing.note_copy reads billing.support_notes"),
    ("CREATE FUNCTION public.doc_leak() RETURNS bigint LANGUAGE sql SECURITY DEFINER"
     " AS 'SELECT count(*) FROM billing.invoices'",
     "DROP FUNCTION public.doc_leak()",
     "security definer", "function doc_leak() is SECURITY DEFINER without a pinned search_path"),
    ("CREATE UNIQUE INDEX invoices_number_global ON billing.invoices (number)",
     "DROP INDEX billing.invoices_number_global",
     "tenant key", "billing.invoices: unique index invoices_number_global leaves out the tenant column"),
    ("ALTER TABLE billing.support_notes ADD CONSTRAINT notes_body_key UNIQUE (id, body)",
     "ALTER TABLE billing.support_notes DROP CONSTRAINT notes_body_key",
     "tenant key", "billing.support_notes: unique constraint notes_body_key leaves out"),
    ("CREATE TABLE public.doc_plans (name text PRIMARY KEY);"
     " ALTER TABLE billing.customers ADD CONSTRAINT customers_plan_fk FOREIGN KEY (plan)"
     " REFERENCES public.doc_plans (name) NOT VALID",
     "DROP TABLE public.doc_plans CASCADE",
     "tenant key", "billing.customers: foreign key customers_plan_fk"),
]


@pytest.mark.parametrize("fault,undo,check,detail", FAULTS, ids=[f[2] + ":" + f[3][:40] for f in FAULTS])
def test_each_database_fault_is_named(demo, fault, undo, check, detail):
    demo.sql(fault)
    try:
        p = demo.doctor()
    finally:
        demo.sql(undo)
    assert p.returncode == CONFIG, p.stdout + p.stderr
    fails = failures(p)
    assert any(c == check and detail in d for c, d in fails), p.stdout
    # Undone, the database passes again: the fault was the only one.
    p = demo.doctor()
    assert p.returncode == 0, p.stdout


def test_missing_role_fails(demo):
    p = ctl("doctor", "--db", demo.op, "--gateway-role", "no_such_role", "--pid", os.getpid(),
            check=False)
    assert p.returncode == CONFIG
    assert ("role", "role no_such_role does not exist") in failures(p)


def test_password_in_airlockd_argv(demo, tmp_path):
    # airlockd wipes a password given in --db from its arguments once read; what this check
    # finds is a process named airlockd that keeps one there (an older build, or one caught
    # before the wipe).  A copy of python3 named airlockd stands in for it, with a made-up
    # password: no real secret goes on a command line here.
    fake = tmp_path / "airlockd"
    shutil.copy(os.path.realpath("/usr/bin/python3"), fake)
    proc = subprocess.Popen([str(fake), "-S", "-c", "import time; time.sleep(60)", "--db",
                             "postgresql://airlock_gateway:made-up-secret@/airlock"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        p = ctl("doctor", "--db", demo.op, "--pid", proc.pid, check=False)
    finally:
        proc.kill()
        proc.wait(15)
    assert p.returncode == CONFIG, p.stdout
    assert any(c == "argv" and f"airlockd pid {proc.pid} has a password" in d
               for c, d in failures(p)), p.stdout
    assert "made-up-secret" not in p.stdout + p.stderr
    # The real daemon, given the dev-db's URL (its passfile names the password), passes.
    d = Daemon(["--db", demo.gw, "--tools", str(ROOT / "tools")])
    try:
        p = ctl("doctor", "--db", demo.op, "--pid", d.proc.pid, check=False)
        assert p.returncode == 0, p.stdout
        assert ("argv", "ok", "no password in the arguments of 1 running airlockd") in rows(p.stdout)
    finally:
        assert d.stop() == 0


def test_admin_key_file_readable_by_others(demo, tmp_path):
    key = tmp_path / "admin.key"
    ctl("token", "admin-key", key)
    for mode in (0o644, 0o640, 0o604):
        key.chmod(mode)
        p = demo.doctor("--admin-key-file", key)
        assert p.returncode == CONFIG, p.stdout
        assert ("admin key file", f"{key} is mode {mode:04o}: others than its owner may read or "
                "change the admin credential") in failures(p)
    key.chmod(0o600)
    assert demo.doctor("--admin-key-file", key).returncode == 0


def test_setuid_bwrap(demo, tmp_path):
    bwrap = tmp_path / "bwrap"
    shutil.copy("/usr/bin/bwrap", bwrap)
    bwrap.chmod(0o4755)
    assert bwrap.stat().st_mode & stat.S_ISUID
    # With code tools in the catalog, a failure ...
    p = demo.doctor("--bwrap", bwrap)
    assert p.returncode == CONFIG, p.stdout
    assert any(c == "bwrap" and f"{bwrap} is setuid" in d for c, d in failures(p)), p.stdout
    # ... without, a warning.
    no_code = tmp_path / "tools"
    no_code.mkdir()
    shutil.copy(ROOT / "tools" / "lookup_invoices.json", no_code)
    p = demo.doctor("--bwrap", bwrap, tools=no_code)
    assert p.returncode == 0, p.stdout
    assert any(c == "bwrap" and s == "warn" and "(no code tool in the catalog)" in d
               for c, s, d in rows(p.stdout)), p.stdout


def test_gvisor_unavailable(demo, tmp_path):
    # The demo catalog has a gvisor tool (run_python_isolated): a runsc that cannot start
    # a sandbox is a failure naming the level ...
    missing = tmp_path / "no-runsc"
    p = demo.doctor("--runsc", missing)
    assert p.returncode == CONFIG, p.stdout
    assert any(c == "gvisor" and "gVisor level cannot run" in d and '"gvisor"' in d
               for c, d in failures(p)), p.stdout
    # ... and with no gvisor tool in the catalog, a warning.
    ns_only = tmp_path / "tools"
    ns_only.mkdir()
    for name in ("lookup_invoices.json", "run_python.json"):
        shutil.copy(ROOT / "tools" / name, ns_only)
    p = demo.doctor("--runsc", missing, tools=ns_only)
    assert p.returncode == 0, p.stdout
    assert any(c == "gvisor" and s == "warn" and "(no gvisor tool in the catalog)" in d
               for c, s, d in rows(p.stdout)), p.stdout


def test_no_user_namespaces(demo):
    # user.max_user_namespaces belongs to the user namespace: set to 0 in a namespace of
    # its own, no namespace can be made below it, and nothing outside is touched.
    script = ("echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" doctor --db \"$1\" "
              "--pid 1 --tools \"$2\"")
    # In that namespace only root is mapped: the socket directory (0700, the server
    # account's) is opened to others for passage while the test runs.
    sock = os.path.join(demo.c.dir, "sock")
    mode = os.stat(sock).st_mode & 0o777
    os.chmod(sock, mode | 0o011)
    try:
        p = subprocess.run(["unshare", "--user", "--map-root-user", "--pid", "--fork",
                            "--mount-proc", "sh", "-c", script, str(CTL), demo.op,
                            str(ROOT / "tools")], capture_output=True, text=True, timeout=60)
    finally:
        os.chmod(sock, mode)
    assert p.returncode == CONFIG, p.stdout + p.stderr
    assert any(c == "user namespaces" and "an unprivileged user cannot make a user namespace" in d
               for c, d in failures(p)), p.stdout


def test_airlockd_refuses_to_start(demo):
    demo.sql("ALTER ROLE airlock_gateway BYPASSRLS")
    try:
        p = subprocess.run([str(AIRLOCKD), "--listen", f"127.0.0.1:{free_port()}", "--db", demo.gw,
                            "--tools", str(ROOT / "tools")], capture_output=True, text=True,
                           timeout=60)
    finally:
        demo.sql("ALTER ROLE airlock_gateway NOBYPASSRLS")
    assert p.returncode == CONFIG, p.stdout + p.stderr
    out = p.stdout + p.stderr
    assert "refusing to serve: self-check failed" in out
    assert "bypassrls: role airlock_gateway is BYPASSRLS" in out


def test_airlockd_waits_while_the_fault_stands(demo):
    # The database is down at start and comes back with a fault: the daemon serves nothing
    # (readyz 503) and says why, then serves once the fault is gone.
    demo.sql("ALTER ROLE airlock_gateway SUPERUSER")
    try:
        ctl("dev-db", "stop", "--dir", demo.c.dir)
        try:
            d = Daemon(["--db", demo.gw, "--tools", str(ROOT / "tools")])
            assert requests.get(d.url + "/readyz", timeout=5).status_code == 503
        finally:
            ctl("dev-db", "start", "--dir", demo.c.dir)
        d.wait_log("self-check failed: superuser: role airlock_gateway is SUPERUSER")
        assert requests.get(d.url + "/readyz", timeout=5).status_code == 503
    finally:
        deadline = time.monotonic() + 10
        while demo.sql("ALTER ROLE airlock_gateway NOSUPERUSER", check=False).returncode != 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    deadline = time.monotonic() + 15
    while requests.get(d.url + "/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, d.logtext()
        time.sleep(0.2)
    assert d.stop() == 0
