"""The escape battery: each probe tries one way out of the sandbox, as root and as an
unprivileged launcher, and must be contained."""
import grp
import json
import os
import pwd
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from integration.waiting import wait_until
from .sbhelpers import CGROUP, SANDBOX, cgroup_dirs, leftover_sandboxes

# x86_64 system call numbers used by the ctypes probes.
NR = {
    "ptrace": 101, "mount": 165, "umount2": 166, "unshare": 272, "setns": 308,
    "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
    "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "process_vm_readv": 310, "process_vm_writev": 311,
    "kexec_load": 246, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "reboot": 169, "swapon": 167, "pivot_root": 155, "fsopen": 430, "open_tree": 428,
}

SYSCALL_PROBE = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
args = [ctypes.c_long(int(a, 0)) for a in sys.argv[2:]]
rc = libc.syscall(ctypes.c_long(int(sys.argv[1])), *args)
print(rc, ctypes.get_errno())
"""


def syscall(sb, nr, *args):
    """Runs one raw system call in the sandbox; returns (return value, errno)."""
    r = sb.run(["python3", "-c", SYSCALL_PROBE, str(nr), *map(str, args)])
    assert r.json["exit_code"] == 0, r
    rc, err = r.out.split()
    return int(rc), int(err)


def test_host_loopback_unreachable(sb, listener):
    lst = listener()
    lst6 = listener(host="::1", family=socket.AF_INET6)
    r = sb.py(f"""
import socket
for host, port in (("127.0.0.1", {lst.port}), ("::1", {lst6.port})):
    try:
        socket.create_connection((host, port), timeout=2)
        print("connected", host)
    except OSError as e:
        print("refused", host, e.errno)
""")
    assert "connected" not in r.out, r
    assert r.out.count("refused") == 2, r
    time.sleep(0.2)        # a check that nothing comes: a stray connection would come this soon
    assert lst.accepted == 0 and lst6.accepted == 0
    # The listeners do work from the host: the probe could have reached them.
    socket.create_connection(("127.0.0.1", lst.port), timeout=2).close()


def test_netns_listener_unreachable(sb, netns):
    port = 18000 + os.getpid() % 1000
    if port not in netns.counts:
        netns.serve(port)
    before = netns.counts[port]
    # From the host the listener answers, so an escaped probe would be counted.
    with socket.create_connection((netns.NS_ADDR, port), timeout=2) as c:
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert b"netns" in c.recv(100)
    wait_until(lambda: netns.counts[port] != before, timeout=2, what="the netns server's hit")
    assert netns.counts[port] == before + 1
    r = sb.py(f"""
import socket
try:
    socket.create_connection(("{netns.NS_ADDR}", {port}), timeout=2)
    print("connected")
except OSError as e:
    print("failed", e.errno)
