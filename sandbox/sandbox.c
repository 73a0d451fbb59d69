/* The sandbox launcher: runs one program in a fresh sandbox (bubblewrap or gVisor) under limits. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "airlock/cgroup.h"
#include "airlock/gvisor.h"
#include "airlock/proxy.h"
#include "airlock/sandbox.h"
#include "airlock/seccomp.h"

/* The uid and gid a root launcher drops to before bwrap, and the ones used inside. */
#define SB_UID 65534
#define SB_GID 65534

/* Descriptor numbers in the bwrap process. */
enum { FD_PROGRAM = 3, FD_SECCOMP = 4, FD_ARGS = 5, FD_EXECERR = 6, FD_HELPER = 7 };

#define SB_ARGS_MAX 160

struct outbuf {
	char *data;
	size_t len;
	size_t cap;
	int fd;
	int is_truncated;
};

struct sb_run {
	int is_gvisor;
	char bundle[PATH_MAX];	/* gVisor: the OCI bundle's directory, runsc's state in it */
	char nonce[33];		/* gVisor: what the guest's end line must carry */
	int is_ready;		/* the program has been handed over: the clocks run */
	int is_boot_failed;	/* gVisor: stderr did not start with the guest's ready line */
	int has_end;		/* gVisor: the guest's end line was read */
	int end_status;		/* ... and the wait status it gave */
	int end_pids;		/* ... and whether the process count reached its limit */
	int64_t ready_us;
	int64_t cpu_base;	/* the cgroup's CPU time at the hand-over, ns */
	pid_t pid;
	int pidfd;
	int in_w;
	int prog_w;
	int stdin_src;
	struct outbuf out;
	struct outbuf err;
	struct sb_cgroup *cg;
	struct sb_proxy *proxy;
	char sockdir[64];
	struct sb_limits limits;
	int64_t start_us;
	char *prog;
	size_t prog_len, prog_off;
	char *input;
	size_t input_len, input_off;
	char pump[65536];	/* stdin_fd data on its way in */
	size_t pump_len, pump_off;
	int is_fed;
	int is_reaped;
	int status;
	struct rusage ru;
};

static void __attribute__((format(printf, 3, 4)))
say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* execve's prototype predates const; nothing here writes through the result. */
static char *
unconst(const char *s)
{
	union {
		const char *c;
		char *m;
	} u = { .c = s };

	return u.m;
}

