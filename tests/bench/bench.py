"""bench.py: make bench.  Starts its own PostgreSQL (airlockctl dev-db) and airlockd on a free
port, seeds two tenants with thousands of customers and 100k+ invoices, and measures, in one
run, airlockd with wrk against pgbench running the same SQL with the same client count:
audited reads (and pgbench with and without the audit row), a keyed write (and pgbench's same
write transaction), a dry-run, two airlockd instances on one database against one, and a
code step cold and warm at each isolation level against the bare interpreter
(scripts/bench-sandbox.sh).
Prints a table and writes it, with the machine and the date, to docs/benchmarks.md.

Environment: BENCH_SECONDS (per measurement, default 5), BENCH_REPEAT (runs per measurement,
the best kept, default 2), BENCH_CONNS (default "32 256"), BENCH_SMOKE=1 (a tiny data set,
nothing written under docs/: what make check runs), BENCH_OUT (the report's path),
BENCH_SANDBOX_RUNS (the code steps' runs, default 15).
It fails only when something breaks (a daemon that does not start, a run with no successful
answer), never because a figure is low."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BUILD = ROOT / os.environ.get("AIRLOCK_BUILD", "build")
CTL = BUILD / "airlockctl"
AIRLOCKD = BUILD / "airlockd"
SMOKE = os.environ.get("BENCH_SMOKE") == "1"
SECONDS = int(os.environ.get("BENCH_SECONDS", "1" if SMOKE else "5"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "1" if SMOKE else "2"))
CONNS = [int(c) for c in os.environ.get("BENCH_CONNS", "8" if SMOKE else "32 256").split()]
CUSTOMERS = 100 if SMOKE else 3000       # per tenant
INVOICES = 2000 if SMOKE else 60000      # per tenant
TICK = os.sysconf("SC_CLK_TCK")


def ctl(*args):
    p = subprocess.run([str(CTL), *map(str, args)], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        sys.exit(f"bench: airlockctl {' '.join(map(str, args))} exited {p.returncode}:\n"
                 f"{p.stdout}{p.stderr}")
    return p.stdout.strip()


def psql(url, sql):
    p = subprocess.run(["psql", "-X", "-At", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(f"bench: psql failed: {p.stderr}")
    return p.stdout.strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SEED = """
SET ROLE tenant_{t};
INSERT INTO billing.customers (email, name, company, plan)
SELECT 'c' || i || '@{t}.example', 'Customer ' || i, 'Company ' || (i % 300),
       (ARRAY['free', 'starter', 'pro', 'enterprise'])[1 + i % 4]
  FROM generate_series(1, {customers}) i;
INSERT INTO billing.invoices (customer_id, number, status, currency, amount, issued_at, due_at,
    paid_at)
SELECT c.id, '{T}-' || lpad(i::text, 7, '0'), s.status, 'USD', (i % 5000) + 0.99,
       now() - make_interval(days => i % 700), now() - make_interval(days => i % 700 - 30),
       CASE WHEN s.status = 'paid' THEN now() - make_interval(days => i % 700 - 5) END
  FROM generate_series(1, {invoices}) i
  JOIN LATERAL (SELECT (ARRAY['open', 'paid', 'paid', 'void', 'refunded'])[1 + i % 5]
                AS status) s ON true
  JOIN billing.customers c ON c.email = 'c' || (1 + i % {customers}) || '@{t}.example';
