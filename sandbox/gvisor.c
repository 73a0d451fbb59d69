/* The gVisor level: the OCI bundle runsc runs, its availability check, and the guest init. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "airlock/gvisor.h"
#include "airlock/proxy.h"
#include "airlock/sandbox.h"
#include "airlock/seccomp.h"

/* The uid and gid the program runs as inside, as at the namespace level. */
#define GUEST_UID 65534
#define GUEST_GID 65534

static void __attribute__((format(printf, 3, 4)))
say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The top-level directories that merged-/usr systems make symlinks and others make real. */
static const char *const top_dirs[] = { "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32" };

/* What of /etc a program needs to load libraries, find alternatives and verify TLS. */
static const char *const etc_files[] = {
	"/etc/ld.so.cache",
	"/etc/alternatives",
	"/etc/localtime",
	"/etc/ssl/certs",
};

/* Makes path (under the bundle's root) as a directory, or as an empty file when is_file. */
static int
make_point(const char *root, const char *path, int is_file)
{
	char full[PATH_MAX], *p;
	int fd;

	if ((size_t)snprintf(full, sizeof(full), "%s%s", root, path) >= sizeof(full)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* Parents first. */
	for (p = full + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(full, 0755) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (!is_file)
		return mkdir(full, 0755) == -1 && errno != EEXIST ? -1 : 0;
	if ((fd = open(full, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) == -1)
		return -1;
	close(fd);
	return 0;
}

/* Copies the seccomp filter, built here, into the root, readable by root only. */
static int
write_filter(const char *root)
{
	char path[PATH_MAX], buf[65536];
	int in = -1, out = -1, rc = -1;
	ssize_t n;

	if ((size_t)snprintf(path, sizeof(path), "%s%s", root, SB_GUEST_FILTER) >= sizeof(path))
		return -1;
	if ((in = sb_seccomp_fd()) == -1 ||
	    (out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400)) == -1)
		goto out;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			goto out;
	rc = n == 0 ? 0 : -1;
out:
	if (in != -1)
		close(in);
	if (out != -1)
		close(out);
	return rc;
}

static json_t *
bind_mount(const char *dest, const char *src, int is_ro)
{
	return json_pack("{s:s, s:s, s:s, s:[s, s, s, s]}", "destination", dest, "type", "bind",
	    "source", src, "options", "rbind", is_ro ? "ro" : "rw", "nosuid", "nodev");
}

static json_t *
tmpfs_mount(const char *dest, const char *size, const char *mode, int is_ro)
{
	json_t *m = json_pack("{s:s, s:s, s:s, s:[s, s, s]}", "destination", dest, "type", "tmpfs",
	    "source", "tmpfs", "options", "nosuid", "nodev", "noexec");
	json_t *opts = json_object_get(m, "options");
	char opt[64];

	if (m == NULL)
		return NULL;
	if (size != NULL) {
		snprintf(opt, sizeof(opt), "size=%s", size);
		json_array_append_new(opts, json_string(opt));
	}
	if (mode != NULL) {
		snprintf(opt, sizeof(opt), "mode=%s", mode);
		json_array_append_new(opts, json_string(opt));
	}
	if (is_ro)
		json_array_append_new(opts, json_string("ro"));
	return m;
}

/* The guest's command line: options, then "--" and the program's argv. New reference. */
static json_t *
guest_args(const struct sb_config *cfg, int has_egress)
{
	const struct sb_limits *l = &cfg->limits;
	json_t *a = json_array();
	char num[4][32];
	size_t i;

	if (a == NULL)
		return NULL;
	snprintf(num[0], sizeof(num[0]), "%" PRId64, l->cpu_ms);
	snprintf(num[1], sizeof(num[1]), "%" PRId64, l->fsize_bytes);
	snprintf(num[2], sizeof(num[2]), "%" PRId64, l->nofile);
	snprintf(num[3], sizeof(num[3]), "%" PRId64, l->pids);
	json_array_append_new(a, json_string(SB_GUEST_PATH));
	json_array_append_new(a, json_string("guest"));
	json_array_append_new(a, json_string("--cpu-ms"));
	json_array_append_new(a, json_string(num[0]));
	json_array_append_new(a, json_string("--fsize"));
	json_array_append_new(a, json_string(num[1]));
	json_array_append_new(a, json_string("--nofile"));
	json_array_append_new(a, json_string(num[2]));
	json_array_append_new(a, json_string("--pids"));
	json_array_append_new(a, json_string(num[3]));
	if (cfg->has_program)
		json_array_append_new(a, json_string("--program"));
	if (has_egress)
		json_array_append_new(a, json_string("--forward"));
	json_array_append_new(a, json_string("--"));
	for (i = 0; cfg->argv[i] != NULL; i++)
		json_array_append_new(a, json_string(cfg->argv[i]));
	return a;
}

static json_t *
spec_json(const struct sb_config *cfg, const char *helper, const char *sock, json_t *mounts)
{
	static const char *const caps[] = { "CAP_SETUID", "CAP_SETGID", "CAP_KILL" };
	json_t *env, *capset, *spec;
	size_t i;

	env = json_pack("[s, s, s, s]", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp",
	    "TMPDIR=/tmp", "LANG=C.UTF-8");
	if (env != NULL && sock != NULL) {
		json_array_append_new(env, json_string("HTTP_PROXY=http://127.0.0.1:3128"));
		json_array_append_new(env, json_string("HTTPS_PROXY=http://127.0.0.1:3128"));
		json_array_append_new(env, json_string("http_proxy=http://127.0.0.1:3128"));
		json_array_append_new(env, json_string("https_proxy=http://127.0.0.1:3128"));
		json_array_append_new(env, json_string("NO_PROXY="));
		json_array_append_new(env, json_string("no_proxy="));
	}
	capset = json_array();
	for (i = 0; capset != NULL && i < sizeof(caps) / sizeof(caps[0]); i++)
		json_array_append_new(capset, json_string(caps[i]));
	(void)helper;
	spec = json_pack("{s:s, s:{s:b, s:{s:i, s:i}, s:o, s:o, s:s, s:{s:O, s:O, s:O}, s:b,"
			 " s:[{s:s, s:i, s:i}]}, s:{s:s, s:b}, s:s, s:O,"
			 " s:{s:[{s:s}, {s:s}, {s:s}, {s:s}, {s:s}]}}",
	    "ociVersion", "1.0.2", "process", "terminal", 0, "user", "uid", 0, "gid", 0, "args",
	    guest_args(cfg, sock != NULL), "env", env, "cwd", "/tmp", "capabilities", "bounding",
	    capset, "effective", capset, "permitted", capset, "noNewPrivileges", 1, "rlimits",
	    "type", "RLIMIT_CORE", "hard", 0, "soft", 0, "root", "path", "rootfs", "readonly", 1,
	    "hostname", "airlock", "mounts", mounts, "linux", "namespaces", "type", "pid", "type",
	    "network", "type", "ipc", "type", "uts", "type", "mount");
	json_decref(capset);
	return spec;
}

int
sb_gvisor_bundle(const struct sb_config *cfg, const char *helper, const char *sock, char *dir,
    size_t dirlen, char *id, size_t idlen, char *err, size_t errlen)
{
	char root[PATH_MAX], path[PATH_MAX], link[PATH_MAX], size[32];
	json_t *mounts = NULL, *spec = NULL;
	uint8_t rnd[8];
	size_t i;
	ssize_t n;
	struct stat st;

	if (strlcpy(dir, "/tmp/airlock-gv-XXXXXX", dirlen) >= dirlen || mkdtemp(dir) == NULL) {
		say(err, errlen, "cannot make the sandbox's bundle directory: %s", strerror(errno));
		dir[0] = '\0';
		return -1;
	}
	arc4random_buf(rnd, sizeof(rnd));
	snprintf(id, idlen, "airlock-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
	    rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	snprintf(root, sizeof(root), "%s/rootfs", dir);
	snprintf(size, sizeof(size), "%" PRId64, cfg->limits.tmp_bytes);
	if ((mounts = json_array()) == NULL || mkdir(root, 0755) == -1)
		goto fail_errno;
	json_array_append_new(mounts,
	    json_pack("{s:s, s:s, s:s}", "destination", "/proc", "type", "proc", "source", "proc"));
	json_array_append_new(mounts, tmpfs_mount("/dev", NULL, "0755", 0));
	json_array_append_new(mounts, tmpfs_mount("/dev/shm", size, "1777", 0));
	json_array_append_new(mounts, tmpfs_mount("/tmp", size, "1777", 0));
	/* An empty, read-only /sys: without it runsc mounts its own sysfs there. */
	json_array_append_new(mounts, tmpfs_mount("/sys", "4096", "0555", 1));
	json_array_append_new(mounts, bind_mount("/usr", "/usr", 1));
	for (i = 0; i < sizeof(top_dirs) / sizeof(top_dirs[0]); i++) {
		if (lstat(top_dirs[i], &st) == -1)
			continue;
		if (S_ISLNK(st.st_mode)) {
			if ((n = readlink(top_dirs[i], link, sizeof(link) - 1)) <= 0)
				continue;
			link[n] = '\0';
			snprintf(path, sizeof(path), "%s%s", root, top_dirs[i]);
			if (symlink(link, path) == -1)
				goto fail_errno;
		} else if (S_ISDIR(st.st_mode)) {
			json_array_append_new(mounts, bind_mount(top_dirs[i], top_dirs[i], 1));
			if (make_point(root, top_dirs[i], 0) == -1)
				goto fail_errno;
		}
	}
	for (i = 0; i < sizeof(etc_files) / sizeof(etc_files[0]); i++) {
		if (stat(etc_files[i], &st) == -1)
			continue;
		if (make_point(root, etc_files[i], !S_ISDIR(st.st_mode)) == -1)
			goto fail_errno;
		json_array_append_new(mounts, bind_mount(etc_files[i], etc_files[i], 1));
	}
	if (make_point(root, SB_GUEST_PATH, 1) == -1 || write_filter(root) == -1)
		goto fail_errno;
	json_array_append_new(mounts, bind_mount(SB_GUEST_PATH, helper, 1));
	if (sock != NULL) {
		if (make_point(root, SB_GUEST_SOCK, 1) == -1)
			goto fail_errno;
		json_array_append_new(mounts, bind_mount(SB_GUEST_SOCK, sock, 0));
	}
	if (make_point(root, "/usr", 0) == -1 || make_point(root, "/tmp", 0) == -1 ||
	    make_point(root, "/proc", 0) == -1 || make_point(root, "/dev", 0) == -1 ||
	    make_point(root, "/sys", 0) == -1)
		goto fail_errno;
	if ((spec = spec_json(cfg, helper, sock, mounts)) == NULL) {
		say(err, errlen, "cannot build the sandbox's OCI spec");
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/config.json", dir);
	if (json_dump_file(spec, path, JSON_COMPACT) == -1)
		goto fail_errno;
	json_decref(spec);
	json_decref(mounts);
	return 0;

fail_errno:
	say(err, errlen, "cannot write the sandbox's bundle in %s: %s", dir, strerror(errno));
fail:
	json_decref(spec);
	json_decref(mounts);
	sb_gvisor_remove(dir);
	dir[0] = '\0';
	return -1;
}

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		(void)rmdir(path);
	else
		(void)unlink(path);
	return 0;
}

void
sb_gvisor_remove(const char *dir)
{
	if (dir == NULL || dir[0] == '\0')
		return;
	(void)nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

int
sb_gvisor_usable(const char *runsc, char *err, size_t errlen)
{
	const char *path = runsc != NULL ? runsc : "/usr/bin/runsc";

	if (access(path, X_OK) == -1) {
		say(err, errlen, "gVisor (runsc) cannot be run from %s: %s", path, strerror(errno));
		return -1;
	}
	if (geteuid() != 0) {
		say(err, errlen,
		    "gVisor (runsc) runs its sandboxes as root here, and this process "
		    "runs as uid %u",
		    (unsigned)geteuid());
		return -1;
	}
	return 0;
}

int
sb_gvisor_check(const char *runsc, char *err, size_t errlen)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static int state; /* 0 unknown, 1 works, -1 does not */
	static char why[512];
	static const char *const argv[] = { "true", NULL };
	struct sb_config cfg;
	struct sb_run *run = NULL;
	struct sb_result res;
	char msg[400];
	int rc;

	pthread_mutex_lock(&lock);
	if (state == 0) {
		memset(&cfg, 0, sizeof(cfg));
		memset(&res, 0, sizeof(res));
		sb_limits_default(&cfg.limits);
		cfg.argv = argv;
		cfg.stdin_fd = -1;
		cfg.isolation = SB_ISOLATION_GVISOR;
		cfg.runsc = runsc;
		if (sb_spawn(&cfg, &run, msg, sizeof(msg)) == -1 ||
		    sb_feed(run, NULL, 0, NULL, 0) == -1 ||
		    sb_wait(run, &res, msg, sizeof(msg)) == -1)
			snprintf(why, sizeof(why), "%s", msg);
		else if (res.exit_code != 0)
			snprintf(why, sizeof(why),
			    "a sandbox running true ended with %s %d: %.200s",
			    res.signal != 0 ? "signal" : "status",
			    res.signal != 0 ? res.signal : res.exit_code, res.err);
		state = why[0] == '\0' ? 1 : -1;
		sb_result_release(&res);
		sb_free(run);
	}
	rc = state == 1 ? 0 : -1;
	if (rc == -1)
		say(err, errlen, "gVisor (runsc) cannot start a sandbox here: %s", why);
	pthread_mutex_unlock(&lock);
	return rc;
}

/* ---- The guest: process 1 inside gVisor. ---- */

static int sigchld_w = -1;

static void
on_sigchld(int sig)
{
	int e = errno;

	(void)sig;
	(void)!write(sigchld_w, "c", 1);
	errno = e;
}

/*
 * Reads the filter the launcher built on the host (libseccomp cannot build it inside:
 * gVisor does not answer the probes it uses to learn which actions the kernel has) into
 * buf.  Returns its length in bytes, or -1.
 */
static ssize_t
read_filter(struct sock_filter *buf, size_t len)
{
	int fd;
	ssize_t n;

	if ((fd = open(SB_GUEST_FILTER, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, len);
	close(fd);
	if (n <= 0 || (size_t)n == len || n % (ssize_t)sizeof(*buf) != 0)
		return -1;
	return n;
}

/* Loads the namespace level's seccomp filter into the calling process. */
static int
load_filter(struct sock_filter *insns, ssize_t len)
{
	struct sock_fprog prog;

	if (len <= 0) {
		errno = EINVAL;
		return -1;
	}
	prog.len = (unsigned short)(len / (ssize_t)sizeof(*insns));
	prog.filter = insns;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

struct guest_opts {
	long long cpu_ms, fsize, nofile, pids;
	int has_program, has_forward;
	char **argv;
};

static int
set_limit(int resource, rlim_t soft, rlim_t hard)
{
	struct rlimit rl = { soft, hard };

	return setrlimit(resource, &rl);
}

/* In the program's process: limits, credentials, filter, then the program itself. */
static void __attribute__((noreturn)) guest_child(const struct guest_opts *o, int in_r, int prog_r,
    struct sock_filter *filter, ssize_t filter_len)
{
	const char *what = "setsid";
	rlim_t cpu = (rlim_t)(o->cpu_ms + 999) / 1000;
	/* gVisor refuses a fork once the count is past the limit, Linux once it reaches it:
	 * one less gives the same number of processes at most. */
	rlim_t nproc = o->pids > 1 ? (rlim_t)o->pids - 1 : 1;

	if (setsid() == -1)
		goto fail;
	what = "descriptors";
	if (dup2(in_r, 0) == -1 || (prog_r != -1 && dup2(prog_r, SB_PROGRAM_FD) == -1))
		goto fail;
	closefrom(prog_r != -1 ? SB_PROGRAM_FD + 1 : SB_PROGRAM_FD);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	what = "rlimits";
	if (set_limit(RLIMIT_CPU, cpu, cpu + 1) == -1 ||
	    set_limit(RLIMIT_FSIZE, (rlim_t)o->fsize, (rlim_t)o->fsize) == -1 ||
	    set_limit(RLIMIT_NOFILE, (rlim_t)o->nofile, (rlim_t)o->nofile) == -1 ||
	    set_limit(RLIMIT_NPROC, nproc, nproc) == -1 || set_limit(RLIMIT_CORE, 0, 0) == -1)
		goto fail;
	what = "credentials";
	if (setgroups(0, NULL) == -1 || setresgid(GUEST_GID, GUEST_GID, GUEST_GID) == -1 ||
	    setresuid(GUEST_UID, GUEST_UID, GUEST_UID) == -1)
		goto fail;
	what = "no_new_privs";
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		goto fail;
	what = "seccomp";
	if (load_filter(filter, filter_len) == -1)
		goto fail;
	what = "chdir /tmp";
	if (chdir("/tmp") == -1)
		goto fail;
	if (o->has_forward)
		(void)sb_forward_exec(SB_GUEST_SOCK, SB_PROXY_PORT, o->argv);
	else {
		execvp(o->argv[0], o->argv);
		fprintf(stderr, "airlock-sandbox: %s: %s\n", o->argv[0], strerror(errno));
	}
	_exit(127);
fail:
	fprintf(stderr, "airlock-sandbox guest: %s: %s\n", what, strerror(errno));
	_exit(127);
}

/* Reads the header line from stdin, one byte at a time: nothing past it is consumed. */
static int
read_header(char *nonce, size_t noncelen, size_t *prog_len)
{
	char line[SB_GUEST_HEADER_MAX + 1], hex[40];
	size_t n = 0;
	unsigned long long len;
	ssize_t r;

	while (n < SB_GUEST_HEADER_MAX) {
		r = read(0, line + n, 1);
		if (r == -1 && errno == EINTR)
			continue;
		if (r != 1)
			return -1;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	if (sscanf(line, "AIRLOCK1 %39s %llu", hex, &len) != 2 || strlen(hex) != 32 ||
	    len > (1ULL << 30))
		return -1;
	strlcpy(nonce, hex, noncelen);
	*prog_len = (size_t)len;
	return 0;
}

/* The number of processes in the sandbox but this one. */
static int
count_procs(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] >= '1' && de->d_name[0] <= '9' && strcmp(de->d_name, "1") != 0)
			n++;
	closedir(d);
	return n;
}

static int
parse_guest(int argc, char **argv, struct guest_opts *o)
{
	const char *errstr;
	int i;

	memset(o, 0, sizeof(*o));
	for (i = 2; i < argc; i++) {
		long long *v = NULL;

		if (strcmp(argv[i], "--") == 0) {
			o->argv = argv + i + 1;
			return argv[i + 1] != NULL && o->cpu_ms > 0 && o->nofile > 0 && o->pids > 0
			    ? 0
			    : -1;
		}
		if (strcmp(argv[i], "--program") == 0)
			o->has_program = 1;
		else if (strcmp(argv[i], "--forward") == 0)
			o->has_forward = 1;
		else if (strcmp(argv[i], "--cpu-ms") == 0)
			v = &o->cpu_ms;
		else if (strcmp(argv[i], "--fsize") == 0)
			v = &o->fsize;
		else if (strcmp(argv[i], "--nofile") == 0)
			v = &o->nofile;
		else if (strcmp(argv[i], "--pids") == 0)
			v = &o->pids;
		else
			return -1;
		if (v != NULL) {
			if (++i >= argc)
				return -1;
			*v = strtonum(argv[i], 0, LLONG_MAX, &errstr);
			if (errstr != NULL)
				return -1;
		}
	}
	return -1;
}

/*
 * Moves bytes from stdin to the program: the first *left to prog_w, the rest to in_w.
 * Returns 0 while there is more to do, 1 when stdin is done (both pipes closed).
 */
static int
pump(char *buf, size_t cap, size_t *have, size_t *off, size_t *left, int *prog_w, int *in_w,
    int *is_eof)
{
	ssize_t n;
	int *to;

	if (*prog_w != -1 && *left == 0 && *off >= *have) {
		close(*prog_w);
		*prog_w = -1;
	}
	if (*off >= *have && !*is_eof) {
		size_t want = cap;

		if (*prog_w != -1 && *left < want)
			want = *left;
		n = read(0, buf, want);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			return 0;
		if (n <= 0)
			*is_eof = 1;
		else {
			*have = (size_t)n;
			*off = 0;
		}
	}
	to = *prog_w != -1 ? prog_w : in_w;
	if (*off < *have && *to != -1) {
		n = write(*to, buf + *off, *have - *off);
		if (n > 0) {
			*off += (size_t)n;
			if (to == prog_w)
				*left -= (size_t)n;
		} else if (n == -1 && errno != EAGAIN && errno != EINTR) {
			/* The reader is gone: drop what was meant for it. */
			if (to == prog_w)
				*left -= *have - *off;
			*off = *have;
			close(*to);
			*to = -1;
		}
	} else if (*off < *have)
		*off = *have;
	if (*is_eof && *off >= *have) {
		if (*prog_w != -1)
			close(*prog_w);
		if (*in_w != -1)
			close(*in_w);
		*prog_w = *in_w = -1;
		return 1;
	}
	return 0;
}

int
sb_guest_main(int argc, char **argv)
{
	struct guest_opts o;
	struct sigaction sa;
	char nonce[40], buf[65536];
	int in[2] = { -1, -1 }, pg[2] = { -1, -1 }, sp[2] = { -1, -1 };
	size_t left = 0, have = 0, off = 0;
	int status = 0, pids_hit = 0, is_eof = 0, is_done = 0, is_header = 0;
	pid_t child, r;
	struct timespec now, counted = { 0, 0 };
	static struct sock_filter filter[4096];
	ssize_t filter_len;

	if (parse_guest(argc, argv, &o) == -1) {
		fprintf(stderr,
		    "usage: airlock-sandbox guest [--program] [--forward] --cpu-ms MS "
		    "--fsize B --nofile N --pids N -- CMD...\n(the init inside a gVisor sandbox; "
		    "not meant to be run by hand)\n");
		return 64;
	}
	filter_len = read_filter(filter, sizeof(filter));
	(void)!write(2, SB_GUEST_READY, sizeof(SB_GUEST_READY) - 1);
	if (pipe2(in, O_CLOEXEC) == -1 || (o.has_program && pipe2(pg, O_CLOEXEC) == -1) ||
	    pipe2(sp, O_CLOEXEC | O_NONBLOCK) == -1) {
		fprintf(stderr, "airlock-sandbox guest: pipe: %s\n", strerror(errno));
		return 71;
	}
	sigchld_w = sp[1];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigchld;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* The program starts at once (its interpreter loads while the launcher has nothing
	 * for it yet) and blocks reading its program. */
	if ((child = fork()) == -1) {
		fprintf(stderr, "airlock-sandbox guest: fork: %s\n", strerror(errno));
		return 71;
	}
	if (child == 0)
		guest_child(&o, in[0], pg[0], filter, filter_len);
	close(in[0]);
	if (pg[0] != -1)
		close(pg[0]);
	(void)fcntl(in[1], F_SETFL, O_NONBLOCK);
	if (pg[1] != -1)
		(void)fcntl(pg[1], F_SETFL, O_NONBLOCK);
	nonce[0] = '\0';
	if (read_header(nonce, sizeof(nonce), &left) == 0)
		is_header = 1;
	else
		is_eof = 1;
	if (pg[1] == -1)
		left = 0;
	(void)fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	for (;;) {
		struct pollfd pf[3];
		int np = 0;

		if (!is_done)
			is_done =
			    pump(buf, sizeof(buf), &have, &off, &left, &pg[1], &in[1], &is_eof);
		r = waitpid(child, &status, WNOHANG);
		if (r == child)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (is_header && !pids_hit &&
		    (now.tv_sec - counted.tv_sec) * 1000000000L + (now.tv_nsec - counted.tv_nsec) >=
			10000000L) {
			counted = now;
			/* Said at once: a run stopped from outside never gets to its end line. */
			if ((pids_hit = count_procs() >= o.pids))
				dprintf(2, SB_GUEST_PIDS "%s\n", nonce);
		}
		pf[np++] = (struct pollfd){ sp[0], POLLIN, 0 };
		if (!is_done && off >= have)
			pf[np++] = (struct pollfd){ 0, POLLIN, 0 };
		else if (!is_done)
			pf[np++] = (struct pollfd){ pg[1] != -1 ? pg[1] : in[1], POLLOUT, 0 };
		(void)poll(pf, (nfds_t)np, 20);
		if (pf[0].revents != 0)
			while (read(sp[0], buf + sizeof(buf) - 16, 16) > 0)
				;
	}
	if (pg[1] != -1)
		close(pg[1]);
	if (in[1] != -1)
		close(in[1]);
	/* Whatever the program left running goes with it, as a namespace's does. */
	(void)kill(-1, SIGKILL);
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	if (is_header)
		dprintf(2, SB_GUEST_END "%s %d\n", nonce, status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* The proof's file for the runsc described by st, and what it holds. */
static int
proof_of(const struct stat *st, char *path, size_t pathlen, char *text, size_t textlen)
{
	char boot[64] = "";
	FILE *f;

	if ((f = fopen("/proc/sys/kernel/random/boot_id", "re")) != NULL) {
		if (fgets(boot, sizeof(boot), f) == NULL)
			boot[0] = '\0';
		boot[strcspn(boot, "\n")] = '\0';
		fclose(f);
	}
	if ((size_t)snprintf(path, pathlen, "%s/gvisor-%ju-%ju", SB_GVISOR_PROOF_DIR,
		(uintmax_t)st->st_dev, (uintmax_t)st->st_ino) >= pathlen)
		return -1;
	if ((size_t)snprintf(text, textlen, "boot %s size %jd mtime %jd.%09ld\n", boot,
		(intmax_t)st->st_size, (intmax_t)st->st_mtim.tv_sec,
		st->st_mtim.tv_nsec) >= textlen)
		return -1;
	return 0;
}

int
sb_gvisor_proven(const char *runsc, char *err, size_t errlen)
{
	const char *bin = runsc != NULL ? runsc : "/usr/bin/runsc";
	char path[PATH_MAX], tmp[PATH_MAX], want[256], have[256];
	struct stat st, pst;
	ssize_t n;
	int fd;

	if (sb_gvisor_usable(runsc, err, errlen) == -1)
		return -1;
	if (stat(bin, &st) == -1 || proof_of(&st, path, sizeof(path), want, sizeof(want)) == -1)
		return sb_gvisor_check(runsc, err, errlen);
	/* A proof counts only if root wrote it, alone, and it names this runsc and this boot. */
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) != -1) {
		n = fstat(fd, &pst) == 0 && pst.st_uid == 0 && (pst.st_mode & 077) == 0 &&
			S_ISREG(pst.st_mode)
		    ? read(fd, have, sizeof(have) - 1)
		    : -1;
		close(fd);
		if (n >= 0) {
			have[n] = '\0';
			if (strcmp(have, want) == 0)
				return 0;
		}
	}
	if (sb_gvisor_check(runsc, err, errlen) == -1)
		return -1;
	/* Kept for the next start of this boot; a proof that cannot be written costs only
	 * that next start its own check. */
	if ((mkdir(SB_GVISOR_PROOF_DIR, 0700) == 0 || errno == EEXIST) &&
	    (size_t)snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid()) < sizeof(tmp) &&
	    (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600)) != -1) {
		n = write(fd, want, strlen(want));
		if (close(fd) == -1 || n != (ssize_t)strlen(want) || rename(tmp, path) == -1)
			(void)unlink(tmp);
	}
	return 0;
}
