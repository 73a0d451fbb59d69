"""profile.py: make profile.  Where an audited read's time goes: starts bench.py's PostgreSQL
(with pg_stat_statements loaded) and one airlockd, seeds the same data, and during one wrk
run of audited lookup_invoices records, at once:

- perf record -g on airlockd, reported as its top symbols by self time (perf report
  --no-children) and by library;
- the gateway's CPU per call (utime + stime from /proc over the requests) and its peak RSS,
  also after a run at PROFILE_WIDE connections (the RSS figure the targets name);
- pg_stat_statements: the statements by total execution time, with calls per request;
- pg_stat_activity sampled every 50 ms: what airlockd's sessions were doing (state and
  wait event), per kind of statement.

Environment: PROFILE_SECONDS (default 10), PROFILE_CONNS (default 32), PROFILE_WIDE (default
256; 0 skips that run), PROFILE_PERF_DATA (where perf.data is kept for perf report; by
default it goes with the cluster), AIRLOCK_BUILD (the build whose airlockd runs: make profile builds one
with frame pointers), PROFILE_PERF=0 to skip perf, PROFILE_CALLGRAPH (perf's --call-graph: dwarf by default,
since libc and jansson are built without frame pointers).  Prints everything; writes nothing."""
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (bench.py's cluster, seed, daemon and wrk helpers)

SECONDS = int(os.environ.get("PROFILE_SECONDS", "10"))
CONNS = int(os.environ.get("PROFILE_CONNS", "32"))
WIDE = int(os.environ.get("PROFILE_WIDE", "256"))
PERF = os.environ.get("PROFILE_PERF", "1") != "0" and shutil.which("perf") is not None
# Who connects as the superuser: the server's account (root's dev-db runs as postgres).
OS_USER = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def as_postgres(sock, db, sql):
    """Runs sql as the cluster's bootstrap superuser, by peer authentication of the server's
    account on its socket (the dev-db forgets the bootstrap password, and
    pg_stat_statements needs a superuser)."""
    cmd = ["psql", "-X", "-At", "-q", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", sock, "-d", db,
           "-U", "airlock_bootstrap", "-c", sql]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(f"profile: psql as postgres failed: {p.stderr}")
    return p.stdout


SAMPLER = """
CREATE TEMP TABLE s (kind text, state text, wait text);
DO $$
BEGIN
  FOR i IN 1..{n} LOOP
    PERFORM pg_stat_clear_snapshot();
    INSERT INTO s
    SELECT CASE WHEN query ~* 'record_calls|audit' THEN 'audit writer'
                WHEN query ~* 'listen' THEN 'listener'
                WHEN state = 'idle' THEN 'idle worker'
                ELSE 'worker' END,
           state, coalesce(wait_event_type || ':' || wait_event, 'CPU')
      FROM pg_stat_activity
     WHERE application_name = 'airlockd' AND pid <> pg_backend_pid();
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT kind, state, wait, count(*), round(100.0 * count(*) / sum(count(*)) OVER (), 1)
  FROM s GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 25;
"""


def sample_waits(sock, db, seconds, out):
    out.append(as_postgres(sock, db, SAMPLER.format(n=int(seconds * 20))))


def print_inclusive(perfdata):
    """Each of airlockd's own functions with the share of samples it is on the stack of,
    and which of them call jansson's json_dumps (where a call's time goes, by role)."""
    p = subprocess.run(["perf", "script", "-i", perfdata, "-F", "ip,sym,dso"],
                       capture_output=True, text=True)
    incl, dumps, leaf, stack, n = {}, {}, {}, [], 0

    def flush():
        nonlocal n
        if not stack:
            return
        n += 1
        own = [sym for sym, dso in stack if dso.endswith("airlockd)")]
        for sym in set(own):
            incl[sym] = incl.get(sym, 0) + 1
        if stack and not stack[0][1].endswith("airlockd)"):
            lib = stack[0][1].strip("()").rsplit("/", 1)[-1].split(".so")[0]
            if lib.startswith("[kernel"):
                lib = "kernel"
            key = f"{lib} under " + (own[0] if own else "?")
            leaf[key] = leaf.get(key, 0) + 1
        for i, (sym, _) in enumerate(stack):
            if sym == "json_dumps" or sym == "json_dump_callback":
                callers = [s for s, d in stack[i + 1:] if d.endswith("airlockd)")]
                key = " < ".join(callers[:2]) or "?"
                dumps[key] = dumps.get(key, 0) + 1
                break
        stack.clear()

    for line in p.stdout.splitlines():
        f = line.split()
        if not f:
            flush()
        elif len(f) >= 3:
            stack.append((f[1], f[-1]))
    flush()
    for sym in sorted(incl, key=incl.get, reverse=True)[:30]:
        print(f"{100 * incl[sym] / max(1, n):6.1f}%  {sym}")
    print("\ntime in the libraries and the kernel, by airlockd's function nearest to it:")
    for key in sorted(leaf, key=leaf.get, reverse=True)[:25]:
        print(f"{100 * leaf[key] / max(1, n):6.1f}%  {key}")
    print("\njansson's serialisation (json_dumps, json_dump_callback) by caller:")
    for key in sorted(dumps, key=dumps.get, reverse=True)[:8]:
        print(f"{100 * dumps[key] / max(1, n):6.1f}%  {key}")


def print_syscalls(text, requests):
    """Sums perf trace -s's per-thread tables by syscall: calls per request and the time."""
    calls, msec = {}, {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[1].isdigit() and not line.startswith(" " * 5 + "syscall"):
            calls[f[0]] = calls.get(f[0], 0) + int(f[1])
            msec[f[0]] = msec.get(f[0], 0.0) + float(f[3])
    total = sum(calls.values())
    print(f"{total / max(1, requests):.1f} syscalls per request")
    for name in sorted(calls, key=calls.get, reverse=True)[:12]:
        print(f"  {name:<16} {calls[name] / max(1, requests):6.2f} per request, "
              f"{msec[name] * 1000 / max(1, calls[name]):7.1f} µs each")


def print_memory(pid):
    """Where the resident memory is: /proc/PID/smaps's mappings summed by kind."""
    kinds, name, size = {}, "", 0
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        f = line.split()
        if "-" in f[0] and len(f) >= 5 and ":" not in f[0]:
            start, end = (int(x, 16) for x in f[0].split("-"))
            size = (end - start) // 1024
            name = f[5] if len(f) > 5 else ""
        elif f[0] == "Rss:":
            rss = int(f[1])
            if name.startswith("/"):
                kind = "file " + os.path.basename(name).split(".so")[0]
            elif name:
                kind = name
            elif start % (64 << 20) == 0:
                kind = "anon, malloc arenas of threads (64 MiB-aligned heaps)"
            elif size in (8192, 8196):
                kind = "anon, 8 MiB thread stacks"
            else:
                kind = "anon, other (mmap'd blocks, libraries' data)"
            kinds[kind] = kinds.get(kind, 0) + rss
    print("resident KiB by kind of mapping:")
    for k in sorted(kinds, key=kinds.get, reverse=True)[:10]:
        print(f"  {kinds[k]:7d}  {k}")


def section(title):
    print(f"\n== {title}\n")


def main():
    if shutil.which("wrk") is None:
        sys.exit("profile: wrk is needed (make bootstrap installs it)")
    if not PERF:
        print("profile: without perf (Debian's linux-perf, and root or "
              "kernel.perf_event_paranoid <= 1 to attach to a process)")
    path = tempfile.mkdtemp(prefix="alk-prof-", dir="/tmp")
    daemon = None
    try:
        bench.ctl("dev-db", "start", "--dir", path)
        op = bench.ctl("dev-db", "url", "--dir", path)
        gw = bench.ctl("dev-db", "url", "--role", "gateway", "--dir", path)
        bench.ctl("dev-db", "stop", "--dir", path)
        data = os.path.join(path, "data")
        with open(os.path.join(data, "postgresql.conf"), "a") as f:
            f.write("max_connections = 400\nshared_preload_libraries = 'pg_stat_statements'\n"
                    "pg_stat_statements.track = all\ntrack_io_timing = on\n")
        hba = os.path.join(data, "pg_hba.conf")
        text = Path(hba).read_text()
        Path(hba).write_text("local all airlock_bootstrap peer map=profile\n" + text)
        with open(os.path.join(data, "pg_ident.conf"), "a") as f:
            f.write(f"profile {OS_USER} airlock_bootstrap\n")
        bench.ctl("dev-db", "start", "--dir", path)
        sock = os.path.join(path, "sock")
        dbname = bench.psql(op, "SELECT current_database()")
        as_postgres(sock, dbname, "CREATE EXTENSION pg_stat_statements")
        bench.ctl("migrate", "--db", op, "--dir", bench.ROOT / "migrations")
        for t in ("acme", "globex"):
            bench.ctl("tenant", "add", t, "--db", op)
            bench.psql(op, bench.SEED.format(t=t, T=t.upper(), customers=bench.CUSTOMERS,
                                             invoices=bench.INVOICES))
        bench.psql(op, "ANALYZE")
        lo, hi = bench.psql(op, "SET ROLE tenant_acme; SELECT min(id) || ' ' || max(id) FROM "
                            "billing.customers").split()
        token = bench.ctl("token", "mint", "--db", op, "--tenant", "acme", "--tool",
                          "lookup_invoices", "--ttl", "24h", "--task", "profile", "--tools",
                          bench.ROOT / "tools")
        env = {"BENCH_TOKEN": token, "BENCH_CID_LO": lo, "BENCH_CID_HI": hi,
               "BENCH_NONCE": str(time.time_ns()), "BENCH_KIND": "read"}
        daemon = bench.Daemon(gw)
        print(f"profile: airlockd {bench.AIRLOCKD} pid {daemon.proc.pid}, {CONNS} connections, "
              f"{SECONDS} s")
        bench.SECONDS = 2
        bench.wrk([daemon], CONNS, env)                 # warm: connections, statements, cache
        as_postgres(sock, dbname, "SELECT pg_stat_statements_reset()")
        bench.SECONDS = SECONDS
        waits = []
        sampler = threading.Thread(target=sample_waits, args=(sock, dbname, SECONDS - 1, waits))
        perf = None
        perfdata = os.environ.get("PROFILE_PERF_DATA") or os.path.join(path, "perf.data")
        if PERF:
            perf = subprocess.Popen(["perf", "record", "-q", "--call-graph", os.environ.get("PROFILE_CALLGRAPH", "dwarf"), "-F", "999", "-o", perfdata,
                                     "-p", str(daemon.proc.pid), "--", "sleep",
                                     str(SECONDS - 1)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        sampler.start()
        r = bench.wrk([daemon], CONNS, env)
        sampler.join()
        if perf is not None:
            perf.wait()
        requests = r["rps"] * SECONDS + r["bad"]

        section(f"wrk, audited lookup_invoices, {CONNS} connections")
        print(f"{r['rps']:,.0f} req/s, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, "
              f"{r['bad']} not successful")
        print(f"gateway CPU {r['cpu_us']:.0f} µs per call; peak RSS {r['rss']:.1f} MiB")

        if perf is not None:
            section("perf: airlockd's symbols by self time (perf report --no-children)")
            p = subprocess.run(["perf", "report", "-i", perfdata, "--no-children", "--stdio",
                                "-g", "none", "--percent-limit", "0.7", "--sort",
                                "dso,symbol"], capture_output=True, text=True)
            print("\n".join(l for l in p.stdout.splitlines() if l and not l.startswith("#")))
            section("perf: airlockd's functions by inclusive time (% of its samples)")
            print_inclusive(perfdata)
            section("perf: by library")
            p = subprocess.run(["perf", "report", "-i", perfdata, "--no-children", "--stdio",
                                "-g", "none", "--sort", "dso"], capture_output=True, text=True)
            print("\n".join(l for l in p.stdout.splitlines() if l and not l.startswith("#")))

        section("pg_stat_statements: by total time (calls per request over the run)")
        rows = as_postgres(sock, dbname, """
            SELECT calls, round(total_exec_time::numeric, 0),
                   round(mean_exec_time::numeric, 3), wal_records,
                   regexp_replace(left(query, 110), '\\s+', ' ', 'g')
              FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY total_exec_time DESC LIMIT 15""")
        print(f"{'calls/req':>9} {'total ms':>9} {'mean ms':>8} {'WAL rec':>8}  statement")
        for line in rows.splitlines():
            calls, total, mean, wal, q = line.split("\t", 4)
            print(f"{int(calls) / max(1, requests):9.2f} {total:>9} {mean:>8} {wal:>8}  {q}")

        section("pg_stat_activity every 50 ms: airlockd's sessions (kind, state, wait)")
        print(f"{'kind':<13} {'state':<20} {'wait':<28} {'samples':>7} {'%':>6}")
        for line in (waits[0] if waits else "").splitlines():
            kind, state, wait, n, pct = line.split("\t")
            print(f"{kind:<13} {state:<20} {wait:<28} {n:>7} {pct:>6}")

        if PERF:
            section("syscalls per request (perf trace -s over a separate 3 s run)")
            bench.SECONDS = 3
            tr = subprocess.Popen(["perf", "trace", "-s", "-p", str(daemon.proc.pid), "--",
                                   "sleep", "3"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
            t = bench.wrk([daemon], CONNS, env)
            print_syscalls(tr.communicate()[1], t["rps"] * 3 + t["bad"])

        if WIDE:
            bench.SECONDS = min(SECONDS, 5)
            w = bench.wrk([daemon], WIDE, env)
            section(f"wrk, {WIDE} connections")
            print(f"{w['rps']:,.0f} req/s, p50 {w['p50']:.1f} ms, p99 {w['p99']:.1f} ms; "
                  f"gateway CPU {w['cpu_us']:.0f} µs per call; peak RSS {w['rss']:.1f} MiB")
            print_memory(daemon.proc.pid)
            status = Path(f"/proc/{daemon.proc.pid}/status").read_text()
            print(" ".join(l.replace("\t", " ") for l in status.splitlines()
                           if l.startswith(("VmRSS", "RssAnon", "RssFile", "Threads"))))
    finally:
        if daemon is not None:
            daemon.stop()
        subprocess.run([str(bench.CTL), "dev-db", "stop", "--dir", path], capture_output=True)
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
