/* code_int.h: what the code tools' files (gateway/code*.c) share; nothing else includes it. */
/*
 * code.c runs a program; code_pool.c counts each tenant's sandboxes and keeps the warm
 * pools.  A struct warm taken from a pool is the caller's; an egress log is freed by
 * code_egress_finish, which returns its attempts (a new reference).
 */
#ifndef AIRLOCK_CODE_INT_H
#define AIRLOCK_CODE_INT_H

#include <jansson.h>
#include <sys/queue.h>

#include "airlock/sandbox.h"

/* What the proxy reports during one run (code.c). */
struct egress_log;

/* A sandbox started ahead, waiting for its one call. */
struct warm {
	struct sb_run *run;
	struct egress_log *log;	 /* the proxy reports here: bound at start */
	TAILQ_ENTRY(warm) entry; /* in its pool's list, or a list of dead ones */
};

TAILQ_HEAD(warm_list, warm);

/* code.c: the limits of a manifest's code object (the sandbox's defaults, overridden by
 * code.limits), and the sandbox's configuration for it (borrowing code, lim, allow, which
 * must hold SB_ALLOW_MAX + 1 entries, and log). */
void code_limits(json_t *code, struct sb_limits *l);
void code_config(json_t *code, const struct sb_limits *lim, const char **allow,
    struct egress_log *log, struct sb_config *cfg);

/* code.c: a new egress log (NULL when out of memory); and its end, once its proxy has
 * stopped: frees it, returns its attempts (NULL when log is NULL). */
struct egress_log *code_egress_new(void);
json_t *code_egress_finish(struct egress_log *log, const char *tool);

/* code_pool.c: takes one of tenant's max sandboxes.  Returns 0, or -1 when all are taken
 * (or out of memory, which refuses the same way).  code_slot_release gives it back. */
int code_slot_take(const char *tenant, unsigned max) __attribute__((warn_unused_result));
void code_slot_release(const char *tenant);

/* code_pool.c: what a sandbox of code with lim is started with, as a key (a new string),
 * or NULL. */
char *code_warm_key(json_t *code, const struct sb_limits *lim);

/* code_pool.c: takes a warm sandbox for key, counted against tenant's share.  Returns it
 * (the caller's; the share released with code_warm_done), or NULL: no pool for key, none
 * ready, or the tenant holds its share already (a cold start follows). */
struct warm *code_warm_take(const char *key, const char *tenant);
void code_warm_done(const char *tenant);

#endif
