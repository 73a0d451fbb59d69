/* Unit tests for the sandbox's seccomp filter (sandbox/seccomp.c), loaded into forked children. */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "airlock/seccomp.h"
#include "tap.h"

/* What a probe reports through its exit status. */
#define PROBE_OK 0	/* the call succeeded */
#define PROBE_SETUP 120 /* the filter could not be loaded */

static struct sock_fprog prog;

/* Reads the exported BPF once; the children load it. */
static int
load_program(void)
{
	struct stat st;
	int fd;

	if ((fd = sb_seccomp_fd()) == -1 || fstat(fd, &st) == -1 || st.st_size <= 0 ||
	    st.st_size % (off_t)sizeof(struct sock_filter) != 0)
		return -1;
	if ((prog.filter = malloc((size_t)st.st_size)) == NULL ||
	    read(fd, prog.filter, (size_t)st.st_size) != st.st_size) {
		close(fd);
		return -1;
	}
	prog.len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
	close(fd);
	return 0;
}

/*
 * Runs the exported program over one call, as the kernel's classic BPF would, for the
 * instructions libseccomp emits; returns the action, or 0xDEAD on an instruction it
 * does not know (which fails the test that asked).
 */
static uint32_t
verdict(uint32_t arch, int nr, uint64_t a0)
{
	struct seccomp_data d;
	const unsigned char *data = (const unsigned char *)&d;
	uint32_t acc = 0, x = 0, mem[BPF_MEMWORDS] = { 0 };
	size_t pc = 0;

	memset(&d, 0, sizeof(d));
	d.nr = nr;
	d.arch = arch;
	d.args[0] = a0;
	while (pc < prog.len) {
		const struct sock_filter *f = &prog.filter[pc++];
		uint32_t k = f->k;

		switch (f->code) {
		case BPF_LD | BPF_W | BPF_ABS:
			if (k > sizeof(d) - 4 || k % 4 != 0)
				return 0xDEAD;
			memcpy(&acc, data + k, 4);
			break;
		case BPF_LD | BPF_IMM:
			acc = k;
			break;
		case BPF_LD | BPF_MEM:
			if (k >= BPF_MEMWORDS)
				return 0xDEAD;
			acc = mem[k];
			break;
		case BPF_LDX | BPF_IMM:
			x = k;
			break;
		case BPF_ST:
			if (k >= BPF_MEMWORDS)
				return 0xDEAD;
			mem[k] = acc;
			break;
		case BPF_MISC | BPF_TAX:
			x = acc;
			break;
		case BPF_MISC | BPF_TXA:
			acc = x;
			break;
		case BPF_ALU | BPF_AND | BPF_K:
			acc &= k;
			break;
		case BPF_ALU | BPF_OR | BPF_K:
			acc |= k;
			break;
		case BPF_JMP | BPF_JA:
			pc += k;
			break;
		case BPF_JMP | BPF_JEQ | BPF_K:
			pc += acc == k ? f->jt : f->jf;
			break;
		case BPF_JMP | BPF_JGT | BPF_K:
			pc += acc > k ? f->jt : f->jf;
			break;
		case BPF_JMP | BPF_JGE | BPF_K:
			pc += acc >= k ? f->jt : f->jf;
			break;
		case BPF_JMP | BPF_JSET | BPF_K:
			pc += (acc & k) != 0 ? f->jt : f->jf;
			break;
		case BPF_RET | BPF_K:
			return k;
		default:
			return 0xDEAD;
		}
	}
	return 0xDEAD;
}

typedef long probe_fn(const long *a);

/*
 * Runs fn(a) in a child, under the filter when is_filtered; returns the child's wait
 * status. The child exits PROBE_OK when the call succeeded, else with its errno.
 */
static int
run_probe(probe_fn *fn, const long *a, int is_filtered)
{
	pid_t pid;
	int status;

	fflush(stdout);
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		long rc;

		if (is_filtered &&
		    (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
			prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == -1))
			_exit(PROBE_SETUP);
		errno = 0;
		rc = fn(a);
		_exit(rc >= 0 ? PROBE_OK : errno > 0 && errno < PROBE_SETUP ? errno : PROBE_SETUP);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return status;
}