""")
    assert r.out.startswith("failed"), r
    time.sleep(0.2)        # a check that nothing more comes, as above
    assert netns.counts[port] == before + 1


def test_no_network_interfaces_but_loopback(sb):
    # Read from /proc: listing interfaces through netlink is refused (see below).
    r = sb.py("print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev')"
              ".readlines()[2:]))")
    assert r.out.strip() == "['lo']", r


# Socket families by number, as the kernel knows them (Python lacks names for several).
FAMILIES = {
    "AF_UNSPEC": 0, "AF_AX25": 3, "AF_IPX": 4, "AF_APPLETALK": 5, "AF_NETROM": 6,
    "AF_BRIDGE": 7, "AF_ATMPVC": 8, "AF_X25": 9, "AF_ROSE": 11, "AF_DECnet": 12,
    "AF_NETBEUI": 13, "AF_SECURITY": 14, "AF_KEY": 15, "AF_NETLINK": 16, "AF_PACKET": 17,
    "AF_ASH": 18, "AF_ECONET": 19, "AF_ATMSVC": 20, "AF_RDS": 21, "AF_SNA": 22,
    "AF_IRDA": 23, "AF_PPPOX": 24, "AF_WANPIPE": 25, "AF_LLC": 26, "AF_IB": 27,
    "AF_MPLS": 28, "AF_CAN": 29, "AF_TIPC": 30, "AF_BLUETOOTH": 31, "AF_IUCV": 32,
    "AF_RXRPC": 33, "AF_ISDN": 34, "AF_PHONET": 35, "AF_IEEE802154": 36, "AF_CAIF": 37,
    "AF_ALG": 38, "AF_NFC": 39, "AF_VSOCK": 40, "AF_KCM": 41, "AF_QIPCRTR": 42,
    "AF_SMC": 43, "AF_XDP": 44, "AF_MCTP": 45, "AF_MAX": 46, "47": 47, "63": 63,
    "255": 255, "-1": -1, "AF_VSOCK|1<<32": (1 << 32) | 40,
    "AF_NETLINK|0xffffffff<<32": (0xFFFFFFFF << 32) | 16,
}

FAMILY_PROBE = r"""
import ctypes, json, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SOCKET, SOCKETPAIR = 41, 53
fams = json.loads(sys.argv[1])
out = {}
for name, fam in fams.items():
    for call in ("socket", "socketpair"):
        for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW,
                    socket.SOCK_SEQPACKET):
            pair = (ctypes.c_int * 2)(-1, -1)
            args = [ctypes.c_long(fam), ctypes.c_long(typ), ctypes.c_long(0)]
            if call == "socket":
                rc = libc.syscall(ctypes.c_long(SOCKET), *args)
            else:
                rc = libc.syscall(ctypes.c_long(SOCKETPAIR), *args, pair)
            out[f"{call} {name} {typ}"] = "ok" if rc >= 0 else ctypes.get_errno()
print(json.dumps(out))
"""


def test_socket_families_outside_the_allow_list_refused(sb):
    r = sb.run(["python3", "-c", FAMILY_PROBE, json.dumps(FAMILIES)])
    assert r.json["exit_code"] == 0, r
    got = json.loads(r.out)
    wrong = {k: v for k, v in got.items() if v != 97}     # EAFNOSUPPORT
    assert not wrong, wrong


def test_allowed_socket_families_work(sb):
    r = sb.py("""
import os, socket
a, b = socket.socketpair(socket.AF_UNIX)
a.sendall(b"unix-pair"); print(b.recv(20).decode())
srv = socket.socket(socket.AF_UNIX); srv.bind("/tmp/s"); srv.listen(1)
c = socket.socket(socket.AF_UNIX); c.connect("/tmp/s"); s, _ = srv.accept()
c.sendall(b"unix-stream"); print(s.recv(20).decode())
for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    srv = socket.socket(fam); srv.bind((host, 0)); srv.listen(1)
    c = socket.create_connection(srv.getsockname()[:2]); s, _ = srv.accept()
    c.sendall(b"inet-loopback"); print(fam.name, s.recv(20).decode())
# glibc asks netlink which address families are configured for AI_ADDRCONFIG; refused,
# it assumes both, and the lookup goes on.
print(socket.getaddrinfo("127.0.0.1", 80, flags=socket.AI_ADDRCONFIG)[0][4])
""")
    assert r.out.splitlines() == ["unix-pair", "unix-stream", "AF_INET inet-loopback",
                                  "AF_INET6 inet-loopback", "('127.0.0.1', 80)"], r


def test_dns_lookup_fails(sb):
    r = sb.py("""
import os, socket
print("resolv.conf", os.path.exists("/etc/resolv.conf"))
try:
    print("resolved", socket.getaddrinfo("example.com", 80))
except OSError as e:
    print("failed", type(e).__name__)
""")
    assert "resolv.conf False" in r.out, r
    assert "failed" in r.out and "resolved" not in r.out, r


def test_writes_outside_tmp_fail(sb):
    r = sb.sh("""
for p in /x /usr/x /etc/x /bin/x /proc/sys/kernel/hostname /dev/x /proc/x; do
    if echo hi > $p 2>/dev/null; then echo "wrote $p"; else echo "refused $p"; fi
done
echo ok > /tmp/ok && cat /tmp/ok
""")
    assert "wrote" not in r.out, r
    assert r.out.count("refused") == 7 and r.out.endswith("ok\n"), r


def test_host_secrets_absent(sb):
    # gVisor keeps a /sys of its own: there it must be empty.  (Listed with the shell:
    # coreutils' ls fails under gVisor, whose statx refuses AT_NO_AUTOMOUNT.)
    sys_dir = "" if sb.is_gvisor else "/sys"
    r = sb.sh(f"""
for p in /etc/shadow /etc/gshadow /etc/passwd /etc/sudoers /home /root /run /var /srv \\
         /mnt /opt {sys_dir} /work /etc/ssh /etc/ssl/private /proc/1/root/etc/shadow \\
         /sys/fs /sys/class /sys/kernel /sys/devices; do
    if [ -e $p ]; then echo "present $p"; fi
done
cat /etc/shadow 2>&1 || echo "no shadow"
cd / && echo *
""")
    assert "present" not in r.out, r
    assert "no shadow" in r.out, r
    top = set(r.out.split("no shadow\n", 1)[1].split())
    allowed = {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp",
               "usr"}
    if sb.is_gvisor:
        # The guest init, and the empty /sys.
        allowed |= {"airlock", "sys"}
    assert top <= allowed, top


def test_caller_environment_invisible(sb):
    secret = "alk_" + uuid.uuid4().hex
    env = dict(os.environ, AIRLOCK_TEST_SECRET=secret, DATABASE_URL=f"postgres://x:{secret}@h")
    r = sb.sh("""
cat /proc/self/environ; echo; cat /proc/1/environ; echo; cat /proc/1/cmdline; echo
env
""", env=env)
    assert secret not in r.out and secret not in r.err, r
    assert "AIRLOCK_TEST_SECRET" not in r.out
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in r.out
    # /proc/1 is the sandbox's own init, not the host's.
    assert ("airlock-sandbox" if sb.is_gvisor else "bwrap") in r.out


def test_proc_shows_only_the_sandbox(sb):
    r = sb.sh("exec python3 -c 'import os, socket; "
              "print(sorted(int(p) for p in os.listdir(\"/proc\") if p.isdigit()), "
              "open(\"/proc/1/comm\").read().strip(), socket.gethostname(), os.getuid())'")
    pids, comm, host, uid = r.out.rsplit(" ", 3)
    # Only the sandbox's init and the probe itself.
    assert pids == "[1, 2]", r
    init = "airlock-sandbox" if sb.is_gvisor else "bwrap"
    assert comm == init and host == "airlock" and uid.strip() == "65534", r


def test_fork_bomb_contained(sb):
    t0 = time.monotonic()
    r = sb.sh("b(){ b | b & }; b; sleep 1; echo survived", "--pids", "32", "--time", "4")
    assert time.monotonic() - t0 < 15
    assert "pids" in r.json["limits_hit"], r
    # The host can still fork, and nothing of the bomb is left.
    subprocess.run(["true"], check=True)
    assert not leftover_sandboxes(sb.cgroup_parent)


def test_python_fork_bomb_contained(sb):
    # Forks are slow under gVisor's ptrace platform, and its RLIMIT_CPU counts time a
    # spinning process waits for the host's CPU: the bomb gets the room to reach its limit.
    room = ["--time", "15", "--cpu", "10"] if sb.is_gvisor else ["--time", "3", "--cpu", "2"]
    r = sb.py("""
import os
n = 0
while True:
    try:
        if os.fork() == 0:
            while True: pass
        n += 1
    except OSError:
        print("refused after", n); break
""", "--pids", "16", *room)
    assert "refused after" in r.out, r
    assert int(r.out.split()[-1]) < 16
    assert "pids" in r.json["limits_hit"], r


def test_memory_limit(sb):
    r = sb.py("x = bytearray(200 << 20); print('allocated')", "--mem", "64")
    assert "allocated" not in r.out, r
    assert r.limit == "memory" and r.json["signal"] == 9, r
    # Under gVisor the cgroup holds the runtime too, with room for it on top.
    extra = 64 << 20 if sb.is_gvisor else 0
    assert r.json["mem_peak_bytes"] <= (64 << 20) + extra


def test_tmp_is_size_limited(sb):
    r = sb.sh("dd if=/dev/zero of=/tmp/big bs=1M count=64 2>&1; echo size $(wc -c < /tmp/big)",
              "--tmp", "8")
    assert "No space left" in r.out, r
    assert int(r.out.split("size ")[1]) <= 8 << 20, r


def test_file_size_limit(sb):
    r = sb.sh("head -c 3000000 /dev/zero > /tmp/f; echo status $?; echo size $(wc -c < /tmp/f)",
              "--fsize", "1")
    # head dies of SIGXFSZ (25) at the limit.
    assert "status 153" in r.out, r
    assert int(r.out.split("size ")[1]) == 1 << 20, r


def test_file_size_limit_stops_the_program(sb):
    r = sb.py("open('/tmp/f', 'wb').write(b'x' * (3 << 20))", "--fsize", "1")
    # Python ignores SIGXFSZ and fails with EFBIG instead.
    assert r.json["exit_code"] == 1 and "File too large" in r.err, r


def test_cpu_limit(sb):
    t0 = time.monotonic()
    r = sb.sh("while :; do :; done", "--cpu", "1", "--time", "20")
    assert time.monotonic() - t0 < 18       # well before the wall limit, even when loaded
    assert r.limit == "cpu", r
    # RLIMIT_CPU counts scheduler ticks, cpu_ms is cpuacct's exact figure: on a loaded
    # machine the tick count runs ahead, so SIGXCPU can come at 0.8 s of exact time.
    # gVisor's kernel (ptrace platform) counts the time a task is let run, waiting for the
    # host's CPU included: on a loaded host it stops a program sooner still.
    low = 0 if sb.is_gvisor else 500
    assert low <= r.json["cpu_ms"] < 3000, r


def test_cpu_limit_across_processes(sb):
    t0 = time.monotonic()
    r = sb.sh("for i in 1 2 3 4; do (while :; do :; done) & done; wait", "--cpu", "1",
              "--time", "20")
    assert time.monotonic() - t0 < 18
    assert r.limit == "cpu", r


def test_wall_limit_kills_the_namespace(sb):
    t0 = time.monotonic()
    r = sb.sh("trap '' TERM HUP INT; sleep 100 & sleep 100", "--time", "1")
    elapsed = time.monotonic() - t0
    assert r.limit == "wall" and r.json["signal"] == 9, r
    assert 0.9 < elapsed < 10, elapsed
    assert 900 <= r.json["wall_ms"] < 5000


def test_output_capped_and_stopped(sb):
    t0 = time.monotonic()
    r = sb.py("import sys\nfor _ in range(100): sys.stdout.write('x' * (1 << 20))",
              "--stdout-max", "65536")
    assert time.monotonic() - t0 < 10
    assert r.limit == "output" and r.json["stdout_truncated"], r
    assert len(r.out) == 65536


def test_stderr_capped(sb):
    r = sb.sh("yes err >&2", "--stderr-max", "1000")
    assert r.limit == "output" and r.json["stderr_truncated"] and len(r.err) == 1000, r


def marker_alive(marker):
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return any(marker in line for line in ps.splitlines())


def test_background_process_does_not_outlive_the_run(sb):
    secs = str(100000 + uuid.uuid4().int % 800000)
    r = sb.sh(f"""
trap '' TERM HUP
(trap '' TERM HUP; exec sleep {secs}) &
setsid sh -c 'trap "" TERM HUP; exec sleep {secs}' &
nohup sleep {secs} >/dev/null 2>&1 &
sleep 0.2
echo started
""")
    assert r.out.strip() == "started", r
    time.sleep(0.2)        # a check that nothing survives: a survivor would still be there
    assert not marker_alive(f"sleep {secs}")
    for d in cgroup_dirs(sb.cgroup_parent):
        assert not [p for p in d.iterdir() if p.is_dir()] if d.is_dir() else True


def test_daemon_killed_at_wall_limit(sb):
    secs = str(100000 + uuid.uuid4().int % 800000)
    r = sb.sh(f"(setsid sh -c 'trap \"\" TERM; sleep {secs}' &); sleep 50", "--time", "1")
    assert r.limit == "wall", r
    assert not marker_alive(f"sleep {secs}")


@pytest.mark.parametrize("name", sorted(NR))
def test_dangerous_syscalls_denied(sb, name):
    # Harmless arguments: the filter must refuse the call before the kernel looks at them.
    args = {"ptrace": (0, 0, 0, 0), "keyctl": (0, -3, 0), "unshare": (0x10000000,),
            "io_uring_setup": (8, 0), "userfaultfd": (0,)}.get(name, (0, 0, 0, 0))
    rc, err = syscall(sb, NR[name], *args)
    assert (rc, err) == (-1, 1), f"{name} returned {rc}, errno {err}"


def test_ptrace_attach_denied(sb):
    r = sb.sh("sleep 5 & exec python3 -c \"" +
              "import ctypes,sys; l=ctypes.CDLL(None,use_errno=True); "
              "print(l.ptrace(16, int(sys.argv[1]), 0, 0), ctypes.get_errno())\" $!")
    assert r.out.split() == ["-1", "1"], r


def test_clone3_enosys(sb):
    rc, err = syscall(sb, 435, 0, 0)
    assert (rc, err) == (-1, 38)


def test_clone_newuser_denied(sb):
    CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
    rc, err = syscall(sb, 56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
    assert (rc, err) == (-1, 1)
    # Other namespace flags as well (CLONE_NEWNET, CLONE_NEWNS).
    assert syscall(sb, 56, 0x40000000 | SIGCHLD, 0, 0, 0, 0) == (-1, 1)
    assert syscall(sb, 56, 0x00020000 | SIGCHLD, 0, 0, 0, 0) == (-1, 1)


def test_unshare_and_mount_commands_fail(sb):
    r = sb.sh("unshare -U -r id 2>&1; echo rc=$?; unshare -n true 2>&1; echo rc=$?; "
              "mkdir /tmp/m; mount -t tmpfs none /tmp/m 2>&1; echo rc=$?")
    assert r.out.count("rc=0") == 0, r


TIOCSTI_PROBE = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
c = ctypes.c_char(b"x")
r, w = os.pipe()
for req in (0x5412, 0x5412 | (1 << 32), 0x5412 | (0xFFFFFFFF << 32), 0x5413):
    rc = libc.syscall(ctypes.c_long(16), ctypes.c_long(r), ctypes.c_long(req), ctypes.byref(c))
    print(hex(req), rc, ctypes.get_errno())
"""


def test_tiocsti_denied_with_and_without_high_bits(sb):
    r = sb.py(TIOCSTI_PROBE)
    lines = [line.split() for line in r.out.splitlines()]
    assert len(lines) == 4, r
    for req, rc, err in lines[:3]:
        assert (rc, err) == ("-1", "1"), f"ioctl {req}: {rc} errno {err}"
    # The control: another tty ioctl on the same pipe reaches the kernel (ENOTTY).
    assert lines[3][1:] == ["-1", "25"], r


def test_setuid_binaries_do_not_elevate(sb):
    for path in ("/usr/bin/su", "/usr/bin/mount", "/usr/bin/passwd"):
        assert os.stat(path).st_mode & 0o4000, f"{path} is not setuid on the host"
    r = sb.sh("""
python3 -c 'import ctypes; print("NoNewPrivs", ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))'
su root -c id 2>&1; echo rc=$?
mount -t proc none /tmp 2>&1; echo rc=$?
passwd -S 2>&1; echo rc=$?
python3 -c 'import os; print("ids", os.getresuid(), os.getresgid())'
""")
    assert "NoNewPrivs 1" in r.out, r
    assert r.out.count("rc=0") == 0, r
    assert "ids (65534, 65534, 65534) (65534, 65534, 65534)" in r.out, r


def test_kill_all_harms_nothing_outside(sb):
    victim = subprocess.Popen([*sb.prefix(), "sleep", "60"])
    try:
        time.sleep(0.1)    # the victim's sandbox under way before the kill
        r = sb.sh("kill -9 -1; echo after")
        time.sleep(0.2)    # a check that nothing dies: a killed victim would be dead by now
        assert victim.poll() is None, "kill -9 -1 in the sandbox killed a host process"
        assert r.json["signal"] == 9 or r.out == "after\n", r
    finally:
        victim.kill()
        victim.wait()


