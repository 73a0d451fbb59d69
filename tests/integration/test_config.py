"""A daemon packaged like one: --version on every program (the Makefile's VERSION),
airlockd --config FILE (a key for every flag; the environment and flags override the file),
--check-config (0 or 78), the manual pages (rendered by groff without a warning, exit codes
documented), and `make install` into a DESTDIR with a unit systemd-analyze accepts."""
import json
import os
import re
import shutil
import subprocess

import requests

from conftest import AIRLOCKD, BUILD, CTL, ROOT, Daemon

CONFIG = 78
USAGE = 64
JSON = {"Content-Type": "application/json"}


def makefile_version():
    m = re.search(r"^VERSION\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert m, "no VERSION in the Makefile"
    return m.group(1)


def test_every_program_has_version():
    v = makefile_version()
    for prog in ("airlockd", "airlockctl", "airlock-sandbox"):
        p = subprocess.run([str(BUILD / prog), "--version"], capture_output=True, text=True,
                           timeout=10)
        assert p.returncode == 0 and p.stdout == f"{prog} {v}\n", (prog, p.stdout, p.stderr)


def check(*args, env=None):
    return subprocess.run([str(AIRLOCKD), *map(str, args), "--check-config"],
                          capture_output=True, text=True, timeout=10, env=env, cwd=ROOT)


def conf(tmp_path, text, name="airlockd.conf", mode=0o600):
    f = tmp_path / name
    f.write_text(text)
    f.chmod(mode)
    return f


# A valid value for every key; the test below fails when airlockd gains a flag without one.
SAMPLES = {
    "listen": "127.0.0.1:9", "db": "host=/tmp dbname=x", "tools": str(ROOT / "tools"),
    "admin-key-file": "/nonexistent/admin.key", "trust-proxy": "127.0.0.1",
    "allow-origin": "http://a.example", "max-body": "2048", "max-depth": "8",
    "max-batch": "3", "conn-timeout": "5", "grace": "1", "max-conns": "10",
    "max-conns-per-client": "5", "threads": "1", "workers": "2", "queue": "10",
    "queue-per-tenant": "5", "key-ttl": "60", "key-waiters": "2/4", "sandboxes": "1",
    "sandboxes-per-tenant": "1", "warm": "0", "warm-per-tenant": "1", "rate-client": "1/2", "rate-token": "1/2",
    "rate-tenant": "1/2", "verbose": "true", "db-file": None,
}


def help_options():
    out = subprocess.run([str(AIRLOCKD), "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"^\s+(?:-\w, )?--([a-z-]+)", out, re.M)) - {
        "config", "check-config", "version", "help"}


def test_every_flag_has_a_key(tmp_path):
    assert help_options() == set(SAMPLES)
    dbfile = conf(tmp_path, "host=/tmp dbname=x\n", "db.conninfo")
    SAMPLES["db-file"] = str(dbfile)
    for key, value in SAMPLES.items():
        f = conf(tmp_path, f"# {key}\n\n  {key} = {value}  \n")
        p = check("--config", f)
        assert p.returncode == 0 and "configuration ok" in p.stdout, (key, p.stderr)
        # Quoted values work too.
        f = conf(tmp_path, f'{key} = "{value}"\n')
        assert check("--config", f).returncode == 0, key


def test_check_config_refusals(tmp_path):
    cases = [
        ("bogus = 1\n", ":1: unknown key 'bogus'"),
        ("# fine\nmax-batch = 0\n", ":2: bad value for max-batch"),
        ("listen 127.0.0.1:1\n", ":1: want key = value"),
        ("verbose = maybe\n", "verbose wants true or false"),
        ("config = other.conf\n", "unknown key 'config'"),
        ("listen = localhost:8080\n", "not a numeric"),
        (f"tools = {tmp_path}/missing\n", "missing"),
    ]
    for text, msg in cases:
        p = check("--config", conf(tmp_path, text))
        assert p.returncode == CONFIG and msg in p.stderr, (text, p.stderr)
    p = check("--config", tmp_path / "absent.conf")
    assert p.returncode == CONFIG and "absent.conf" in p.stderr
    # A password in a file others may read: refused, as for --db-file.
    p = check("--config", conf(tmp_path, "db = host=/tmp password=hunter2\n", mode=0o644))
    assert p.returncode == CONFIG and "chmod 600" in p.stderr and "hunter2" not in p.stderr
    assert check("--config", conf(tmp_path, "db = host=/tmp password=hunter2\n")).returncode == 0
    # A secret file named by the configuration is checked too.
    key = conf(tmp_path, "alkadm_x\n", "admin.key", mode=0o644)
    p = check("--config", conf(tmp_path, f"admin-key-file = {key}\n"))
    assert p.returncode == CONFIG and "open to group or others" in p.stderr
    # Without --check-config a bad file stops the start with 78 too; a bad flag is usage.
    p = subprocess.run([str(AIRLOCKD), "--config", conf(tmp_path, "bogus = 1\n")],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == CONFIG
    p = subprocess.run([str(AIRLOCKD), "--max-batch", "0"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == USAGE
    assert check("--max-batch", "0").returncode == CONFIG


def test_environment_and_flags_override_the_file(tmp_path):
    f = conf(tmp_path, f"tools = {tmp_path}/missing\n")
    assert check("--config", f).returncode == CONFIG
    env = dict(os.environ, AIRLOCK_TOOLS=str(ROOT / "tools"))
    assert check("--config", f, env=env).returncode == 0
    assert check("--config", f, "--tools", tmp_path / "gone", env=env).returncode == CONFIG
    env = dict(os.environ, AIRLOCK_CONFIG=str(f))
    assert check(env=env).returncode == CONFIG
    assert check("--tools", ROOT / "tools", env=env).returncode == 0


def batch(d, n):
    return requests.post(d.url + "/rpc", headers=JSON, timeout=10, data=json.dumps(
        [{"jsonrpc": "2.0", "id": i, "method": "ping"} for i in range(n)])).json()


def test_daemon_runs_from_the_file(cluster, tmp_path):
    f = conf(tmp_path, f"db = {cluster.gateway_url}\ntools = {ROOT / 'tools'}\n"
                       "max-batch = 2\nallow-origin = http://a.example\n")
    d = Daemon(["--config", str(f)])
    try:
        assert "limit" in batch(d, 3)["error"]["message"]
        assert len(batch(d, 2)) == 2
        h = dict(JSON, Origin="http://a.example")
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert requests.post(d.url + "/mcp", headers=h, data=body, timeout=5).status_code == 200
    finally:
        assert d.stop() == 0
    # Flags override the file; a repeatable flag replaces the file's list.
    d = Daemon(["--config", str(f), "--max-batch", "5", "--allow-origin", "http://b.example"])
    try:
        assert len(batch(d, 3)) == 3
        h = dict(JSON, Origin="http://a.example")
        assert requests.post(d.url + "/mcp", headers=h, data=body, timeout=5).status_code == 403
    finally:
        assert d.stop() == 0


PAGES = {"airlockd.8": "airlockd", "airlockctl.1": "airlockctl",
         "airlock-sandbox.1": "airlock-sandbox", "airlock-tools.5": "airlock-tools"}


def render(path):
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", str(path)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0 and p.stderr == "", (path, p.stderr)
    return re.sub(r".\x08", "", p.stdout)


def test_manual_pages():
    for page, name in PAGES.items():
        text = render(ROOT / "man" / page)
        assert f"{name} -" in text or f"{name} \u2010" in text, page
        if page != "airlock-tools.5":
            assert "EXIT STATUS" in text, page
    assert "78" in render(ROOT / "man" / "airlockd.8")
    # Every airlockd flag is in its page.
    text = render(ROOT / "man" / "airlockd.8")
    for opt in help_options() | {"config", "check-config", "version"}:
        assert f"--{opt}" in text.replace("\u2010", "-"), opt


def test_make_install_into_destdir(tmp_path):
    dest = tmp_path / "stage"
    p = subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", "PREFIX=/usr",
                        f"BUILD={BUILD.relative_to(ROOT)}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    root = dest / "usr"
    for prog in ("airlockd", "airlockctl", "airlock-sandbox"):
        assert os.access(root / "bin" / prog, os.X_OK)
    v = makefile_version()
    out = subprocess.run([str(root / "bin" / "airlockd"), "--version"], capture_output=True,
                         text=True).stdout
    assert out == f"airlockd {v}\n"
    migrations = sorted(x.name for x in (root / "share/airlock/migrations").iterdir())
    assert migrations == sorted(x.name for x in (ROOT / "migrations").glob("*.sql"))
    assert (root / "share/airlock/tools/get_customer.json").exists()
    assert (root / "share/airlock/airlockd.conf.example").exists()
    for page in PAGES:
        installed = root / "share/man" / f"man{page[-1]}" / page
        assert f'"Airlock {v}"' in installed.read_text()
        assert "/usr/share/airlock" in render(installed) or page != "airlockd.8"
    unit = (root / "lib/systemd/system/airlockd.service").read_text()
    assert "ExecStart=/usr/bin/airlockd --config /etc/airlock/airlockd.conf\n" in unit
    assert "/usr/local" not in unit
    # The example configuration passes the check, but for the files it names.
    example = (root / "share/airlock/airlockd.conf.example").read_text()
    example = re.sub(r"^(db-file|tools|admin-key-file) = .*$", "", example, flags=re.M)
    f = tmp_path / "example.conf"
    f.write_text(example + f"tools = {ROOT / 'tools'}\n")
    assert check("--config", f).returncode == 0

    # systemd-analyze verify on the installed unit, its programs taken from the stage.
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing"
    staged = tmp_path / "airlockd.service"
    staged.write_text(unit.replace("/usr/bin/", f"{root}/bin/"))
    p = subprocess.run([analyze, "verify", "--man=no", str(staged)], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr
