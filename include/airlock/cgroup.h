/* One cgroup per sandbox: the process and memory limits that hold even for root. */
/*
 * The struct sb_cgroup sb_cgroup_create gives is the caller's: sb_cgroup_destroy removes
 * the cgroup and frees it.
 */
#ifndef AIRLOCK_CGROUP_H
#define AIRLOCK_CGROUP_H

#include <stddef.h>
#include <stdint.h>

struct sb_cgroup;

/* What a sandbox's cgroup counted; a field the hierarchy cannot tell is -1. */
struct sb_cgroup_stats {
	int64_t cpu_ns;	      /* CPU time of every process that ran in it */
	int64_t mem_peak;     /* highest memory charge, bytes */
	int64_t oom_kills;    /* processes the memory limit killed */
	int64_t pids_refused; /* forks refused by the process limit */
};

/*
 * Creates a cgroup for one sandbox under `parent` (a name relative to each hierarchy's
 * root, created when missing; "airlock" by default), with at most `pids` processes and
 * `mem_bytes` of memory (swap included where the kernel accounts it). Uses cgroup v2 when
 * /sys/fs/cgroup is a cgroup2 mount, else the v1 pids and memory hierarchies, plus
 * cpuacct when it can. When neither can be used, fails with a message in `err` saying
 * why; the sandbox must then refuse to run. On success stores a new cgroup in *out (owned
 * by the caller, released by sb_cgroup_destroy) and returns 0; on error returns -1.
 */
int sb_cgroup_create(const char *parent, int64_t mem_bytes, int64_t pids, struct sb_cgroup **out,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Moves the calling process into the cgroup. Only async-signal-safe calls: meant for a
 * child between fork and exec. Returns 0, or -1 with errno set.
 */
int sb_cgroup_enter(const struct sb_cgroup *cg) __attribute__((warn_unused_result));

/*
 * Kills every process in the cgroup, repeating until it is empty or about two seconds
 * have passed. Returns 0 when it is empty, -1 otherwise.
 */
int sb_cgroup_kill(const struct sb_cgroup *cg);

/* Returns the CPU time used so far in nanoseconds, or -1 when the hierarchy cannot tell. */
int64_t sb_cgroup_cpu_ns(const struct sb_cgroup *cg);

/* Fills *st with what the cgroup counted. Always succeeds; unknown fields are -1. */
void sb_cgroup_stats(const struct sb_cgroup *cg, struct sb_cgroup_stats *st);

/* Kills what is left, removes the cgroup's directories and frees it. NULL is allowed. */
void sb_cgroup_destroy(struct sb_cgroup *cg);

#endif