def test_caller_descriptors_invisible(sb, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("the caller's file")
    os.chmod(tmp_path, 0o755)
    os.chmod(secret, 0o644)
    fd = os.open(secret, os.O_RDONLY)
    s1, s2 = socket.socketpair()
    try:
        keep = (fd, s1.fileno(), s2.fileno())
        r = sb.py("""
import os
fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
print(fds)
for f in fds:
    try: print(f, os.readlink("/proc/self/fd/%d" % f))
    except OSError: pass
""", pass_fds=keep)
    finally:
        os.close(fd)
        s1.close()
        s2.close()
    assert r.out.splitlines()[0] == "[0, 1, 2, 3]", r
    assert "secret" not in r.out and "socket" not in r.out, r


def test_planted_tmp_symlink_gone_next_run(sb):
    listing = "for f in /tmp/* /tmp/.[!.]*; do [ -e $f -o -L $f ] && echo $f; done; "
    r1 = sb.sh("ln -s /usr/bin /tmp/planted && ln -s /etc/passwd /tmp/passwd && "
               "echo data > /tmp/file && " + listing)
    assert "planted" in r1.out and "file" in r1.out, r1
    r2 = sb.sh(listing + "echo end; echo x > /tmp/planted/y 2>&1; echo rc=$?")
    assert r2.out.startswith("end\n"), r2
    assert not os.path.exists("/usr/bin/y")


def test_fresh_namespace_each_run(sb):
    # Nothing written in one run is there in the next.
    r1 = sb.sh("echo $$ > /tmp/pid; echo left > /dev/shm/left; echo written")
    r2 = sb.sh("cat /tmp/pid /dev/shm/left 2>/dev/null; echo end")
    assert r1.out.strip() == "written" and r2.out.strip() == "end", (r1, r2)
    # Two runs alive at once see neither the other's files nor its processes.  Each leaves a
    # marker named for itself in /tmp and /dev/shm, and lists every marker and every process
    # it can see while the other is alive too.
    script = ("echo $1 > /tmp/m-$1; echo $1 > /dev/shm/m-$1; sleep 3; "
              "for f in /tmp/m-* /dev/shm/m-*; do echo $f; done; cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo; "
              "readlink /proc/self/ns/net /proc/self/ns/pid /proc/self/ns/mnt")
    tags = ("alpha%d" % os.getpid(), "bravo%d" % os.getpid())
    procs = [subprocess.Popen(sb.argv([], ["sh", "-c", script, "sh", t]),
                              stdout=subprocess.PIPE, text=True) for t in tags]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    for mine, other, out in ((tags[0], tags[1], outs[0]), (tags[1], tags[0], outs[1])):
        assert out.count("m-" + mine) == 2, out
        assert other not in out, out
    # Under namespaces, the namespace links differ too (compared while both live: the kernel
    # reuses the numbers of namespaces that are gone).  gVisor's kernels number their own
    # namespaces, so two sandboxes may show the same numbers; what they see is checked above.
    if not sb.is_gvisor:
        links = [{l for l in o.splitlines() if ":[" in l} for o in outs]
        assert len(links[0]) == 3 and links[0].isdisjoint(links[1]), links


def test_no_cgroup_control_refuses(tmp_path):
    # The unprivileged user with no delegated cgroup gets a refusal, not an unlimited run.
    p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        str(SANDBOX), "run", "--cgroup-parent",
                        f"airlock-none-{os.getpid()}", "--", "true"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 69, p
    assert "no cgroup control" in p.stderr, p.stderr


def test_many_sandboxes_at_once(sb_root):
    # Limits hold per sandbox: eight concurrent runs each get their own cgroup (and, under
    # gVisor, a kernel of their own; eight of those on two loaded cores take their time).
    room = ["--time", "60"] if sb_root.is_gvisor else []
    procs = [subprocess.Popen(sb_root.argv(["--json", "--pids", "8", *room], [
        "sh", "-c", "cat /proc/self/cgroup | grep -c sb- ; for i in 1 2 3 4 5 6 7 8 9 10; "
        "do sleep 1 & done 2>/dev/null; wait"]), stdout=subprocess.PIPE) for _ in range(8)]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    for o in outs:
        j = json.loads(o)
        assert "pids" in j["limits_hit"], j
    assert not leftover_sandboxes(sb_root.cgroup_parent)


@pytest.fixture(scope="module")
def grouped_user():
    """A user made for the test whose account has a supplementary group, a cgroup
    delegated to it, and a file under /usr that only that group may read."""
    tag = f"alksb{os.getpid() % 100000}"
    user, group = f"{tag}u", f"{tag}g"
    secret_dir = Path(f"/usr/local/share/airlock-test-groups-{os.getpid()}")
    subprocess.run(["groupadd", "--system", group], check=True)
    try:
        subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                        "--shell", "/usr/sbin/nologin", "--groups", group, user], check=True)
        pw = pwd.getpwnam(user)
        gid = grp.getgrnam(group).gr_gid
        dirs = cgroup_dirs(f"airlock-test-groups-{os.getpid()}")
        for d in dirs:
            d.mkdir()
            for p in [d, *d.iterdir()]:
                os.chown(p, pw.pw_uid, pw.pw_gid)
        if (CGROUP / "cgroup.controllers").exists():
            (dirs[0] / "cgroup.subtree_control").write_text("+pids +memory")
        secret_dir.mkdir(mode=0o755)
        secret = secret_dir / "secret"
        secret.write_text("group-only\n")
        os.chown(secret, 0, gid)
        os.chmod(secret, 0o040)
        yield {"user": user, "gid": gid, "cgroup": dirs[0].name, "secret": str(secret)}
    finally:
        if secret_dir.exists():
            shutil.rmtree(secret_dir)
        for d in cgroup_dirs(f"airlock-test-groups-{os.getpid()}"):
            if d.is_dir():
                for sub in d.iterdir():
                    if sub.is_dir():
                        sub.rmdir()
                d.rmdir()
        subprocess.run(["userdel", user], check=False, capture_output=True)
        subprocess.run(["groupdel", group], check=False, capture_output=True)


