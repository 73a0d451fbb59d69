/* metrics.h: the daemon's counters and histograms, and their Prometheus text rendering. */
/*
 * The counters are the process's, kept here; metrics_render returns a new string the caller
 * frees.
 */
#ifndef AIRLOCK_METRICS_H
#define AIRLOCK_METRICS_H

#include <stddef.h>

/* Plain counters, without labels. */
enum metrics_counter {
	METRICS_DB_RECONNECTS,	/* a worker's connection replaced after it broke */
	METRICS_POOL_REJECTED,	/* calls refused because a worker queue was full */
	METRICS_REVERTS,	/* reverts committed (not previews, not replays) */
	METRICS_SANDBOX_FAILED, /* sandboxes that could not start or be waited for */
	METRICS_COUNTER_MAX
};

/*
 * Every function below is safe from any thread and never fails: a series that finds no
 * room (past a fixed number of label combinations) is counted under tool="_other".
 * Strings are borrowed for the call only.
 */

/* One HTTP answer, by its status (classes 1xx..5xx). */
void metrics_http_answered(int status);

/*
 * One JSON-RPC call that reached its method: method, tool ("" when none), outcome ("ok",
 * "tool_error", "refused" or "error"), reason ("" for ok) and how long it took.
 */
void metrics_call(const char *method, const char *tool, const char *outcome, const char *reason,
    double seconds);

/* What a successful tools/call or revert answered, read from its structuredContent
 * (borrowed): dry-runs, plans made and committed, idempotent replays. */
void metrics_call_result(const char *tool, int is_dry_run, int has_plan, int is_replayed);

void metrics_count(enum metrics_counter c);

/* A rate-limit refusal of n calls for key, whose scope is the part before ':'
 * ("client", "token", "tenant"; anything else counts as "other"). */
void metrics_rate_limited(const char *key, unsigned n);

/* A sandbox run that ended: limit is the name of the limit that stopped it, or NULL. */
void metrics_sandbox_run(const char *limit);

/* An audit batch written (or failed): its records and how long the flush took. */
void metrics_audit_flush(size_t records, double seconds);

/* The gauges only the daemon's state knows, read by the caller (gw_gauges) at rendering. */
struct metrics_gauges {
	unsigned in_flight;   /* requests begun and not yet answered */
	unsigned connections; /* client connections open */
	int has_pool[2];      /* [0] the database pool, [1] the sandbox pool */
	size_t pool[2][3];    /* each pool's workers, busy workers, calls waiting */
	double seal_lag;      /* seconds since the sealer's last round */
	int is_seal_stalled;
};

/*
 * Renders every metric in the Prometheus text exposition format (version 0.0.4): this
 * module's counters and histograms, and the gauges g (borrowed).  Returns a new malloc'd
 * string and its length in *len, or NULL when out of memory.
 */
char *metrics_render(const struct metrics_gauges *g, size_t *len);

/* Writes v into out (size len) escaped as a label value: backslash, double quote and
 * newline get a backslash.  Truncates to fit; always NUL-terminates when len > 0. */
void metrics_escape(const char *v, char *out, size_t len);

#endif