static int
exited_with(int status, int code)
{
	return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

static int
killed_by_sigsys(int status)
{
	return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS;
}

/* The raw calls, so that every bit of the 64-bit argument reaches the filter. */
static long
do_socket(const long *a)
{
	return syscall(SYS_socket, a[0], a[1], a[2]);
}

static long
do_socketpair(const long *a)
{
	int sv[2];

	return syscall(SYS_socketpair, a[0], a[1], a[2], sv);
}

#ifdef __x86_64__
/* An x32 call: the native architecture with bit 30 set in the number. */
static long
do_x32_socket(const long *a)
{
	return syscall(0x40000000L | SYS_socket, a[0], a[1], a[2]);
}

/* A 32-bit call through int 0x80; nr is the i386 number (102 socketcall, 359 socket, 20
 * getpid). Returns the kernel's answer (a negative errno on failure). */
static long
int80(long nr, long b, long c, long d)
{
	long ret;

	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(b), "c"(c), "d"(d)
			 : "memory", "r8", "r9", "r10", "r11");
	return ret;
}

static long
do_i386(const long *a)
{
	long ret;

	/* Without the 32-bit ABI the kernel answers int 0x80 with SIGSEGV: let it kill the
	 * child plainly rather than through a sanitizer's report. */
	signal(SIGSEGV, SIG_DFL);
	ret = int80(a[0], a[1], a[2], a[3]);

	if (ret < 0 && ret > -4096) {
		errno = (int)-ret;
		return -1;
	}
	return 0;
}
#endif

int
main(void)
{
	/* Families a program may open, and the type each is opened with. */
	static const struct {
		int family, type;
		const char *name;
	} allowed[] = {
		{ AF_UNIX, SOCK_STREAM, "AF_UNIX" },
		{ AF_INET, SOCK_STREAM, "AF_INET" },
		{ AF_INET6, SOCK_DGRAM, "AF_INET6" },
	};
	static const struct {
		int family, type;
		const char *name;
	} refused[] = {
		{ AF_VSOCK, SOCK_STREAM, "AF_VSOCK" },
		{ AF_NETLINK, SOCK_RAW, "AF_NETLINK" },
		{ AF_PACKET, SOCK_RAW, "AF_PACKET" },
		{ AF_ALG, SOCK_SEQPACKET, "AF_ALG" },
		{ AF_KEY, SOCK_RAW, "AF_KEY" },
		{ AF_BLUETOOTH, SOCK_STREAM, "AF_BLUETOOTH" },
		{ AF_RDS, SOCK_SEQPACKET, "AF_RDS" },
		{ AF_TIPC, SOCK_STREAM, "AF_TIPC" },
		{ AF_XDP, SOCK_RAW, "AF_XDP" },
		{ AF_CAN, SOCK_RAW, "AF_CAN" },
		{ AF_UNSPEC, SOCK_STREAM, "AF_UNSPEC" },
		{ AF_APPLETALK, SOCK_DGRAM, "AF_APPLETALK" },
		{ AF_X25, SOCK_SEQPACKET, "AF_X25" },
		{ AF_KCM, SOCK_DGRAM, "AF_KCM" },
		{ AF_SMC, SOCK_STREAM, "AF_SMC" },
		{ AF_MCTP, SOCK_DGRAM, "AF_MCTP" },
		{ AF_MAX, SOCK_STREAM, "AF_MAX" },
		{ 255, SOCK_STREAM, "family 255" },
		{ -1, SOCK_STREAM, "family -1" },
	};
	size_t i;
	long a[4];
	int st;

	if (load_program() == -1) {
		printf("not ok 1 - cannot build the filter\n1..1\n");
		return 1;
	}
	ok(exited_with(run_probe(do_socket, (long[]){ AF_UNIX, SOCK_STREAM, 0 }, 1), PROBE_OK),
	    "the filter loads, and a probe under it runs");
	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		a[0] = allowed[i].family;
		a[1] = allowed[i].type;
		a[2] = 0;
		ok(exited_with(run_probe(do_socket, a, 1), PROBE_OK), "socket(%s) allowed",
		    allowed[i].name);
	}
	ok(exited_with(run_probe(do_socketpair, (long[]){ AF_UNIX, SOCK_STREAM, 0 }, 1), PROBE_OK),
	    "socketpair(AF_UNIX) allowed");
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		a[0] = refused[i].family;
		a[1] = refused[i].type;
		a[2] = 0;
		st = run_probe(do_socket, a, 1);
		ok(exited_with(st, EAFNOSUPPORT), "socket(%s) fails with EAFNOSUPPORT (status %#x)",
		    refused[i].name, st);
		st = run_probe(do_socketpair, a, 1);
		ok(exited_with(st, EAFNOSUPPORT),
		    "socketpair(%s) fails with EAFNOSUPPORT (status %#x)", refused[i].name, st);
	}
	/* Every family number the kernel could know, whatever this libc's headers say. */
	for (i = 0; i < 64; i++) {
		int is_allowed = i == AF_UNIX || i == AF_INET || i == AF_INET6;

		if (is_allowed)
			continue;
		a[0] = (long)i;
		a[1] = SOCK_STREAM;
		a[2] = 0;
		st = run_probe(do_socket, a, 1);
		ok(exited_with(st, EAFNOSUPPORT), "socket(family %zu) refused (status %#x)", i, st);
	}
	/* The kernel reads the family as an int: bits above 31 must not hide a refused one, and
	 * must not make an allowed one look refused. */
	a[0] = (long)((1UL << 32) | AF_VSOCK);
	a[1] = SOCK_STREAM;
	a[2] = 0;
	ok(exited_with(run_probe(do_socket, a, 1), EAFNOSUPPORT),
	    "socket(AF_VSOCK with high bits set) refused");
	a[0] = (long)(0xFFFFFFFF00000000UL | AF_NETLINK);
	a[1] = SOCK_RAW;
	ok(exited_with(run_probe(do_socket, a, 1), EAFNOSUPPORT),
	    "socket(AF_NETLINK with high bits set) refused");
	a[0] = (long)((1UL << 40) | AF_VSOCK);
	a[1] = SOCK_STREAM;
	ok(exited_with(run_probe(do_socketpair, a, 1), EAFNOSUPPORT),
	    "socketpair(AF_VSOCK with high bits set) refused");
	a[0] = (long)((1UL << 32) | AF_INET);
	ok(exited_with(run_probe(do_socket, a, 1), PROBE_OK),
	    "socket(AF_INET with high bits set) is AF_INET to the kernel, allowed");
	/* The filter itself, read as the kernel would, for the other ABIs of this machine's
	 * architecture: a kernel without them answers before the filter does. */
	ok(verdict(AUDIT_ARCH_X86_64, SYS_socket, AF_VSOCK) == (SECCOMP_RET_ERRNO | EAFNOSUPPORT),
	    "the reading of the filter matches the kernel's");
	ok(verdict(AUDIT_ARCH_X86_64, SYS_socket, AF_INET) == SECCOMP_RET_ALLOW,
	    "the reading of the filter allows socket(AF_INET)");
	ok(verdict(AUDIT_ARCH_X86_64, 0x40000000 | SYS_socket, AF_VSOCK) ==
		SECCOMP_RET_KILL_PROCESS,
	    "x32 socket kills the process");
	ok(verdict(AUDIT_ARCH_X86_64, 0x40000000 | SYS_getpid, 0) == SECCOMP_RET_KILL_PROCESS,
	    "x32 getpid kills the process");
	ok(verdict(AUDIT_ARCH_I386, 102, 1) == SECCOMP_RET_KILL_PROCESS,
	    "i386 socketcall kills the process");
	ok(verdict(AUDIT_ARCH_I386, 359, AF_VSOCK) == SECCOMP_RET_KILL_PROCESS,
	    "i386 socket kills the process");
	ok(verdict(AUDIT_ARCH_I386, 20, 0) == SECCOMP_RET_KILL_PROCESS,
	    "i386 getpid kills the process");
	ok(verdict(AUDIT_ARCH_AARCH64, 198, AF_VSOCK) == SECCOMP_RET_KILL_PROCESS,
	    "a foreign architecture kills the process");
