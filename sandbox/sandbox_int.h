/* sandbox_int.h: what the sandbox launcher's files share, and nothing outside them sees. */
/*
 * sandbox.c (the interface: spawn, feed, free), sandbox_bwrap.c (bubblewrap's argument list,
 * mounts and the child's set-up before exec), sandbox_wait.c (a run supervised to its end:
 * pipes, limits, the verdict).  A struct sb_run is made by sb_spawn and freed by sb_free;
 * the rest borrow it.
 */
#ifndef AIRLOCK_SANDBOX_INT_H
#define AIRLOCK_SANDBOX_INT_H

#include <sys/resource.h>
#include <sys/types.h>

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "airlock/cgroup.h"
#include "airlock/proxy.h"
#include "airlock/sandbox.h"

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
	char bundle[PATH_MAX]; /* gVisor: the OCI bundle's directory, runsc's state in it */
	char nonce[33];	       /* gVisor: what the guest's end line must carry */
	int is_ready;	       /* the program has been handed over: the clocks run */
	int is_boot_failed;    /* gVisor: stderr did not start with the guest's ready line */
	int has_end;	       /* gVisor: the guest's end line was read */
	int end_status;	       /* ... and the wait status it gave */
	int end_pids;	       /* ... and whether the process count reached its limit */
	int64_t ready_us;
	int64_t cpu_base; /* the cgroup's CPU time at the hand-over, ns */
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
	char pump[65536]; /* stdin_fd data on its way in */
	size_t pump_len, pump_off;
	int is_fed;
	int is_reaped;
	int status;
	struct rusage ru;
};

/* The list of arguments bwrap reads from its --args descriptor, so that none of it shows
 * in /proc/1/cmdline inside. */
struct args {
	const char *v[SB_ARGS_MAX];
	size_t n;
	char num[5][24];
	int is_full;
};

/* The entries of top_dirs (sandbox_bwrap.c): the top-level directories bound or linked. */
#define SB_TOP_DIRS 6

/* sandbox.c: small helpers for all three. */
void sb_say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int64_t sb_now_us(void);
void sb_close_fd(int *fd);
int sb_frame(struct sb_run *run, const void *program, size_t program_len, const void *input,
    size_t input_len);

/* sandbox_bwrap.c: bwrap's command line and the child that execs it. */
int sb_build_args(struct args *a, const struct sb_config *cfg, const char *sock,
    char links[][PATH_MAX]);
int sb_args_fd(const struct args *a);
int sb_open_helper(const struct sb_config *cfg);
int sb_check_limits(const struct sb_limits *l, char *err, size_t errlen);
int sb_check_groups(char *err, size_t errlen);
/* In the child after fork: never returns (execs, or reports errno on FD_EXECERR and exits). */
void sb_child(const struct sb_config *cfg, const struct sb_cgroup *cg, const char *prog,
    char *const *argv, char *const *envp, const int *src, pid_t parent, int is_gvisor)
    __attribute__((noreturn));

/* sandbox_wait.c: supervising a run. */
void sb_reap(struct sb_run *run);

#endif
