/*
 * sandbox_bwrap.c: bubblewrap's side of a launch: the argument list bwrap reads from a
 * descriptor (namespaces, mounts, the read-only system, /etc's few files), the limits
 * checked and set, the supplementary groups dropped, and the child that places its
 * descriptors and execs bwrap (or runsc).
 */
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
#include "sandbox_int.h"

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
static const char *const top_dirs[SB_TOP_DIRS] = {
	"/bin",
	"/sbin",
	"/lib",
	"/lib32",
	"/lib64",
	"/libx32",
};

/* What of /etc a program needs to load libraries, find alternatives and verify TLS; no
 * secrets. Each bind costs bwrap a pass over the mount table, so the list is short. */
static const char *const etc_files[] = {
	"/etc/ld.so.cache",
	"/etc/alternatives",
	"/etc/localtime",
	"/etc/ssl/certs",
};

int
sb_build_args(struct args *a, const struct sb_config *cfg, const char *sock, char links[][PATH_MAX])
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
int
sb_args_fd(const struct args *a)
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
int
sb_open_helper(const struct sb_config *cfg)
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

int
sb_check_limits(const struct sb_limits *l, char *err, size_t errlen)
{
	if (l->wall_ms <= 0 || l->cpu_ms <= 0 || l->mem_bytes < (4LL << 20) || l->pids < 4 ||
	    l->fsize_bytes < 0 || l->nofile < 16 || l->tmp_bytes < 4096 || l->stdout_max == 0 ||
	    l->stderr_max == 0 || l->stdout_max > (1U << 30) || l->stderr_max > (1U << 30)) {
		sb_say(err, errlen,
		    "limits out of range (memory at least 4 MiB, pids at least 4, "
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
int
sb_check_groups(char *err, size_t errlen)
{
	gid_t *list = NULL, egid = getegid();
	int n, i, foreign = 0;

	if ((n = getgroups(0, NULL)) <= 0 || can_setgid())
		return 0;
	if ((list = calloc((size_t)n, sizeof(*list))) == NULL || (n = getgroups(n, list)) == -1) {
		free(list);
		sb_say(err, errlen, "supplementary groups: cannot read them: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++)
		if (list[i] != egid)
			foreign++;
	free(list);
	if (foreign == 0)
		return 0;
	sb_say(err, errlen,
	    "supplementary groups: the launcher has %d besides its own gid and "
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

void __attribute__((noreturn))
sb_child(const struct sb_config *cfg, const struct sb_cgroup *cg, const char *prog,
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
