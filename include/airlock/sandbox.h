/* The sandbox launcher: runs one program in a fresh sandbox (a bubblewrap namespace, or gVisor)
 * under hard limits. */
/*
 * A sandbox owns its process, pipes and cgroup until sb_free; a result owns its output
 * until sb_result_release.
 */
#ifndef AIRLOCK_SANDBOX_H
#define AIRLOCK_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

/*
 * The descriptor the program text given to sb_feed arrives on inside (a pipe), when
 * has_program is set.  Read the descriptor itself: reopening it as /dev/fd/3 goes through
 * /proc, which checks the pipe's owner, and a launcher running as root makes the pipe as
 * root while the program runs as another uid.
 */
#define SB_PROGRAM_FD 3
/* The address the egress forwarder listens on inside the sandbox. */
#define SB_PROXY_ADDR "127.0.0.1"
#define SB_PROXY_PORT 3128
/* How many allowlist entries a sandbox may carry. */
#define SB_ALLOW_MAX 64

/* Which limit stopped a program. */
enum sb_limit {
	SB_LIMIT_NONE = 0,
	SB_LIMIT_WALL,	 /* wall-clock time: the whole namespace was killed */
	SB_LIMIT_CPU,	 /* CPU seconds, per process (RLIMIT_CPU) or in total (cgroup) */
	SB_LIMIT_MEMORY, /* the cgroup's memory limit: the kernel killed a process */
	SB_LIMIT_PIDS,	 /* the cgroup's process limit refused a fork */
	SB_LIMIT_FSIZE,	 /* a file grew past RLIMIT_FSIZE */
	SB_LIMIT_OUTPUT, /* stdout or stderr passed its cap: the namespace was killed */
};
#define SB_LIMIT_BIT(l) (1u << (l))

/* The boundary a sandbox runs behind. */
enum sb_isolation {
	SB_ISOLATION_NAMESPACE = 0, /* bubblewrap: namespaces, seccomp, the host's kernel */
	SB_ISOLATION_GVISOR,	    /* gVisor's runsc: a kernel in user space (ptrace platform) */
};

/*
 * The wall-clock and whole-sandbox CPU limits count from when the program is handed over:
 * the start of sb_wait, or, at the gVisor level, the moment its guest reports that the
 * sandbox has booted, if that comes later (booting is bounded by SB_BOOT_MS on its own).
 * A sandbox started ahead (a warm one) spends nothing of either while it waits.
 */
#define SB_BOOT_MS 30000

struct sb_limits {
	int64_t wall_ms;     /* wall-clock time from the hand-over to exit */
	int64_t cpu_ms;	     /* CPU time, whole sandbox (the runtime's own work for it
				   included), from the hand-over; each process also gets
				   RLIMIT_CPU, which counts from its start */
	int64_t mem_bytes;   /* memory cgroup limit, /tmp included (tmpfs is charged there) */
	int64_t pids;	     /* processes and threads at once */
	int64_t fsize_bytes; /* RLIMIT_FSIZE */
	int64_t nofile;	     /* RLIMIT_NOFILE (at least 16: bwrap needs a few) */
	int64_t tmp_bytes;   /* size of the private /tmp */
	size_t stdout_max;   /* bytes of stdout kept; one more stops the program */
	size_t stderr_max;   /* bytes of stderr kept; one more stops the program */
};

/* One egress attempt seen by the proxy. Strings are borrowed for the callback's duration. */
struct sb_egress {
	const char *host; /* as the program asked for it */
	unsigned port;
	const char *address; /* the address dialled or refused, "" when none was resolved */
	int is_allowed;
	const char *reason; /* "allowed", "not_listed", "restricted_address", "resolve_failed",
				   "connect_failed", "bad_request" */
};

/*
 * Called once per attempt from the proxy's thread (never two calls at once for one
 * sandbox). It must not block for long: the program waits on it.
 */
typedef void sb_egress_fn(void *arg, const struct sb_egress *ev);

struct sb_config {
	const char *const *argv; /* NULL-terminated; argv[0] is looked up in the sandbox's PATH */
	struct sb_limits limits;
	int has_program;	  /* program text from sb_feed on descriptor SB_PROGRAM_FD */
	int stdin_fd;		  /* -1, or a descriptor the launcher copies to the program's stdin
					   (after any input given to sb_feed); never passed inside */
	const char *const *allow; /* NULL, or NULL-terminated "host:port" entries: egress proxy */
	sb_egress_fn *on_egress;  /* may be NULL */
	void *egress_arg;
	const char *bwrap;	   /* NULL: /usr/bin/bwrap */
	const char *helper;	   /* NULL: airlock-sandbox beside the running program; runs the
					   forwarder inside when allow is set */
	const char *cgroup_parent; /* NULL: "airlock" under each cgroup hierarchy */
	enum sb_isolation isolation;
	const char *runsc; /* NULL: /usr/bin/runsc (gVisor level only) */
};