#ifdef __x86_64__
	/* And in the kernel, where it has these ABIs: a 32-bit socketcall never runs. */
	a[0] = AF_VSOCK;
	a[1] = SOCK_STREAM;
	a[2] = 0;
	st = run_probe(do_x32_socket, a, 1);
	ok(killed_by_sigsys(st), "an x32 system call kills the process (status %#x)", st);
	{
		static long args[3] = { AF_VSOCK, SOCK_STREAM, 0 };
		int has_ia32 =
		    exited_with(run_probe(do_i386, (long[]){ 20, 0, 0, 0 }, 0), PROBE_OK);

		a[0] = 102; /* socketcall(SYS_SOCKET, args) */
		a[1] = 1;
		a[2] = (long)(uintptr_t)args;
		a[3] = 0;
		st = run_probe(do_i386, a, 1);
		ok(has_ia32 ? killed_by_sigsys(st) : !exited_with(st, PROBE_OK),
		    "int 0x80 socketcall does not run (status %#x, 32-bit ABI %s)", st,
		    has_ia32 ? "present" : "absent");
		a[0] = 359; /* socket(AF_VSOCK, SOCK_STREAM, 0) */
		a[1] = AF_VSOCK;
		a[2] = SOCK_STREAM;
		st = run_probe(do_i386, a, 1);
		ok(has_ia32 ? killed_by_sigsys(st) : !exited_with(st, PROBE_OK),
		    "int 0x80 socket does not run (status %#x)", st);
	}
#endif
	free(prog.filter);
	return tap_done();
}