RESET ROLE;
"""


class Daemon:
    def __init__(self, db, workers=8):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="airlockd-bench-", suffix=".log",
                                               delete=False)
        rate = "1000000/1000000"
        self.proc = subprocess.Popen(
            [str(AIRLOCKD), "--listen", f"127.0.0.1:{self.port}", "--db", db,
             "--tools", str(ROOT / "tools"), "--workers", str(workers),
             "--rate-client", rate, "--rate-token", rate, "--rate-tenant", rate,
             "--max-conns-per-client", "1024", "--queue", "8192", "--queue-per-tenant",
             "4096"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        log = Path(self.log.name).read_text()
        self.stop()
        sys.exit("bench: airlockd did not come up:\n" + log)

    def cpu_ticks(self):
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])        # utime + stime

    def peak_rss_kib(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.unlink(self.log.name)


def wrk(daemons, conns, env):
    """Runs wrk for SECONDS against each daemon at once (conns split between them).
    Returns {rps, p50, p99 (ms), cpu_us per call, rss (MiB)}."""
    per = max(1, conns // len(daemons))
    before = [d.cpu_ticks() for d in daemons]
    procs = [subprocess.Popen(["wrk", "-t", "2", "-c", str(per), "-d", f"{SECONDS}s",
                               "--latency", "-s", str(HERE / "call.lua"), d.url],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, **env}) for d in daemons]
    outs = [p.communicate(timeout=SECONDS + 120)[0] for p in procs]
    after = [d.cpu_ticks() for d in daemons]
    results = []
    for out in outs:
        line = next((l for l in out.splitlines() if l.startswith("BENCH ")), None)
        if line is None:
            sys.exit("bench: wrk gave no result:\n" + out)
        results.append(json.loads(line[6:]))
    good = sum(r["requests"] - r["bad"] for r in results)
    if good == 0:
        sys.exit(f"bench: no successful answer in {SECONDS} s:\n" + "\n".join(outs))
    secs = max(r["duration_us"] for r in results) / 1e6
    cpu = sum(a - b for a, b in zip(after, before)) / TICK
    return {"rps": good / secs, "p50": max(r["p50_us"] for r in results) / 1e3,
            "p99": max(r["p99_us"] for r in results) / 1e3,
            "cpu_us": cpu * 1e6 / max(1, sum(r["requests"] for r in results)),
            "rss": max(d.peak_rss_kib() for d in daemons) / 1024,
            "bad": sum(r["bad"] for r in results)}


def pgbench(url, script, conns, lo, hi):
    """Runs pgbench; its clients connect one by one (about 20 a second here) within its
    duration, so it is given that much longer, and its rate excludes that time."""
    logdir = tempfile.mkdtemp(prefix="pgbench-")
    try:
        p = subprocess.run(["pgbench", "-n", "-M", "prepared", "-c", str(conns), "-j", "2",
                            "-T", str(SECONDS + conns // 20), "-D", f"lo={lo}", "-D", f"hi={hi}",
                            "-f", str(HERE / script), "-l", "--log-prefix",
                            os.path.join(logdir, "tx"), url],
                           capture_output=True, text=True, timeout=SECONDS + 120, cwd=logdir)
        if p.returncode != 0:
            sys.exit(f"bench: pgbench {script} failed:\n{p.stdout}{p.stderr}")
        tps = next((float(l.split()[2]) for l in p.stdout.splitlines()
                    if l.startswith("tps = ")), None)
        if tps is None:
            sys.exit(f"bench: pgbench {script} gave no figure:\n{p.stdout}{p.stderr}")
        lat = []
        for f in Path(logdir).iterdir():
            lat += [int(l.split()[2]) for l in f.read_text().splitlines() if l]
        lat.sort()
        return {"rps": tps, "p50": lat[len(lat) // 2] / 1e3 if lat else 0,
                "p99": lat[min(len(lat) - 1, len(lat) * 99 // 100)] / 1e3 if lat else 0}
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


def best(run):
    results = [run() for _ in range(REPEAT)]
    return max(results, key=lambda r: r["rps"])


def machine():
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    pg = subprocess.run(["postgres", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} CPUs ({model}), {pg or 'PostgreSQL'}, same host"


def row(name, r, ref=None, gw=True):
    ratio = f"{r['rps'] / ref['rps']:.2f}×" if ref else ""
    cpu = f"{r['cpu_us']:.0f}" if gw else "–"
    rss = f"{r['rss']:.1f}" if gw else "–"
    return (f"| {name} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {cpu} | {rss} | "
            f"{ratio} |")


def main():
    if shutil.which("wrk") is None or shutil.which("pgbench") is None:
        sys.exit("bench: wrk and pgbench are needed (make bootstrap installs them)")
    path = tempfile.mkdtemp(prefix="alk-bench-", dir="/tmp")
    daemons = []
    try:
        ctl("dev-db", "start", "--dir", path)
        op = ctl("dev-db", "url", "--dir", path)
        gw = ctl("dev-db", "url", "--role", "gateway", "--dir", path)
        # pgbench's 256 clients and the daemons' own connections (the operator is no
        # superuser: the setting goes in the cluster's own configuration file).
        if max(CONNS) > 50:
            ctl("dev-db", "stop", "--dir", path)
            with open(os.path.join(path, "data", "postgresql.conf"), "a") as f:
                f.write("max_connections = 400\n")
            ctl("dev-db", "start", "--dir", path)
        ctl("migrate", "--db", op, "--dir", ROOT / "migrations")
        for t in ("acme", "globex"):
            ctl("tenant", "add", t, "--db", op)
            psql(op, SEED.format(t=t, T=t.upper(), customers=CUSTOMERS, invoices=INVOICES))
        psql(op, "ANALYZE")
        lo, hi = psql(op, "SET ROLE tenant_acme; SELECT min(id) || ' ' || max(id) FROM "
                      "billing.customers").split()
        n_inv = psql(op, "SET ROLE tenant_acme; SELECT count(*) FROM billing.invoices")
        token = ctl("token", "mint", "--db", op, "--tenant", "acme", "--tool",
                    "lookup_invoices", "--tool", "add_support_note", "--ttl", "24h", "--task",
                    "bench", "--tools", ROOT / "tools")
        env = {"BENCH_TOKEN": token, "BENCH_CID_LO": lo, "BENCH_CID_HI": hi,
               "BENCH_NONCE": str(time.time_ns())}
        one = Daemon(gw)
        daemons.append(one)
        lines = []
        for c in CONNS:
            r = best(lambda: wrk([one], c, {**env, "BENCH_KIND": "read"}))
            a = best(lambda: pgbench(gw, "read_audited.sql", c, lo, hi))
            p = best(lambda: pgbench(gw, "read_plain.sql", c, lo, hi))
            lines += [row(f"airlockd, audited lookup_invoices, {c} conns", r, a),
                      row(f"pgbench, same SQL + audit INSERT, synchronous, {c} clients", a,
                          gw=False),
                      row(f"pgbench, same SQL without the audit INSERT, {c} clients", p,
                          gw=False),
                      f"| ratio airlockd / pgbench without the audit row, {c} | | | | | | "
                      f"{r['rps'] / p['rps']:.2f}× |"]
        c = CONNS[0]
        w = best(lambda: wrk([one], c, {**env, "BENCH_KIND": "write",
                                        "BENCH_NONCE": str(time.time_ns())}))
        pw = best(lambda: pgbench(gw, "write_keyed.sql", c, lo, hi))
        d = best(lambda: wrk([one], c, {**env, "BENCH_KIND": "dryrun"}))
        lines += [row(f"airlockd, keyed add_support_note, {c} conns", w, pw),
                  row(f"pgbench, the same write transaction, {c} clients", pw, gw=False),
                  row(f"airlockd, dry-run of add_support_note, {c} conns", d)]
        two = Daemon(gw)
        daemons.append(two)
        r1 = best(lambda: wrk([one], c, {**env, "BENCH_KIND": "read"}))
        r2 = best(lambda: wrk([one, two], c, {**env, "BENCH_KIND": "read"}))
        lines += [row(f"one airlockd, audited reads, {c} conns", r1),
                  row(f"two airlockd on one database, audited reads, {c} conns in all", r2, r1)]
        head = ["| | req/s or TPS | p50 ms | p99 ms | gateway CPU µs/call | peak RSS MiB | "
                "ratio |", "|---|---:|---:|---:|---:|---:|---:|"]
        table = "\n".join(head + lines) + "\n\n" + code_steps()
        print(table)
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        out = os.environ.get("BENCH_OUT") or ("" if SMOKE else str(ROOT / "docs/benchmarks.md"))
        if out:
            write_report(Path(out), table, when, n_inv, hi, lo)
            print(f"bench: written to {out}")
    finally:
        for dm in daemons:
            dm.stop()
        subprocess.run([str(CTL), "dev-db", "stop", "--dir", path], capture_output=True)
        shutil.rmtree(path, ignore_errors=True)


def code_steps():
    """A code step cold and warm at each isolation level against the bare interpreter:
    scripts/bench-sandbox.sh's table (medians of BENCH_SANDBOX_RUNS runs), as it prints it."""
    runs = os.environ.get("BENCH_SANDBOX_RUNS", "1" if SMOKE else "15")
    p = subprocess.run(["sh", str(ROOT / "scripts/bench-sandbox.sh"), runs], capture_output=True,
                       text=True, timeout=1800)
    if p.returncode != 0:
        sys.exit(f"bench: scripts/bench-sandbox.sh exited {p.returncode}:\n{p.stderr}")
    return "Code steps (scripts/bench-sandbox.sh):\n\n```\n" + p.stdout.strip() + "\n```"


def write_report(out, table, when, n_inv, hi, lo):
    """Replaces the generated part of the report (between its markers), keeps the rest."""
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    body = (f"{start}\nMeasured {when} on {machine()}; {SECONDS} s per run, best of {REPEAT}; "
            f"tenant acme holds {int(hi) - int(lo) + 1} customers and {n_inv} invoices (as "
            f"many again for globex). Produced by `make bench`.\n\n{table}\n{end}")
    text = out.read_text() if out.exists() else "# Benchmarks\n\n"
    if start in text and end in text:
        text = text[:text.index(start)] + body + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    out.write_text(text)


if __name__ == "__main__":
    main()