struct sb_result {
	int exit_code;	     /* the program's exit status, or -1 when a signal ended it */
	int signal;	     /* the signal that ended it, or 0 */
	enum sb_limit limit; /* the limit that stopped it, SB_LIMIT_NONE if none */
	unsigned limits_hit; /* SB_LIMIT_BIT() of every limit reached, stopping or not */
	char *out;	     /* stdout, NUL-terminated, at most stdout_max bytes; owned */
	size_t out_len;
	int out_truncated;
	char *err; /* stderr, likewise */
	size_t err_len;
	int err_truncated;
	int64_t wall_us;  /* from the hand-over to exit */
	int64_t cpu_us;	  /* whole sandbox from the hand-over, -1 if unknown */
	int64_t mem_peak; /* bytes, -1 if unknown; at the gVisor level the runtime's own
				   memory is counted too */
};

struct sb_run;

/* Fills *l with the defaults: 10 s wall, 5 s CPU, 256 MiB, 64 processes, 16 MiB files,
 * 64 descriptors, 16 MiB /tmp, 1 MiB stdout, 256 KiB stderr. */
void sb_limits_default(struct sb_limits *l);

/*
 * Starts a sandbox: makes its cgroup (refusing, with a message, when there is no cgroup
 * control), the seccomp filter, the egress proxy when cfg->allow is set, and execs bwrap
 * without the caller's supplementary groups (refusing, with a message starting
 * "supplementary groups", when a caller that is not root has some and lacks CAP_SETGID).
 * At the gVisor level it writes an OCI bundle and execs runsc instead (refusing, with a
 * message starting "gvisor", when the caller is not root), the program's limits holding
 * inside gVisor's kernel and the cgroup bounding the whole runtime.
 * The program may start running at once (its interpreter loads and waits for the program
 * text); its wall-clock and CPU limits start with the hand-over (see SB_BOOT_MS).
 * cfg is borrowed for the call only (everything needed later is copied).
 * On success stores a new run in *out (released with sb_free) and returns 0; on error
 * returns -1 with a message in err, having released everything it made.
 */
int sb_spawn(const struct sb_config *cfg, struct sb_run **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Queues the program text (when the config has has_program) and the stdin input; either may
 * be NULL/0. Copies both. At most one call per run, before sb_wait. Returns 0, or -1 (out of
 * memory, or called twice).
 */
int sb_feed(struct sb_run *run, const void *program, size_t program_len, const void *input,
    size_t input_len) __attribute__((warn_unused_result));

/*
 * Feeds the queued input, collects output and waits until the program exits or a limit
 * stops it; then kills whatever is left in its cgroup. Fills *res, whose buffers the
 * caller releases with sb_result_release. Returns 0 when the program ran (whatever its
 * outcome), or -1 with a message in err when the launcher itself failed.
 */
int sb_wait(struct sb_run *run, struct sb_result *res, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Waits until a started sandbox is ready for its program: at the gVisor level, until the
 * guest has said that the sandbox booted (at most timeout_ms); at the namespace level at
 * once.  Nothing of the clocks starts here.  Returns 0, or -1 with a message in err when
 * the sandbox ended or did not become ready in time (the caller then frees it).
 */
int sb_ready(struct sb_run *run, int timeout_ms, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Whether a started sandbox still runs and has not been waited for: a sandbox started
 * ahead can die while it waits (killed, or out of memory). Returns 1 or 0. */
int sb_is_alive(const struct sb_run *run);

/* Kills the sandbox if it still runs, stops its proxy, removes its cgroup; NULL allowed. */
void sb_free(struct sb_run *run);

/* Frees the buffers of a result filled by sb_wait. */
void sb_result_release(struct sb_result *res);

/* Returns "namespace" or "gvisor". */
const char *sb_isolation_name(enum sb_isolation i);

/* Parses "namespace" or "gvisor" into *i; returns 0, or -1 for anything else. */
int sb_isolation_parse(const char *s, enum sb_isolation *i) __attribute__((warn_unused_result));

/* Returns a static name for a limit: "none", "wall", "cpu", "memory", "pids", "fsize",
 * "output". */
const char *sb_limit_name(enum sb_limit l);

#endif
