"""airlockctl audit verify|export|replay|archive on a long record: a summary on stderr at the
end, always, and a progress line (records done of how many, rate, time left) while stderr
is a terminal, checked through a pseudo-terminal; stdout stays the command's own output."""
import os
import pty
import re
import select
import subprocess

import pytest

from conftest import CTL, ROOT, ctl, own_cluster

N = 3000
SUMMARY = re.compile(r"^airlockctl audit (\w+): (\d+) records? in [0-9.]+ s \((\d+)/s\)")


@pytest.fixture(scope="module")
def db():
    with own_cluster("alk-prog-") as c:
        ctl("tenant", "add", "progress", "--db", c.operator_url)
        c.psql("INSERT INTO airlock.calls (id, at, tenant, token_id, method, tool, arguments,"
               " outcome, duration_ms, client) SELECT gen_random_uuid(),"
               " now() - interval '1 hour', 'progress', 'abcdef012345', 'tools/call',"
               " 'get_customer', jsonb_build_object('customer_id', i), 'ok', 1, '127.0.0.1'"
               f" FROM generate_series(1, {N}) i")
        ctl("audit", "seal", "--db", c.operator_url)
        yield c


def summary(stderr, what):
    lines = [x for x in stderr.splitlines() if x.startswith(f"airlockctl audit {what}:")]
    assert len(lines) == 1, stderr
    m = SUMMARY.match(lines[0])
    assert m and m.group(1) == what, lines[0]
    return int(m.group(2)), lines[0]


def test_summary_without_a_terminal(db):
    p = ctl("audit", "verify", "--db", db.operator_url)
    n, line = summary(p.stderr, "verify")
    assert n == N and "checkpoints, 0 problems" in line
    assert "\r" not in p.stderr and p.stdout.startswith("intact:")
    p = ctl("audit", "export", "--format", "jsonl", "--db", db.operator_url)
    assert summary(p.stderr, "export")[0] == N
    assert len(p.stdout.splitlines()) == N and "\r" not in p.stderr
    p = ctl("audit", "replay", "--json", "--tools", ROOT / "tools", "--db", db.operator_url,
            check=False)
    assert summary(p.stderr, "replay")[0] == N
    assert p.stdout.splitlines()[-1].startswith('{"summary"')


def on_pty(*args):
    """Runs airlockctl with stderr on a pseudo-terminal; returns (rc, stdout, terminal text)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(CTL), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    tty = b""
    out = []
    # stdout is read in a thread-free way: it is drained after the terminal closes, so
    # keep it small (verify and archive print one line; export goes to a file here).
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        tty += chunk
    os.close(master)
    out.append(proc.stdout.read())
    rc = proc.wait(60)
    return rc, b"".join(out).decode(), tty.decode(errors="replace")


def test_progress_lines_on_a_terminal(db, tmp_path):
    rc, out, tty = on_pty("audit", "verify", "--db", db.operator_url)
    assert rc == 0 and out.startswith("intact:")
    # At least one progress line: records done of the total, the rate, the time left.
    lines = re.findall(r"\r\x1b\[Kverify: (\d+)/(\d+) records \((\d+)%\), (\d+)/s, (\d+) s left",
                       tty)
    assert lines, repr(tty[-500:])
    assert all(int(t) == N and int(d) <= N for d, t, *_ in lines)
    # The line is cleared before the summary, which ends the terminal's output.
    assert tty.rstrip("\r\n").split("\r\x1b[K")[-1].startswith("airlockctl audit verify: 3000 records")

    rc, out, tty = on_pty("audit", "archive", "--before", "now", "--out", tmp_path / "a.jsonl",
                          "--db", db.operator_url)
    assert rc == 0 and out.startswith("archived 3000 records")
    assert re.search(r"\r\x1b\[Karchive: \d+/3000 records \(\d+%\), \d+/s, \d+ s left", tty), tty
    assert "airlockctl audit archive: 3000 records in" in tty
