"""airlockctl dev-db: the private cluster's lifecycle, roles, authentication, socket-only
listening and directory rule; and airlockctl's usage errors."""
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import CTL, ROOT, Cluster, ctl, free_port

USAGE = 64
UNAVAILABLE = 69


def run_ctl(*args, cwd=None, env=None):
    base = {k: v for k, v in os.environ.items()
            if k not in ("AIRLOCK_DEV_DIR", "AIRLOCK_DB", "AIRLOCK_MIGRATIONS")}
    base.update(env or {})
    return subprocess.run([str(CTL), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=base, timeout=120)


def psql_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = "/dev/null"
    return env


def test_start_again_reuses_running_cluster(cluster):
    p = ctl("dev-db", "start", "--dir", cluster.dir)
    assert "already running" in p.stdout
    assert cluster.psql("select 1") == "1\n"


def test_status_running_is_one_line(cluster):
    p = ctl("dev-db", "status", "--dir", cluster.dir)
    assert len(p.stdout.splitlines()) == 1
    assert "running" in p.stdout


def test_plural_noun_accepted(cluster):
    assert ctl("dev-dbs", "status", "--dir", cluster.dir).returncode == 0


def test_urls_connect_as_their_roles(cluster):
    assert cluster.operator_url.startswith("postgresql://airlock_operator@/airlock?")
    assert cluster.gateway_url.startswith("postgresql://airlock_gateway@/airlock?")
    assert f"host={os.path.realpath(cluster.dir)}/sock" in cluster.operator_url
    assert cluster.psql("select current_user, current_database()") == "airlock_operator|airlock\n"
    assert cluster.psql("select current_user", url=cluster.gateway_url) == "airlock_gateway\n"
    # --role operator is the default, spelled out.
    assert ctl("dev-db", "url", "--role", "operator", "--dir", cluster.dir).stdout.strip() \
        == cluster.operator_url


def test_urls_hold_no_password(cluster):
    """A URL ends up on command lines (psql's, airlockd's), which any local user reads in
    /proc/PID/cmdline: it names the passfile instead of holding the password."""
    pws = cluster.passwords()
    passfile = f"passfile={os.path.realpath(cluster.dir)}/pgpass"
    for url in (cluster.operator_url, cluster.gateway_url):
        assert not any(pw in url for pw in pws.values()), url
        assert ":" not in url.split("://", 1)[1].split("@", 1)[0]
        assert "password" not in url
        assert passfile in url
    # The URL alone is enough: no PGPASSWORD, no ~/.pgpass.
    p = subprocess.run(["psql", "-X", "-At", "-w", cluster.gateway_url, "-c", "select 1"],
                       capture_output=True, text=True, env=psql_env(), timeout=30)
    assert p.stdout == "1\n", p.stderr


def test_default_dir_from_environment(cluster):
    p = run_ctl("dev-db", "url", env={"AIRLOCK_DEV_DIR": cluster.dir})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == cluster.operator_url


def test_no_tcp_listener(cluster):
    assert cluster.psql("show listen_addresses") == "\n"
    assert cluster.psql("select inet_server_addr() is null") == "t\n"
    # No TCP socket in the postmaster's descriptors.
    with open(os.path.join(cluster.dir, "data", "postmaster.pid")) as f:
        pid = int(f.readline())
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            rows = [line.split() for line in f.readlines()[1:]]
        assert not [r for r in rows if r[9] in inodes], f"postgres holds a TCP socket ({table})"


def test_passfile(cluster):
    path = os.path.join(cluster.dir, "pgpass")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    roles = cluster.passwords()
    assert set(roles) == {"airlock_operator", "airlock_gateway"}
    assert all(len(pw) >= 32 for pw in roles.values())
    assert roles["airlock_operator"] != roles["airlock_gateway"]
    # Each line names this dev-db's socket directory and port, no wildcard host.
    sock = os.path.join(os.path.realpath(cluster.dir), "sock")
    with open(path) as f:
        lines = [x for x in f.read().splitlines() if x and not x.startswith("#")]
    assert all(x.startswith(f"{sock}:5432:airlock:") for x in lines), lines
    # The superuser's password is gone once the roles exist; no other copy is kept.
    assert not os.path.exists(os.path.join(cluster.dir, "bootstrap.pw"))
    assert not os.path.exists(os.path.join(cluster.dir, "passwords"))


def test_layout_modes(cluster):
    assert stat.S_IMODE(os.stat(os.path.join(cluster.dir, "data")).st_mode) == 0o700
    # The mktemp directory (0700) was opened to the server account.
    assert stat.S_IMODE(os.stat(cluster.dir).st_mode) & 0o005 == 0o005
    # The socket directory is the server account's alone (root gets in regardless).
    st = os.stat(os.path.join(cluster.dir, "sock"))
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == (pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid())
    assert os.path.exists(os.path.join(cluster.dir, "sock", ".s.PGSQL.5432"))
    assert len(os.path.join(os.path.realpath(cluster.dir), "sock", ".s.PGSQL.5432")) < 100


def test_gateway_role_attributes(cluster):
    row = cluster.psql("select rolsuper, rolinherit, rolbypassrls, rolcreaterole, rolcreatedb,"
                       " rolreplication, rolcanlogin from pg_roles"
                       " where rolname = 'airlock_gateway'")
    assert row == "f|f|f|f|f|f|t\n"
    # It owns nothing.
    assert cluster.psql("select count(*) from pg_class c join pg_roles r on r.oid = c.relowner"
                        " where r.rolname = 'airlock_gateway'") == "0\n"


def test_operator_role_attributes(cluster):
    row = cluster.psql("select rolsuper, rolcreaterole, rolbypassrls, rolcanlogin from pg_roles"
                       " where rolname = 'airlock_operator'")
    assert row == "f|t|f|t\n"
    assert cluster.psql("select pg_get_userbyid(datdba) from pg_database"
                        " where datname = 'airlock'") == "airlock_operator\n"
    # The bootstrap superuser is the only superuser.
    assert cluster.psql("select string_agg(rolname, ',') from pg_roles where rolsuper") \
        == "airlock_bootstrap\n"


def test_public_privileges_revoked(cluster):
    assert cluster.psql("select count(*) from pg_database d, aclexplode(d.datacl) a"
                        " where d.datname = 'airlock' and a.grantee = 0") == "0\n"
    # TEMP is granted to the gateway by 0003_tenancy.sql, for the tool catalog's check
    # (a temporary view in a rolled-back transaction); CREATE never.
    assert cluster.psql("select has_database_privilege('airlock_gateway', 'airlock', 'CREATE'),"
                        " has_schema_privilege('airlock_gateway', 'public', 'CREATE')") \
        == "f|f\n"


def without_passfile(url):
    return url.split("&passfile=", 1)[0]


def test_wrong_or_missing_password_refused(cluster):
    # Passwords go through the environment, never on psql's command line.
    rest = without_passfile(cluster.gateway_url).split("@", 1)[1]
    env = psql_env()
    env["PGPASSWORD"] = "0" * 48
    p = subprocess.run(["psql", "-X", "-w", f"postgresql://airlock_gateway@{rest}", "-c", "select 1"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert p.returncode != 0
    assert "password authentication failed" in p.stderr
    p = subprocess.run(["psql", "-X", "-w", f"postgresql://airlock_gateway@{rest}", "-c", "select 1"],
                       capture_output=True, text=True, env=psql_env(), timeout=30)
    assert p.returncode != 0
    assert "password" in p.stderr
    # Nor does the superuser get in without the password that was thrown away, not even
    # with the passfile.
    boot = f"postgresql://airlock_bootstrap@{rest}&passfile={cluster.dir}/pgpass"
    p = subprocess.run(["psql", "-X", "-w", boot, "-c", "select 1"], capture_output=True,
                       text=True, env=psql_env(), timeout=30)
    assert p.returncode != 0


def test_socket_dir_closed_to_other_users(cluster):
    """Another local account cannot reach the server at all, even knowing a password."""
    sock = os.path.join(os.path.realpath(cluster.dir), "sock")
    if os.geteuid() != 0:
        # The server runs as this account, which alone may enter the socket directory.
        st = os.stat(sock)
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
        return
    name = f"alkprobe{os.getpid() % 100000}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    name], check=True, capture_output=True, timeout=30)
    try:
        pw = pwd.getpwnam(name)
        env = psql_env()
        env["PGPASSWORD"] = cluster.passwords()["airlock_gateway"]
        url = without_passfile(cluster.gateway_url)
        argv = ["psql", "-X", "-At", "-w", url, "-c", "select current_user"]
        # The same command, as root, gets in: the password is right.
        p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
        assert p.stdout == "airlock_gateway\n", p.stderr
        p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30, cwd="/",
                           user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        assert p.returncode != 0
        assert "Permission denied" in p.stderr, p.stderr
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=30)


def test_ctl_warns_of_a_password_on_its_command_line():
    p = run_ctl("tenant", "list", "--db",
                "postgresql://airlock_operator:not-the-password@/airlock?host=/nonexistent-alk")
    assert p.returncode == UNAVAILABLE
    assert "password is on the command line" in p.stderr
    assert "not-the-password" not in p.stderr
    # From the environment (readable by root and the same account only), it is not.
    p = run_ctl("tenant", "list", env={"AIRLOCK_DB": "postgresql://airlock_operator:"
                                       "not-the-password@/airlock?host=/nonexistent-alk"})
    assert p.returncode == UNAVAILABLE and "command line" not in p.stderr


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().decode(errors="replace")


def test_demo_keeps_secrets_out_of_argv():
    """scripts/demo.sh, as `make demo` runs it (on a dev-db and port of its own): airlockd
    comes up ready, and no password is on its command line."""
    path = tempfile.mkdtemp(prefix="alk-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k not in ("AIRLOCK_DB", "AIRLOCK_MIGRATIONS")
           and not k.startswith("PG")}
    env.update(AIRLOCK_DEV_DIR=path, AIRLOCK_DEMO_PORT=str(free_port()))
    log = tempfile.TemporaryFile()
    demo = subprocess.Popen(["sh", "scripts/demo.sh"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{env['AIRLOCK_DEMO_PORT']}/readyz"
        deadline = time.monotonic() + 90
        while True:
            assert demo.poll() is None, f"demo exited {demo.returncode}: {read_all(log)}"
            assert time.monotonic() < deadline, read_all(log)
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        # The script execs airlockd: same process.
        argv = cmdline(demo.pid)
        assert "airlockd" in argv and "--db" in argv
        pws = Cluster(path).passwords()
        assert not any(pw in argv for pw in pws.values()), argv
        assert "passfile=" in argv
        assert "password" not in read_all(log)
    finally:
        demo.terminate()
        demo.wait(30)
        run_ctl("dev-db", "stop", "--dir", path)
        shutil.rmtree(path, ignore_errors=True)


def read_all(f):
    f.seek(0)
    return f.read().decode(errors="replace")


def test_lifecycle_start_stop_status():
    path = tempfile.mkdtemp(prefix="alk-", dir="/tmp")
    try:
        assert "no cluster" in run_ctl("dev-db", "status", "--dir", path).stdout
        assert run_ctl("dev-db", "status", "--dir", path).returncode == UNAVAILABLE
        p = run_ctl("dev-db", "url", "--dir", path)
        assert p.returncode == UNAVAILABLE and "dev-db start" in p.stderr
        p = run_ctl("dev-db", "start", "--dir", path)
        assert p.returncode == 0, p.stderr
        assert "started" in p.stdout
        url = ctl("dev-db", "url", "--dir", path).stdout.strip()
        assert run_ctl("dev-db", "status", "--dir", path).returncode == 0
        p = run_ctl("dev-db", "stop", "--dir", path)
        assert p.returncode == 0 and "stopped" in p.stdout
        p = run_ctl("dev-db", "status", "--dir", path)
        assert p.returncode == UNAVAILABLE
        assert len(p.stdout.splitlines()) == 1 and "stopped" in p.stdout
        # Stopping a stopped cluster is fine.
        p = run_ctl("dev-db", "stop", "--dir", path)
        assert p.returncode == 0 and "not running" in p.stdout
        # Started again, it keeps its data and passwords.
        assert run_ctl("dev-db", "start", "--dir", path).returncode == 0
        assert ctl("dev-db", "url", "--dir", path).stdout.strip() == url
        p = subprocess.run(["psql", "-X", "-At", url, "-c", "select current_user"],
                           capture_output=True, text=True, timeout=30)
        assert p.stdout == "airlock_operator\n", p.stderr
        # A dev-db made before passfiles (role and password per line in DIR/passwords) gets
        # its passfile at the next start, and the old file goes.
        pws = Cluster(path).passwords()
        os.unlink(os.path.join(path, "pgpass"))
        with open(os.open(os.path.join(path, "passwords"), os.O_WRONLY | os.O_CREAT, 0o600),
                  "w") as f:
            f.write("".join(f"{r} {pw}\n" for r, pw in pws.items()))
        assert run_ctl("dev-db", "start", "--dir", path).returncode == 0
        assert Cluster(path).passwords() == pws
        assert not os.path.exists(os.path.join(path, "passwords"))
        p = subprocess.run(["psql", "-X", "-At", url, "-c", "select current_user"],
                           capture_output=True, text=True, timeout=30)
        assert p.stdout == "airlock_operator\n", p.stderr
    finally:
        run_ctl("dev-db", "stop", "--dir", path)
        shutil.rmtree(path, ignore_errors=True)


def test_default_dir_is_var_when_reachable():
    path = tempfile.mkdtemp(prefix="alk-", dir="/tmp")
    try:
        os.chmod(path, 0o755)
        p = run_ctl("dev-db", "url", cwd=path)
        assert p.returncode == UNAVAILABLE
        assert f"{os.path.realpath(path)}/var" in p.stderr
        assert not os.path.exists(os.path.join(path, "var"))
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the rule differs when not root")
def test_default_dir_in_tmp_when_postgres_cannot_reach():
    path = tempfile.mkdtemp(prefix="alk-", dir="/tmp")  # 0700: closed to postgres
    try:
        sub = os.path.join(path, "checkout")
        os.mkdir(sub)
        p = run_ctl("dev-db", "url", cwd=sub)
        digest = hashlib.sha256(os.path.realpath(sub).encode()).hexdigest()[:12]
        assert p.returncode == UNAVAILABLE
        assert f"/tmp/airlock-{digest}" in p.stderr
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_dir_too_long_for_socket():
    p = run_ctl("dev-db", "start", "--dir", "/tmp/" + "x" * 100)
    assert p.returncode == USAGE
    assert "too long" in p.stderr
    assert not os.path.exists("/tmp/" + "x" * 100)


@pytest.mark.parametrize("args", [
    (),
    ("nope",),
    ("dev-db",),
    ("dev-db", "bogus"),
    ("dev-db", "start", "--bogus"),
    ("dev-db", "url", "--dir"),
    ("dev-db", "url", "--role", "superuser"),
    ("dev-db", "start", "stop"),
    ("migrate", "--db"),
    ("migrate", "--nope"),
    ("migrate", "extra"),
    ("help", "nope"),
])
def test_bad_usage_exits_64(args):
    p = run_ctl(*args)
    assert p.returncode == USAGE, p
    assert p.stderr.strip()
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("args", [
    ("--help",), ("-h",), ("help",), ("dev-db", "--help"), ("migrate", "--help"),
    ("help", "migrate"), ("dev-db", "start", "--help"),
])
def test_help_exits_0(args):
    p = run_ctl(*args)
    assert p.returncode == 0
    assert p.stdout.startswith("usage: airlockctl")