GROUPS_PROBE = "grep '^Groups:' /proc/self/status; cat {secret} 2>&1; id -G"


def run_as(u, *setpriv_args):
    return subprocess.run(
        ["setpriv", f"--reuid={u['user']}", f"--regid={u['user']}", "--init-groups",
         *setpriv_args, str(SANDBOX), "run", "--json", "--cgroup-parent", u["cgroup"], "--",
         "sh", "-c", GROUPS_PROBE.format(secret=u["secret"])],
        capture_output=True, text=True, timeout=60, cwd="/")


def test_launcher_user_has_the_group(grouped_user):
    # The control: outside, the user reads the file through its supplementary group.
    p = subprocess.run(["setpriv", f"--reuid={grouped_user['user']}",
                        f"--regid={grouped_user['user']}", "--init-groups", "cat",
                        grouped_user["secret"]], capture_output=True, text=True)
    assert p.stdout == "group-only\n", p


def test_supplementary_groups_dropped_with_cap_setgid(grouped_user):
    p = run_as(grouped_user, "--inh-caps=+setgid", "--ambient-caps=+setgid")
    assert p.returncode == 0, p
    out = json.loads(p.stdout)
    assert out["exit_code"] == 0, out
    lines = out["stdout"].splitlines()
    assert lines[0].split() == ["Groups:"], out        # none at all
    assert "group-only" not in out["stdout"] and "Permission denied" in lines[1], out
    assert lines[2].split() == ["65534"], out


def test_supplementary_groups_that_cannot_be_dropped_refuse(grouped_user):
    # Without CAP_SETGID the kernel keeps them (a user namespace made without privilege
    # may not call setgroups), and they would open files inside: no run at all.
    p = run_as(grouped_user)
    assert p.returncode == 69, p
    assert "supplementary groups" in p.stderr, p.stderr
    assert "group-only" not in p.stdout


def test_root_launcher_drops_its_groups(grouped_user, root_parent):
    p = subprocess.run(["setpriv", f"--groups={grouped_user['gid']}", str(SANDBOX), "run",
                        "--json", "--cgroup-parent", root_parent, "--", "sh", "-c",
                        GROUPS_PROBE.format(secret=grouped_user["secret"])],
                       capture_output=True, text=True, timeout=60, cwd="/")
    out = json.loads(p.stdout)
    lines = out["stdout"].splitlines()
    assert lines[0].split() == ["Groups:"], out
    assert "group-only" not in out["stdout"], out
