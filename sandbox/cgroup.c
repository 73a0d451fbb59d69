/* One cgroup per sandbox: the process and memory limits that hold even for root. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "airlock/cgroup.h"

#define CG_ROOT "/sys/fs/cgroup"

enum { CG_PIDS, CG_MEMORY, CG_CPUACCT, CG_NDIRS };

struct sb_cgroup {
	int is_v2;
	/* v2 uses dir[0] only; v1 one directory per hierarchy, cpuacct optional (""). */
	char dir[CG_NDIRS][256];
	int procs_fd[CG_NDIRS];
};

static void __attribute__((format(printf, 3, 4)))
say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
write_file(const char *dir, const char *name, const char *value)
{
	char path[320];
	int fd;
	ssize_t n;
	size_t len = strlen(value);

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	n = write(fd, value, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

/* Reads a small file into buf (NUL-terminated). Returns 0 or -1. */
static int
read_file(const char *dir, const char *name, char *buf, size_t len)
{
	char path[320];
	int fd;
	ssize_t n;
	size_t got = 0;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while (got + 1 < len && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	return 0;
}

static int64_t
read_number(const char *dir, const char *name)
{
	char buf[64];
	const char *errstr;
	long long v;

	if (dir[0] == '\0' || read_file(dir, name, buf, sizeof(buf)) == -1)
		return -1;
	buf[strcspn(buf, "\n")] = '\0';
	v = strtonum(buf, 0, LLONG_MAX, &errstr);
	return errstr == NULL ? v : -1;
}

/* Finds "key N" among the lines of a flat-keyed file. */
static int64_t
read_key(const char *dir, const char *name, const char *key)
{
	char buf[4096];
	char *line, *save = NULL;
	size_t klen = strlen(key);

	if (dir[0] == '\0' || read_file(dir, name, buf, sizeof(buf)) == -1)
		return -1;
	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		const char *errstr;
		long long v;

		if (strncmp(line, key, klen) != 0 || line[klen] != ' ')
			continue;
		v = strtonum(line + klen + 1, 0, LLONG_MAX, &errstr);
		return errstr == NULL ? v : -1;
	}
	return -1;
}

static int
is_mount(const char *path, long magic)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && sf.f_type == magic;
}

static int
make_dir(const char *path)
{
	return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

static int
valid_parent(const char *parent)
{
	const char *p;

	if (parent[0] == '\0' || parent[0] == '/' || strstr(parent, "..") != NULL)
		return 0;
	for (p = parent; *p != '\0'; p++)
		if (!(*p == '/' || *p == '-' || *p == '_' || *p == '.' ||
			(*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9')))
			return 0;
	return 1;
}

static int
setup_v2(struct sb_cgroup *cg, const char *parent, const char *name, int64_t mem_bytes,
    int64_t pids, char *err, size_t errlen)
{
	char pdir[256];
	char num[32];

	if ((size_t)snprintf(pdir, sizeof(pdir), CG_ROOT "/%s", parent) >= sizeof(pdir) ||
	    (size_t)snprintf(cg->dir[0], sizeof(cg->dir[0]), "%s/%s", pdir, name) >=
		sizeof(cg->dir[0])) {
		say(err, errlen, "cgroup path too long");
		return -1;
	}
	if (make_dir(pdir) == -1) {
		say(err, errlen, "cannot create cgroup %s: %s", pdir, strerror(errno));
		return -1;
	}
	/* Either write may fail when already enabled or delegated; the check below tells. */
	(void)write_file(CG_ROOT, "cgroup.subtree_control", "+pids +memory");
	(void)write_file(pdir, "cgroup.subtree_control", "+pids +memory");
	if (mkdir(cg->dir[0], 0755) == -1) {
		say(err, errlen, "cannot create cgroup %s: %s", cg->dir[0], strerror(errno));
		cg->dir[0][0] = '\0';
		return -1;
	}
	snprintf(num, sizeof(num), "%" PRId64, pids);
	if (write_file(cg->dir[0], "pids.max", num) == -1) {
		say(err, errlen, "the pids controller is not enabled in %s", pdir);
		return -1;
	}
	snprintf(num, sizeof(num), "%" PRId64, mem_bytes);
	if (write_file(cg->dir[0], "memory.max", num) == -1) {
		say(err, errlen, "the memory controller is not enabled in %s", pdir);
		return -1;
	}
	(void)write_file(cg->dir[0], "memory.swap.max", "0");
	return 0;
}

static int
setup_v1(struct sb_cgroup *cg, const char *parent, const char *name, int64_t mem_bytes,
    int64_t pids, char *err, size_t errlen)
{
	static const char *const hier[CG_NDIRS] = { "pids", "memory", "cpuacct" };
	char num[32];
	int i;

	for (i = 0; i < CG_NDIRS; i++) {
		char root[128], pdir[256];

		snprintf(root, sizeof(root), CG_ROOT "/%s", hier[i]);
		if (!is_mount(root, CGROUP_SUPER_MAGIC)) {
			if (i == CG_CPUACCT)
				continue;
			say(err, errlen,
			    "no cgroup v1 %s hierarchy at %s and no cgroup2 at " CG_ROOT, hier[i],
			    root);
			return -1;
		}
		if ((size_t)snprintf(pdir, sizeof(pdir), "%s/%s", root, parent) >= sizeof(pdir) ||
		    (size_t)snprintf(cg->dir[i], sizeof(cg->dir[i]), "%s/%s", pdir, name) >=
			sizeof(cg->dir[i])) {
			say(err, errlen, "cgroup path too long");
			return -1;
		}
		if (make_dir(pdir) == -1 || mkdir(cg->dir[i], 0755) == -1) {
			int e = errno;

			cg->dir[i][0] = '\0';
			if (i == CG_CPUACCT)
				continue;
			say(err, errlen, "cannot create a cgroup under %s: %s", pdir, strerror(e));
			return -1;
		}
	}
	snprintf(num, sizeof(num), "%" PRId64, pids);
	if (write_file(cg->dir[CG_PIDS], "pids.max", num) == -1) {
		say(err, errlen, "cannot set %s/pids.max: %s", cg->dir[CG_PIDS], strerror(errno));
		return -1;
	}
	snprintf(num, sizeof(num), "%" PRId64, mem_bytes);
	if (write_file(cg->dir[CG_MEMORY], "memory.limit_in_bytes", num) == -1) {
		say(err, errlen, "cannot set %s/memory.limit_in_bytes: %s", cg->dir[CG_MEMORY],
		    strerror(errno));
		return -1;
	}
	/* Present only when swap is accounted; without it swap is not limited. */
	(void)write_file(cg->dir[CG_MEMORY], "memory.memsw.limit_in_bytes", num);
	return 0;
}

int
sb_cgroup_create(const char *parent, int64_t mem_bytes, int64_t pids, struct sb_cgroup **out,
    char *err, size_t errlen)
{
	static unsigned counter;
	struct sb_cgroup *cg = NULL;
	char name[64];
	int i;

	*out = NULL;
	if (parent == NULL)
		parent = "airlock";
	if (!valid_parent(parent)) {
		say(err, errlen, "invalid cgroup parent name \"%s\"", parent);
		goto fail;
	}
	if ((cg = calloc(1, sizeof(*cg))) == NULL) {
		say(err, errlen, "out of memory");
		goto fail;
	}
	for (i = 0; i < CG_NDIRS; i++)
		cg->procs_fd[i] = -1;
	snprintf(name, sizeof(name), "sb-%ld-%u-%08x", (long)getpid(),
	    __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED), arc4random());
	cg->is_v2 = is_mount(CG_ROOT, CGROUP2_SUPER_MAGIC);
	if (cg->is_v2) {
		if (setup_v2(cg, parent, name, mem_bytes, pids, err, errlen) == -1)
			goto fail;
	} else if (setup_v1(cg, parent, name, mem_bytes, pids, err, errlen) == -1)
		goto fail;
	for (i = 0; i < CG_NDIRS; i++) {
		char path[320];

		if (cg->dir[i][0] == '\0')
			continue;
		snprintf(path, sizeof(path), "%s/cgroup.procs", cg->dir[i]);
		if ((cg->procs_fd[i] = open(path, O_WRONLY | O_CLOEXEC)) == -1) {
			say(err, errlen, "cannot open %s: %s", path, strerror(errno));
			goto fail;
		}
	}
	*out = cg;
	return 0;

fail:
	sb_cgroup_destroy(cg);
	return -1;
}

int
sb_cgroup_enter(const struct sb_cgroup *cg)
{
	int i;

	for (i = 0; i < CG_NDIRS; i++)
		if (cg->procs_fd[i] != -1 && write(cg->procs_fd[i], "0", 1) != 1)
			return -1;
	return 0;
}

/* Signals every process listed; returns how many were listed, or -1 on a read error. */
static int
kill_listed(const char *dir)
{
	char buf[16384];
	char *line, *save = NULL;
	int n = 0;

	if (read_file(dir, "cgroup.procs", buf, sizeof(buf)) == -1)
		return -1;
	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		const char *errstr;
		long long pid = strtonum(line, 1, INT32_MAX, &errstr);

		if (errstr == NULL) {
			(void)kill((pid_t)pid, SIGKILL);
			n++;
		}
	}
	return n;
}

int
sb_cgroup_kill(const struct sb_cgroup *cg)
{
	const char *dir = cg->dir[0];
	struct timespec pause = { 0, 2 * 1000 * 1000 };
	int round;

	if (dir[0] == '\0')
		return 0;
	if (cg->is_v2)
		(void)write_file(dir, "cgroup.kill", "1");
	for (round = 0; round < 1000; round++) {
		int n = kill_listed(dir);

		if (n <= 0)
			return n;
		nanosleep(&pause, NULL);
	}
	return -1;
}

int64_t
sb_cgroup_cpu_ns(const struct sb_cgroup *cg)
{
	int64_t us;

	if (!cg->is_v2)
		return read_number(cg->dir[CG_CPUACCT], "cpuacct.usage");
	us = read_key(cg->dir[0], "cpu.stat", "usage_usec");
	return us < 0 ? -1 : us * 1000;
}

void
sb_cgroup_stats(const struct sb_cgroup *cg, struct sb_cgroup_stats *st)
{
	st->cpu_ns = sb_cgroup_cpu_ns(cg);
	if (cg->is_v2) {
		st->mem_peak = read_number(cg->dir[0], "memory.peak");
		st->oom_kills = read_key(cg->dir[0], "memory.events", "oom_kill");
		st->pids_refused = read_key(cg->dir[0], "pids.events", "max");
	} else {
		st->mem_peak = read_number(cg->dir[CG_MEMORY], "memory.max_usage_in_bytes");
		st->oom_kills = read_key(cg->dir[CG_MEMORY], "memory.oom_control", "oom_kill");
		st->pids_refused = read_key(cg->dir[CG_PIDS], "pids.events", "max");
	}
}

void
sb_cgroup_destroy(struct sb_cgroup *cg)
{
	struct timespec pause = { 0, 2 * 1000 * 1000 };
	int i, tries;

	if (cg == NULL)
		return;
	(void)sb_cgroup_kill(cg);
	for (i = 0; i < CG_NDIRS; i++) {
		if (cg->procs_fd[i] != -1)
			close(cg->procs_fd[i]);
		if (cg->dir[i][0] == '\0')
			continue;
		/* Dying processes leave the cgroup a moment after SIGKILL. */
		for (tries = 0; tries < 500 && rmdir(cg->dir[i]) == -1 && errno == EBUSY; tries++)
			nanosleep(&pause, NULL);
	}
	free(cg);
}