static void
close_fd(int *fd)
{
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

const char *
sb_isolation_name(enum sb_isolation i)
{
	return i == SB_ISOLATION_GVISOR ? "gvisor" : "namespace";
}

int
sb_isolation_parse(const char *s, enum sb_isolation *i)
{
	if (strcmp(s, "namespace") == 0)
		*i = SB_ISOLATION_NAMESPACE;
	else if (strcmp(s, "gvisor") == 0)
		*i = SB_ISOLATION_GVISOR;
	else
		return -1;
	return 0;
}

void
sb_limits_default(struct sb_limits *l)
{
	l->wall_ms = 10000;
	l->cpu_ms = 5000;
	l->mem_bytes = 256LL << 20;
	l->pids = 64;
	l->fsize_bytes = 16LL << 20;
	l->nofile = 64;
	l->tmp_bytes = 16LL << 20;
	l->stdout_max = 1 << 20;
	l->stderr_max = 256 << 10;
}

const char *
sb_limit_name(enum sb_limit l)
{
	switch (l) {
	case SB_LIMIT_NONE:
		return "none";
	case SB_LIMIT_WALL:
		return "wall";
	case SB_LIMIT_CPU:
		return "cpu";
	case SB_LIMIT_MEMORY:
		return "memory";
	case SB_LIMIT_PIDS:
		return "pids";
	case SB_LIMIT_FSIZE:
		return "fsize";
	case SB_LIMIT_OUTPUT:
		return "output";
	}
	return "unknown";
}

/* The list of arguments bwrap reads from its --args descriptor, so that none of it shows
 * in /proc/1/cmdline inside. */
struct args {
	const char *v[SB_ARGS_MAX];
	size_t n;
	char num[5][24];
	int is_full;
};

static void
add(struct args *a, const char *s)
{
	if (a->n + 1 >= SB_ARGS_MAX) {
		a->is_full = 1;
		return;
	}
	a->v[a->n++] = s;
}

static void
add2(struct args *a, const char *s1, const char *s2)
{
	add(a, s1);
	add(a, s2);
}

static void
add3(struct args *a, const char *s1, const char *s2, const char *s3)
{
	add(a, s1);
	add(a, s2);
	add(a, s3);
}

/* The top-level directories that merged-/usr systems make symlinks and others make real. */
static const char *const top_dirs[] = { "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32" };

/* What of /etc a program needs to load libraries, find alternatives and verify TLS; no
 * secrets. Each bind costs bwrap a pass over the mount table, so the list is short. */
static const char *const etc_files[] = {
	"/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime", "/etc/ssl/certs",
};

static int
build_args(struct args *a, const struct sb_config *cfg, const char *sock,
    char links[][PATH_MAX])
{
	size_t i;

	add3(a, "--unshare-user", "--unshare-ipc", "--unshare-pid");
	add3(a, "--unshare-net", "--unshare-uts", "--unshare-cgroup-try");
	add(a, "--disable-userns");
	snprintf(a->num[0], sizeof(a->num[0]), "%d", SB_UID);
	snprintf(a->num[1], sizeof(a->num[1]), "%d", SB_GID);
	add2(a, "--uid", a->num[0]);
	add2(a, "--gid", a->num[1]);
	add2(a, "--hostname", "airlock");
	add3(a, "--new-session", "--die-with-parent", "--cap-drop");
	add(a, "ALL");
	add3(a, "--ro-bind", "/usr", "/usr");
	for (i = 0; i < sizeof(top_dirs) / sizeof(top_dirs[0]); i++) {
		struct stat st;
		ssize_t n;

		if (lstat(top_dirs[i], &st) == -1)
			continue;
		if (S_ISLNK(st.st_mode)) {
			n = readlink(top_dirs[i], links[i], PATH_MAX - 1);
			if (n <= 0)
				continue;
			links[i][n] = '\0';
			add3(a, "--symlink", links[i], top_dirs[i]);
		} else if (S_ISDIR(st.st_mode))
			add3(a, "--ro-bind", top_dirs[i], top_dirs[i]);
	}
	for (i = 0; i < sizeof(etc_files) / sizeof(etc_files[0]); i++)
		add3(a, "--ro-bind-try", etc_files[i], etc_files[i]);
	add2(a, "--proc", "/proc");
	add2(a, "--dev", "/dev");
	snprintf(a->num[2], sizeof(a->num[2]), "%" PRId64, cfg->limits.tmp_bytes);
	add2(a, "--perms", "1777");
	add2(a, "--size", a->num[2]);
	add2(a, "--tmpfs", "/tmp");
	/* /dev is a tmpfs of bwrap's without a size: only /dev/shm stays writable. */
	add2(a, "--perms", "1777");
	add2(a, "--size", a->num[2]);
	add2(a, "--tmpfs", "/dev/shm");
	add2(a, "--remount-ro", "/dev");
	if (cfg->allow != NULL) {
		add3(a, "--ro-bind", sock, "/airlock/proxy.sock");
		/* A copy from a descriptor the launcher opened: bwrap may run as an uid that
		 * cannot reach the helper's directory (a checkout under a 0700 directory). */
		snprintf(a->num[4], sizeof(a->num[4]), "%d", FD_HELPER);
		add2(a, "--perms", "0555");
		add3(a, "--ro-bind-data", a->num[4], "/airlock/airlock-sandbox");
	}
	add2(a, "--remount-ro", "/");
	add2(a, "--chdir", "/tmp");
	snprintf(a->num[3], sizeof(a->num[3]), "%d", FD_SECCOMP);
	add2(a, "--seccomp", a->num[3]);
	a->v[a->n] = NULL;
	return a->is_full ? -1 : 0;
}

/* Writes the arguments NUL-separated into a new memory file; returns it or -1. */
static int
args_fd(const struct args *a)
{
	int fd;
	size_t i;

	if ((fd = memfd_create("airlock-bwrap-args", MFD_CLOEXEC)) == -1)
		return -1;
	for (i = 0; i < a->n; i++) {
		size_t len = strlen(a->v[i]) + 1;

		if (write(fd, a->v[i], len) != (ssize_t)len)
			goto fail;
	}
	if (lseek(fd, 0, SEEK_SET) == -1)
		goto fail;
	return fd;

fail:
	close(fd);
	return -1;
}

/*
 * Opens the egress helper: cfg->helper, else the running program when it is
 * airlock-sandbox itself (through /proc/self/exe, which needs no access to its directory),
 * else airlock-sandbox in the running program's directory.  Returns a descriptor or -1.
 */
static int
open_helper(const struct sb_config *cfg)
{
	char path[PATH_MAX];
	ssize_t n;
	char *slash;

	if (cfg->helper != NULL)
		return open(cfg->helper, O_RDONLY | O_CLOEXEC);
	if ((n = readlink("/proc/self/exe", path, sizeof(path) - 1)) <= 0)
		return -1;
	path[n] = '\0';
	if ((slash = strrchr(path, '/')) == NULL)
		return -1;
	if (strcmp(slash + 1, "airlock-sandbox") == 0)
		return open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	slash[1] = '\0';
	if (strlcat(path, "airlock-sandbox", sizeof(path)) >= sizeof(path))
		return -1;
	return open(path, O_RDONLY | O_CLOEXEC);
}

static int
check_limits(const struct sb_limits *l, char *err, size_t errlen)
{
	if (l->wall_ms <= 0 || l->cpu_ms <= 0 || l->mem_bytes < (4LL << 20) || l->pids < 4 ||
	    l->fsize_bytes < 0 || l->nofile < 16 || l->tmp_bytes < 4096 ||
	    l->stdout_max == 0 || l->stderr_max == 0 || l->stdout_max > (1U << 30) ||
	    l->stderr_max > (1U << 30)) {
		say(err, errlen, "limits out of range (memory at least 4 MiB, pids at least 4, "
		    "nofile at least 16, /tmp at least 4 KiB, output caps 1 B to 1 GiB)");
		return -1;
	}
	return 0;
}

static int
set_limit(int resource, rlim_t soft, rlim_t hard)
{
	struct rlimit rl = { soft, hard };

	return setrlimit(resource, &rl);
}

/* Whether this process may call setgroups: root, or CAP_SETGID in its effective set. */
static int
can_setgid(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &hdr, data) == -1)
		return geteuid() == 0;
	return (data[CAP_TO_INDEX(CAP_SETGID)].effective & CAP_TO_MASK(CAP_SETGID)) != 0;
}

/*
 * Supplementary groups travel into the sandbox: bwrap maps only the launcher's own gid, so
 * inside they show as the overflow gid, yet the kernel still grants what they grant on the
 * files the sandbox sees. setgroups is the only way to shed them, and it needs CAP_SETGID
 * where the launcher runs (an unprivileged user namespace may never call it). Returns 0
 * when the child will be able to drop them (or there are none but the primary gid), else
 * -1 with a message.
 */
static int
check_groups(char *err, size_t errlen)
{
	gid_t *list = NULL, egid = getegid();
	int n, i, foreign = 0;

	if ((n = getgroups(0, NULL)) <= 0 || can_setgid())
		return 0;
	if ((list = calloc((size_t)n, sizeof(*list))) == NULL ||
	    (n = getgroups(n, list)) == -1) {
		free(list);
		say(err, errlen, "supplementary groups: cannot read them: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++)
		if (list[i] != egid)
			foreign++;
	free(list);
	if (foreign == 0)
		return 0;
	say(err, errlen, "supplementary groups: the launcher has %d besides its own gid and "
	    "cannot drop them without CAP_SETGID; they would reach the sandbox's files, so it "
	    "refuses to run (run it as a user without supplementary groups, or with CAP_SETGID)",
	    foreign);
	return -1;
}

/*
 * In the child of a launcher that is not root: drops the supplementary groups, which
 * check_groups found droppable, and clears ambient capabilities so that bwrap, not being
 * setuid, starts with none (it refuses to run with any). Only async-signal-safe calls.
 */
static int
drop_groups(void)
{
	gid_t only;
	int n = getgroups(0, NULL);

	if (n > 0 && setgroups(0, NULL) == -1) {
		/* Only the primary gid in the list grants nothing more. */
		if (n != 1 || getgroups(1, &only) != 1 || only != getegid())
			return -1;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == -1 && errno != EINVAL)
		return -1;
	return 0;
}

/* Moves each source descriptor to its target in the child; only async-signal-safe calls. */
static int
place_fds(const int *src, const int *dst, int n)
{
	int hi[8];
	int i;

	/* First above every target, so that no dup2 clobbers a source still needed. */
	for (i = 0; i < n; i++)
		if (src[i] != -1 && (hi[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 16)) == -1)
			return -1;
	for (i = 0; i < n; i++)
		if (src[i] != -1 && dup2(hi[i], dst[i]) == -1)
			return -1;
	return 0;
}

static void __attribute__((noreturn))
child(const struct sb_config *cfg, const struct sb_cgroup *cg, const char *prog,
    char *const *argv, char *const *envp, const int *src, pid_t parent, int is_gvisor)
{
	static const int dst[] = { 0, 1, 2, FD_PROGRAM, FD_SECCOMP, FD_ARGS, FD_EXECERR,
	    FD_HELPER };
	const struct sb_limits *l = &cfg->limits;
	int e, i;

	if (sb_cgroup_enter(cg) == -1)
		goto fail;
	if (place_fds(src, dst, 8) == -1)
		goto fail;
	for (i = 3; i < 8; i++)
		if (src[i] == -1 && dst[i] != FD_EXECERR)
			close(dst[i]);
	if (fcntl(FD_EXECERR, F_SETFD, FD_CLOEXEC) == -1)
		goto fail;
	closefrom(FD_HELPER + 1);
	if (is_gvisor) {
		/* runsc, its sentry and its gofer need their descriptors and run as root; the
		 * program's own limits and uid are set inside, by the guest. */
		if (set_limit(RLIMIT_CORE, 0, 0) == -1)
			goto fail;
	} else {
		if (set_limit(RLIMIT_CPU, (rlim_t)(l->cpu_ms + 999) / 1000,
		    (rlim_t)(l->cpu_ms + 999) / 1000 + 1) == -1 ||
		    set_limit(RLIMIT_FSIZE, (rlim_t)l->fsize_bytes, (rlim_t)l->fsize_bytes) == -1 ||
		    set_limit(RLIMIT_NOFILE, (rlim_t)l->nofile, (rlim_t)l->nofile) == -1 ||
		    set_limit(RLIMIT_CORE, 0, 0) == -1)
			goto fail;
		if (geteuid() == 0) {
			/* Inside, the sandbox's uid maps to ours: root's would own every root file. */
			if (setgroups(0, NULL) == -1 || setresgid(SB_GID, SB_GID, SB_GID) == -1 ||
			    setresuid(SB_UID, SB_UID, SB_UID) == -1)
				goto fail;
		} else if (drop_groups() == -1)
			goto fail;
	}
	/* Changing credentials clears the parent-death signal, so set it after. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
		goto fail;
	execve(prog, argv, envp);
fail:
	e = errno;
	(void)!write(FD_EXECERR, &e, sizeof(e));
	_exit(127);
}

static int
make_pipe(int fds[2])
{
	return pipe2(fds, O_CLOEXEC);
}

/*
 * The host path of the launcher's own program, bound into a gVisor sandbox as its guest:
 * cfg->helper, else the running program when it is airlock-sandbox, else airlock-sandbox
 * in the running program's directory.  Returns 0, or -1 when there is none.
 */
static int
helper_path(const struct sb_config *cfg, char *path, size_t len)
{
	ssize_t n;
	char *slash;

	if (cfg->helper != NULL) {
		if (realpath(cfg->helper, path) == NULL)
			return -1;
		return access(path, R_OK | X_OK);
	}
	if ((n = readlink("/proc/self/exe", path, len - 1)) <= 0)
		return -1;
	path[n] = '\0';
	if ((slash = strrchr(path, '/')) == NULL)
		return -1;
	if (strcmp(slash + 1, "airlock-sandbox") != 0) {
		slash[1] = '\0';
		if (strlcat(path, "airlock-sandbox", len) >= len)
			return -1;
	}
	return access(path, R_OK | X_OK);
}

/* Starts the egress proxy of a run on a socket in a new directory; 0, or -1 with err. */
static int
start_proxy(struct sb_run *run, const struct sb_config *cfg, char *sock, size_t socklen,
    char *err, size_t errlen)
{
	char perr[256];

	strlcpy(run->sockdir, "/tmp/airlock-sb-XXXXXX", sizeof(run->sockdir));
	if (mkdtemp(run->sockdir) == NULL) {
		run->sockdir[0] = '\0';
		say(err, errlen, "cannot make the proxy's directory: %s", strerror(errno));
		return -1;
	}
	/* bwrap runs as SB_UID when we are root: it must reach the socket. */
	if (chmod(run->sockdir, 0711) == -1) {
		say(err, errlen, "chmod %s: %s", run->sockdir, strerror(errno));
		return -1;
	}
	snprintf(sock, socklen, "%s/proxy.sock", run->sockdir);
	if (sb_proxy_start(cfg->allow, cfg->on_egress, cfg->egress_arg, sock,
	    geteuid() == 0 ? SB_UID : (uid_t)-1, &run->proxy, perr, sizeof(perr)) == -1) {
		say(err, errlen, "%s", perr);
		return -1;
	}
	return 0;
}

int
sb_spawn(const struct sb_config *cfg, struct sb_run **out, char *err, size_t errlen)
{
	static char links[sizeof(top_dirs) / sizeof(top_dirs[0])][PATH_MAX];
	static pthread_mutex_t links_lock = PTHREAD_MUTEX_INITIALIZER;
	static const char *const proxy_env[] = {
		"HTTP_PROXY=http://127.0.0.1:3128", "HTTPS_PROXY=http://127.0.0.1:3128",
		"http_proxy=http://127.0.0.1:3128", "https_proxy=http://127.0.0.1:3128",
		"NO_PROXY=", "no_proxy=",
	};
	struct sb_run *run = NULL;
	struct args a;
	char cgerr[256];
	char sock[128] = "";
	char helper[PATH_MAX], state[PATH_MAX + 16], id[64];
	int is_gvisor = cfg->isolation == SB_ISOLATION_GVISOR;
	const char *prog = is_gvisor ? (cfg->runsc != NULL ? cfg->runsc : "/usr/bin/runsc") :
	    cfg->bwrap != NULL ? cfg->bwrap : "/usr/bin/bwrap";
	char *envp[12];
	size_t ne = 0, i;
	int in[2] = { -1, -1 }, o[2] = { -1, -1 }, e[2] = { -1, -1 }, pg[2] = { -1, -1 };
	int ex[2] = { -1, -1 };
	int scfd = -1, afd = -1, hfd = -1;
	int src[8];
	int child_errno;
	ssize_t n;
	pid_t parent = getpid();
	char **argv = NULL;
	size_t ac;
	int64_t mem, pids;
	uint8_t rnd[16];
	static const char fdnum[] = { '0' + FD_ARGS, '\0' };

	*out = NULL;
	memset(&a, 0, sizeof(a));
	if (cfg->argv == NULL || cfg->argv[0] == NULL) {
		say(err, errlen, "no command to run");
		return -1;
	}
	if (check_limits(&cfg->limits, err, errlen) == -1)
		return -1;
	if (is_gvisor && geteuid() != 0) {
		say(err, errlen, "gvisor: runsc needs a launcher running as root (uid %d is not); "
		    "use the namespace level", (int)geteuid());
		return -1;
	}
	if (!is_gvisor && geteuid() != 0 && check_groups(err, errlen) == -1)
		return -1;
	if (access(prog, X_OK) == -1) {
		say(err, errlen, "cannot execute %s: %s", prog, strerror(errno));
		return -1;
	}
	if (is_gvisor && helper_path(cfg, helper, sizeof(helper)) == -1) {
		say(err, errlen, "gvisor: cannot find the airlock-sandbox program to run as the "
		    "sandbox's init");
		return -1;
	}
	if ((run = calloc(1, sizeof(*run))) == NULL) {
		say(err, errlen, "out of memory");
		return -1;
	}
	run->is_gvisor = is_gvisor;
	run->pid = -1;
	run->pidfd = run->in_w = run->prog_w = run->out.fd = run->err.fd = -1;
	run->stdin_src = cfg->stdin_fd;
	run->limits = cfg->limits;
	run->out.cap = cfg->limits.stdout_max;
	run->err.cap = cfg->limits.stderr_max;
	run->start_us = now_us();
	mem = cfg->limits.mem_bytes;
	pids = cfg->limits.pids;
	if (is_gvisor) {
		/* Room for the guest's two lines, which are taken out again. */
		run->err.cap += sizeof(SB_GUEST_READY) + SB_GUEST_END_MAX;
		mem += SB_GVISOR_MEM_EXTRA;
		pids += SB_GVISOR_PIDS_EXTRA;
		arc4random_buf(rnd, sizeof(rnd));
		for (i = 0; i < sizeof(rnd); i++)
			snprintf(run->nonce + 2 * i, 3, "%02x", rnd[i]);
	}
	if (sb_cgroup_create(cfg->cgroup_parent, mem, pids, &run->cg, cgerr, sizeof(cgerr)) ==
	    -1) {
		say(err, errlen, "no cgroup control, refusing to run: %s", cgerr);
		goto fail;
	}
	envp[ne++] = (char *)"PATH=/usr/local/bin:/usr/bin:/bin";
	if (!is_gvisor) {
		if ((scfd = sb_seccomp_fd()) == -1) {
			say(err, errlen, "cannot build the seccomp filter: %s", strerror(errno));
			goto fail;
		}
		envp[ne++] = (char *)"HOME=/tmp";
		envp[ne++] = (char *)"TMPDIR=/tmp";
		envp[ne++] = (char *)"LANG=C.UTF-8";
	}
	if (cfg->allow != NULL) {
		if (!is_gvisor && (hfd = open_helper(cfg)) == -1) {
			say(err, errlen, "cannot find the airlock-sandbox helper for egress");
			goto fail;
		}
		if (start_proxy(run, cfg, sock, sizeof(sock), err, errlen) == -1)
			goto fail;
		for (i = 0; !is_gvisor && i < sizeof(proxy_env) / sizeof(proxy_env[0]); i++)
			envp[ne++] = unconst(proxy_env[i]);
	}
	envp[ne] = NULL;
	for (n = 0; cfg->argv[n] != NULL; n++)
		;
	if ((argv = calloc((size_t)n + 16, sizeof(*argv))) == NULL) {
		say(err, errlen, "out of memory");
		goto fail;
	}
	ac = 0;
	if (is_gvisor) {
		if (sb_gvisor_bundle(cfg, helper, cfg->allow != NULL ? sock : NULL, run->bundle,
		    sizeof(run->bundle), id, sizeof(id), err, errlen) == -1)
			goto fail;
		snprintf(state, sizeof(state), "--root=%s/state", run->bundle);
		argv[ac++] = (char *)"runsc";
		argv[ac++] = state;
		argv[ac++] = (char *)"--network=none";
		argv[ac++] = (char *)"--platform=ptrace";
		/* The runtime stays in the sandbox's own cgroup, made above. */
		argv[ac++] = (char *)"--ignore-cgroups";
		argv[ac++] = cfg->allow != NULL ? (char *)"--host-uds=open" :
		    (char *)"--host-uds=none";
		argv[ac++] = (char *)"--overlay2=none";
		argv[ac++] = (char *)"run";
		argv[ac++] = (char *)"--bundle";
		argv[ac++] = run->bundle;
		argv[ac++] = id;
		argv[ac] = NULL;
	} else {
		/* bwrap takes the command from its own command line, not from --args. */
		argv[ac++] = (char *)"bwrap";
		argv[ac++] = (char *)"--args";
		argv[ac++] = unconst(fdnum);
		argv[ac++] = (char *)"--";
		if (cfg->allow != NULL) {
			argv[ac++] = (char *)"/airlock/airlock-sandbox";
			argv[ac++] = (char *)"forward";
			argv[ac++] = (char *)"/airlock/proxy.sock";
			argv[ac++] = (char *)"3128";
			argv[ac++] = (char *)"--";
		}
		for (n = 0; cfg->argv[n] != NULL; n++)
			argv[ac++] = unconst(cfg->argv[n]);
		argv[ac] = NULL;
		pthread_mutex_lock(&links_lock);
		n = build_args(&a, cfg, sock, links);
		afd = n == 0 ? args_fd(&a) : -1;
		pthread_mutex_unlock(&links_lock);
		if (afd == -1) {
			say(err, errlen, "cannot pass bwrap its arguments (too many, or %s)",
			    strerror(errno));
			goto fail;
		}
	}
	if (make_pipe(in) == -1 || make_pipe(o) == -1 || make_pipe(e) == -1 ||
	    make_pipe(ex) == -1 || (cfg->has_program && !is_gvisor && make_pipe(pg) == -1)) {
		say(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	src[0] = in[0];
	src[1] = o[1];
	src[2] = e[1];
	src[3] = pg[0];
	src[4] = scfd;
	src[5] = afd;
	src[6] = ex[1];
	src[7] = hfd;
	run->pid = fork();
	if (run->pid == -1) {
		say(err, errlen, "fork: %s", strerror(errno));
		goto fail;
	}
	if (run->pid == 0)
		child(cfg, run->cg, prog, argv, envp, src, parent, is_gvisor);
	close_fd(&in[0]);
	close_fd(&o[1]);
	close_fd(&e[1]);
	close_fd(&pg[0]);
	close_fd(&ex[1]);
	close_fd(&scfd);
	close_fd(&afd);
	close_fd(&hfd);
	run->in_w = in[1];
	run->out.fd = o[0];
	run->err.fd = e[0];
	run->prog_w = pg[1];
	in[1] = o[0] = e[0] = pg[1] = -1;
	do
		n = read(ex[0], &child_errno, sizeof(child_errno));
	while (n == -1 && errno == EINTR);
	close_fd(&ex[0]);
	if (n == (ssize_t)sizeof(child_errno)) {
		say(err, errlen, "cannot start %s: %s", prog, strerror(child_errno));
		goto fail;
	}
	run->pidfd = (int)syscall(SYS_pidfd_open, run->pid, 0);
	if (run->pidfd == -1) {
		say(err, errlen, "pidfd_open: %s", strerror(errno));
		goto fail;
	}
	(void)fcntl(run->out.fd, F_SETFL, O_NONBLOCK);
	(void)fcntl(run->err.fd, F_SETFL, O_NONBLOCK);
	(void)fcntl(run->in_w, F_SETFL, O_NONBLOCK);
	if (run->prog_w != -1)
		(void)fcntl(run->prog_w, F_SETFL, O_NONBLOCK);
	free(argv);
	*out = run;
	return 0;

fail:
	free(argv);
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&o[0]);
	close_fd(&o[1]);
	close_fd(&e[0]);
	close_fd(&e[1]);
	close_fd(&pg[0]);
	close_fd(&pg[1]);
	close_fd(&ex[0]);
	close_fd(&ex[1]);
	close_fd(&scfd);
	close_fd(&afd);
	close_fd(&hfd);
	sb_free(run);
	return -1;
}

/* gVisor: the guest reads a header, the program and then stdin, all from its stdin. */
static int
frame(struct sb_run *run, const void *program, size_t program_len, const void *input,
    size_t input_len)
{
	char head[SB_GUEST_HEADER_MAX];
	int hl;

	hl = snprintf(head, sizeof(head), "AIRLOCK1 %s %zu\n", run->nonce, program_len);
	if (hl < 0 || (size_t)hl >= sizeof(head) ||
	    (run->input = malloc((size_t)hl + program_len + input_len)) == NULL)
		return -1;
	memcpy(run->input, head, (size_t)hl);
	if (program_len > 0)
		memcpy(run->input + hl, program, program_len);
	if (input_len > 0)
		memcpy(run->input + hl + program_len, input, input_len);
	run->input_len = (size_t)hl + program_len + input_len;
	return 0;
}

int
sb_feed(struct sb_run *run, const void *program, size_t program_len, const void *input,
    size_t input_len)
{
	if (run->is_fed || (program_len > 0 && run->prog_w == -1 && !run->is_gvisor)) {
		errno = EINVAL;
		return -1;
	}
	run->is_fed = 1;
	if (run->is_gvisor)
		return frame(run, program, program_len, input, input_len);
	if (program_len > 0) {
		if ((run->prog = malloc(program_len)) == NULL)
			return -1;
		memcpy(run->prog, program, program_len);
		run->prog_len = program_len;
	}
	if (input_len > 0) {
		if ((run->input = malloc(input_len)) == NULL)
			return -1;
		memcpy(run->input, input, input_len);
		run->input_len = input_len;
	}
	return 0;
}

/* Writes to a pipe whose reader may be gone, without letting SIGPIPE end the caller. */
static ssize_t
write_quiet(int fd, const void *buf, size_t len)
{
	sigset_t pipe_set, old;
	ssize_t n;
	int e;
	struct timespec zero = { 0, 0 };

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	n = write(fd, buf, len);
	e = errno;
	if (n == -1 && e == EPIPE && !sigismember(&old, SIGPIPE))
		while (sigtimedwait(&pipe_set, NULL, &zero) == -1 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return n;
}

/* Feeds one pending buffer; closes the pipe when the reader has left. */
static void
feed_pipe(int *fd, const char *buf, size_t len, size_t *off)
{
	ssize_t n;

	if (*off >= len)
		return;
	n = write_quiet(*fd, buf + *off, len - *off);
	if (n > 0)
		*off += (size_t)n;
	else if (n == -1 && errno != EAGAIN && errno != EINTR)
		close_fd(fd);
}

/* Reads what is there; returns 1 when the cap was passed, else 0. */
static int
drain(struct outbuf *b)
{
	char chunk[65536];
	ssize_t n;

	for (;;) {
		n = read(b->fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			close_fd(&b->fd);
			return 0;
		}
		if (b->data == NULL && (b->data = malloc(b->cap + 1)) == NULL) {
			/* Without room to keep output, stop the program as if over its cap. */
			b->is_truncated = 1;
			close_fd(&b->fd);
			return 1;
		}
		if ((size_t)n > b->cap - b->len) {
			memcpy(b->data + b->len, chunk, b->cap - b->len);
			b->len = b->cap;
			b->is_truncated = 1;
			close_fd(&b->fd);
			return 1;
		}
		memcpy(b->data + b->len, chunk, (size_t)n);
		b->len += (size_t)n;
	}
}

static void
stop(struct sb_run *run, enum sb_limit why, enum sb_limit *stopped)
{
	if (*stopped == SB_LIMIT_NONE)
		*stopped = why;
	if (!run->is_reaped)
		(void)kill(run->pid, SIGKILL);
	(void)sb_cgroup_kill(run->cg);
}

static void
reap(struct sb_run *run)
{
	pid_t r;

	do
		r = wait4(run->pid, &run->status, 0, &run->ru);
	while (r == -1 && errno == EINTR);
	run->is_reaped = 1;
	close_fd(&run->pidfd);
}

static int
take(struct outbuf *b, char **data, size_t *len, int *is_truncated)
{
	if (b->data == NULL && (b->data = malloc(1)) == NULL)
		return -1;
	b->data[b->len] = '\0';
	*data = b->data;
	*len = b->len;
	*is_truncated = b->is_truncated;
	b->data = NULL;
	return 0;
}

/* The program is handed over: its wall clock and CPU time count from now. */
static void
hand_over(struct sb_run *run)
{
	int64_t cpu = sb_cgroup_cpu_ns(run->cg);

	run->is_ready = 1;
	run->ready_us = now_us();
	run->cpu_base = cpu > 0 ? cpu : 0;
}

/* gVisor: takes the guest's ready line off the start of stderr, once it is all there. */
static void
check_ready(struct sb_run *run)
{
	struct outbuf *b = &run->err;
	size_t k = sizeof(SB_GUEST_READY) - 1, m;

	if (b->data == NULL || b->len == 0)
		return;
	m = b->len < k ? b->len : k;
	if (memcmp(b->data, SB_GUEST_READY, m) != 0) {
		/* runsc itself complaining: it never booted. */
		run->is_boot_failed = 1;
		return;
	}
	if (b->len < k)
		return;
	memmove(b->data, b->data + k, b->len - k);
	b->len -= k;
	hand_over(run);
}

/* gVisor: whether stderr ends with this run's end line (the program and all it started
 * are gone, its status is known). */
static int
is_ended(const struct sb_run *run)
{
	const struct outbuf *b = &run->err;
	size_t k = sizeof(SB_GUEST_END) - 1, from;
	const char *p;

	if (b->data == NULL || b->len <= k || b->data[b->len - 1] != '\n')
		return 0;
	from = b->len > SB_GUEST_END_MAX ? b->len - SB_GUEST_END_MAX : 0;
	p = memrchr(b->data + from, '\036', b->len - from);
	return p != NULL && (size_t)(b->data + b->len - p) > k + 32 &&
	    memcmp(p, SB_GUEST_END, k) == 0 && memcmp(p + k, run->nonce, 32) == 0;
}

/*
 * gVisor: takes the guest's end line off the end of stderr and its process-limit lines off
 * wherever they are (only lines carrying this run's nonce count), then applies the
 * program's own stderr cap.  Returns 1 when the program wrote more than that cap, else 0.
 */
static int
take_end(struct sb_run *run)
{
	struct outbuf *b = &run->err;
	size_t k = sizeof(SB_GUEST_END) - 1, from;
	char line[SB_GUEST_END_MAX + 1], nonce[40], pids_line[80];
	char *p;
	int status, pl;

	pl = snprintf(pids_line, sizeof(pids_line), SB_GUEST_PIDS "%s\n", run->nonce);
	while (b->data != NULL && pl > 0 &&
	    (p = memmem(b->data, b->len, pids_line, (size_t)pl)) != NULL) {
		memmove(p, p + pl, b->len - (size_t)(p - b->data) - (size_t)pl);
		b->len -= (size_t)pl;
		run->end_pids = 1;
	}

	if (b->data != NULL && b->len > k && b->data[b->len - 1] == '\n') {
		from = b->len > SB_GUEST_END_MAX ? b->len - SB_GUEST_END_MAX : 0;
		p = memrchr(b->data + from, '\036', b->len - from);
		if (p != NULL && (size_t)(b->data + b->len - p) <= SB_GUEST_END_MAX &&
		    memcmp(p, SB_GUEST_END, k) == 0) {
			memcpy(line, p + k, (size_t)(b->data + b->len - p) - k);
			line[b->data + b->len - p - k] = '\0';
			if (sscanf(line, "%39s %d", nonce, &status) == 2 &&
			    strcmp(nonce, run->nonce) == 0) {
				run->has_end = 1;
				run->end_status = status;
				b->len = (size_t)(p - b->data);
			}
		}
	}
	if (b->len > run->limits.stderr_max) {
		b->len = run->limits.stderr_max;
		b->is_truncated = 1;
		return 1;
	}
	return 0;
}

static void
judge(struct sb_run *run, enum sb_limit stopped, struct sb_result *res)
{
	struct sb_cgroup_stats st;
	int st_code = run->has_end ? run->end_status : run->status;

	res->exit_code = -1;
	res->signal = 0;
	if (run->has_end) {
		/* The guest saw the program's own status: nothing to decode. */
		if (WIFEXITED(st_code))
			res->exit_code = WEXITSTATUS(st_code);
		else if (WIFSIGNALED(st_code))
			res->signal = WTERMSIG(st_code);
	} else if (WIFEXITED(st_code)) {
		int code = WEXITSTATUS(st_code);

		/* bwrap reports a program killed by signal N as exit status 128 + N. */
		if (code > 128 && code < 128 + NSIG)
			res->signal = code - 128;
		else
			res->exit_code = code;
	} else if (WIFSIGNALED(st_code))
		res->signal = WTERMSIG(st_code);
	sb_cgroup_stats(run->cg, &st);
	if (run->is_gvisor && !run->has_end && st.oom_kills > 0) {
		/* The kernel killed the runtime, and the program with it. */
		res->exit_code = -1;
		res->signal = SIGKILL;
	}
	res->limit = stopped;
	res->limits_hit = stopped != SB_LIMIT_NONE ? SB_LIMIT_BIT(stopped) : 0;
	if (res->signal == SIGXCPU)
		res->limits_hit |= SB_LIMIT_BIT(SB_LIMIT_CPU);
	if (res->signal == SIGXFSZ)
		res->limits_hit |= SB_LIMIT_BIT(SB_LIMIT_FSIZE);
	if (st.oom_kills > 0)
		res->limits_hit |= SB_LIMIT_BIT(SB_LIMIT_MEMORY);
	if (st.pids_refused > 0 || run->end_pids)
		res->limits_hit |= SB_LIMIT_BIT(SB_LIMIT_PIDS);
	if (res->limit == SB_LIMIT_NONE && res->exit_code != 0) {
		static const enum sb_limit order[] = {
			SB_LIMIT_CPU, SB_LIMIT_FSIZE, SB_LIMIT_MEMORY, SB_LIMIT_PIDS,
		};
		size_t i;

		for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
			if (res->limits_hit & SB_LIMIT_BIT(order[i])) {
				res->limit = order[i];
				break;
			}
	}
	res->cpu_us = st.cpu_ns >= 0 ? (st.cpu_ns - run->cpu_base) / 1000 :
	    (int64_t)run->ru.ru_utime.tv_sec * 1000000 + run->ru.ru_utime.tv_usec +
	    (int64_t)run->ru.ru_stime.tv_sec * 1000000 + run->ru.ru_stime.tv_usec;
	res->mem_peak = st.mem_peak;
}

int
sb_wait(struct sb_run *run, struct sb_result *res, char *err, size_t errlen)
{
	enum sb_limit stopped = SB_LIMIT_NONE;
	int64_t deadline;
	int64_t drain_until = 0;
	int64_t exit_us = 0;
	int is_src_open = run->stdin_src != -1;
	int is_boot_late = 0;

	memset(res, 0, sizeof(*res));
	if (run->is_gvisor && !run->is_fed && frame(run, NULL, 0, NULL, 0) == -1) {
		say(err, errlen, "out of memory");
		return -1;
	}
	run->is_fed = 1;
	/* A sandbox found ready before (a warm one) starts its clocks now, like any other. */
	if (!run->is_gvisor || run->is_ready)
		hand_over(run);
	deadline = run->is_ready ? run->ready_us + run->limits.wall_ms * 1000 :
	    now_us() + (int64_t)SB_BOOT_MS * 1000;
	if (run->prog_w != -1 && run->prog_len == 0)
		close_fd(&run->prog_w);
	for (;;) {
		struct pollfd pf[6];
		int np = 0, i_out = -1, i_err = -1, i_in = -1, i_prog = -1, i_pid = -1, i_src = -1;
		int64_t now = now_us(), wait_us;
		int in_pending;

		in_pending = run->input_off < run->input_len || run->pump_off < run->pump_len;
		if (run->in_w != -1 && !in_pending && !is_src_open)
			close_fd(&run->in_w);
		if (run->out.fd != -1) {
			pf[np] = (struct pollfd){ run->out.fd, POLLIN, 0 };
			i_out = np++;
		}
		if (run->err.fd != -1) {
			pf[np] = (struct pollfd){ run->err.fd, POLLIN, 0 };
			i_err = np++;
		}
		if (run->in_w != -1 && in_pending) {
			pf[np] = (struct pollfd){ run->in_w, POLLOUT, 0 };
			i_in = np++;
		} else if (run->in_w != -1 && is_src_open) {
			pf[np] = (struct pollfd){ run->stdin_src, POLLIN, 0 };
			i_src = np++;
		}
		if (run->prog_w != -1) {
			pf[np] = (struct pollfd){ run->prog_w, POLLOUT, 0 };
			i_prog = np++;
		}
		if (!run->is_reaped) {
			pf[np] = (struct pollfd){ run->pidfd, POLLIN, 0 };
			i_pid = np++;
		}
		if (run->is_reaped && (i_out == -1 && i_err == -1))
			break;
		if (run->is_reaped && now >= drain_until)
			break;
		wait_us = run->is_reaped ? drain_until - now : deadline - now;
		if (wait_us > 100000)
			wait_us = 100000;
		if (wait_us < 0)
			wait_us = 0;
		if (poll(pf, (nfds_t)np, (int)((wait_us + 999) / 1000)) == -1 && errno != EINTR) {
			say(err, errlen, "poll: %s", strerror(errno));
			stop(run, SB_LIMIT_NONE, &stopped);
			reap(run);
			goto fail;
		}
		if (i_out != -1 && pf[i_out].revents != 0 && drain(&run->out))
			stop(run, SB_LIMIT_OUTPUT, &stopped);
		if (i_err != -1 && pf[i_err].revents != 0 && drain(&run->err))
			stop(run, SB_LIMIT_OUTPUT, &stopped);
		if (run->is_gvisor && !run->is_ready && !run->is_boot_failed) {
			check_ready(run);
			if (run->is_ready)
				deadline = run->ready_us + run->limits.wall_ms * 1000;
		}
		if (run->is_gvisor && !run->is_reaped && run->is_ready && is_ended(run)) {
			/* Everything the program wrote is in the pipes: take it, and end the
			 * runtime at once rather than wait for its own shutdown. */
			if (run->out.fd != -1 && drain(&run->out))
				stop(run, SB_LIMIT_OUTPUT, &stopped);
			stop(run, SB_LIMIT_NONE, &stopped);
		}
		if (i_prog != -1 && pf[i_prog].revents != 0) {
			feed_pipe(&run->prog_w, run->prog, run->prog_len, &run->prog_off);
			if (run->prog_off >= run->prog_len)
				close_fd(&run->prog_w);
		}
		if (i_in != -1 && pf[i_in].revents != 0) {
			if (run->input_off < run->input_len)
				feed_pipe(&run->in_w, run->input, run->input_len, &run->input_off);
			else
				feed_pipe(&run->in_w, run->pump, run->pump_len, &run->pump_off);
		}
		if (i_src != -1 && pf[i_src].revents != 0) {
			ssize_t n = read(run->stdin_src, run->pump, sizeof(run->pump));

			if (n > 0) {
				run->pump_len = (size_t)n;
				run->pump_off = 0;
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN))
				is_src_open = 0;
		}
		if (i_pid != -1 && pf[i_pid].revents != 0) {
			reap(run);
			exit_us = now_us();
			/* The namespace died with its init; anything left in the cgroup goes too. */
			(void)sb_cgroup_kill(run->cg);
			close_fd(&run->in_w);
			close_fd(&run->prog_w);
			drain_until = exit_us + 1000000;
		}
		now = now_us();
		if (!run->is_reaped && now >= deadline) {
			if (run->is_ready)
				stop(run, SB_LIMIT_WALL, &stopped);
			else {
				is_boot_late = 1;
				stop(run, SB_LIMIT_NONE, &stopped);
			}
		}
		if (!run->is_reaped && run->is_ready) {
			int64_t cpu = sb_cgroup_cpu_ns(run->cg);

			if (cpu - run->cpu_base > run->limits.cpu_ms * 1000000)
				stop(run, SB_LIMIT_CPU, &stopped);
		}
	}
	if (run->is_gvisor && !run->is_ready) {
		if (run->err.data != NULL)
			run->err.data[run->err.len] = '\0';
		say(err, errlen, "gvisor: the sandbox did not boot%s: %.300s",
		    is_boot_late ? " in time" : "", run->err.data != NULL ? run->err.data : "");
		goto fail;
	}
	if (run->is_gvisor && take_end(run) == 1 && stopped == SB_LIMIT_NONE)
		stopped = SB_LIMIT_OUTPUT;
	res->wall_us = exit_us - run->ready_us;
	judge(run, stopped, res);
	if (take(&run->out, &res->out, &res->out_len, &res->out_truncated) == -1 ||
	    take(&run->err, &res->err, &res->err_len, &res->err_truncated) == -1) {
		say(err, errlen, "out of memory");
		goto fail;
	}
	return 0;

fail:
	sb_result_release(res);
	return -1;
}

void
sb_result_release(struct sb_result *res)
{
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
	res->out_len = res->err_len = 0;
}

int
sb_ready(struct sb_run *run, int timeout_ms, char *err, size_t errlen)
{
	int64_t deadline = now_us() + (int64_t)timeout_ms * 1000;

	while (run->is_gvisor && !run->is_ready) {
		struct pollfd pf = { run->err.fd, POLLIN, 0 };
		int64_t left = deadline - now_us();

		if (run->is_boot_failed || run->err.fd == -1 || left <= 0) {
			say(err, errlen, "gvisor: the sandbox did not boot%s",
			    left <= 0 ? " in time" : "");
			return -1;
		}
		if (poll(&pf, 1, (int)((left + 999) / 1000)) == -1 && errno != EINTR) {
			say(err, errlen, "poll: %s", strerror(errno));
			return -1;
		}
		if (pf.revents != 0 && drain(&run->err)) {
			say(err, errlen, "gvisor: the runtime wrote too much before booting");
			return -1;
		}
		check_ready(run);
	}
	return 0;
}

int
sb_is_alive(const struct sb_run *run)
{
	struct pollfd pf = { run->pidfd, POLLIN, 0 };

	if (run->is_reaped || run->is_fed || run->pidfd == -1)
		return 0;
	/* A gVisor runtime that failed to boot has exited too; one that booted said so on
	 * stderr, which stays unread until the call. */
	return poll(&pf, 1, 0) == 0;
}

void
sb_free(struct sb_run *run)
{
	if (run == NULL)
		return;
	if (run->pid > 0 && !run->is_reaped) {
		(void)kill(run->pid, SIGKILL);
		if (run->cg != NULL)
			(void)sb_cgroup_kill(run->cg);
		reap(run);
	}
	close_fd(&run->pidfd);
	close_fd(&run->in_w);
	close_fd(&run->prog_w);
	close_fd(&run->out.fd);
	close_fd(&run->err.fd);
	sb_cgroup_destroy(run->cg);
	sb_proxy_stop(run->proxy);
	if (run->sockdir[0] != '\0')
		(void)rmdir(run->sockdir);
	sb_gvisor_remove(run->bundle);
	free(run->out.data);
	free(run->err.data);
	free(run->prog);
	free(run->input);
	free(run);
}
