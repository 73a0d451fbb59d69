/* auth.h: who is calling: a task-scoped token's grants, or the admin credential. */
/* A struct principal owns its strings and grants until auth_clear; db is borrowed. */
#ifndef AIRLOCK_AUTH_H
#define AIRLOCK_AUTH_H

#include <jansson.h>

#include "airlock/db.h"
#include "airlock/rpc.h"
#include "airlock/token.h"
#include "airlock/tool.h"

struct principal {
	int is_admin;
	char token_id[TOK_ID_LEN + 1];
	char tenant[64];
	char role[64]; /* the tenant's role name */
	char task[129];
	json_t *tools;	  /* array of granted tool names (owned) */
	json_t *bindings; /* object: argument -> text value (owned) */
	int can_revert;
	int is_preview_only;
	long long max_calls; /* 0: no quota */
	long long calls_used;
	char expires_at[40];
	double rate, burst; /* the tenant's rate limit; 0: the gateway's default */
	char approver[129]; /* an approver token's person; "" for a caller */
};

/* How long a token's principal is kept without asking the database again (fallback for a
 * lost announcement; announcements drop it at once). */
#define AUTH_CACHE_TTL_MS 1000

/*
 * Identifies the caller of bearer (NULL when the request had none).  Returns 0 with p
 * filled (release with auth_clear), or -1 with err set: 401 token_missing,
 * token_invalid, token_expired, token_revoked; 403 tenant_disabled; 503
 * backend_unavailable.  The admin credential (admin_file) yields p->is_admin.
 * A token looked up within AUTH_CACHE_TTL_MS is answered from memory unless is_fresh:
 * revocation, expiry, the tenant's state and the quota are then exact only through
 * auth_count_call (or auth_count_sql in the call's own transaction), which every call
 * that reads or changes data makes; p->calls_used is exact only with is_fresh.
 */
int auth_identify(struct db *db, const char *bearer, const char *admin_file, int is_fresh,
    struct principal *p, struct rpc_error *err) __attribute__((warn_unused_result));

/* Forgets the kept principal of token id what, those of tenant NAME for "tenant:NAME", or
 * every one for "". */
void auth_forget(const char *what);

/* Starts the listener of the airlock_tokens channel on its own connection to conninfo
 * (borrowed, must outlive it).  Returns 0, or -1 (logged; the cache's lifetime then bounds
 * how long a revoked token's principal is kept). */
int auth_watch_start(const char *conninfo) __attribute__((warn_unused_result));

/* Whether the listener holds a connection that listens now. */
int auth_is_watching(void);

/* Stops the listener and empties the cache. */
void auth_watch_stop(void);

/* Counts one call against p's quota (a token without one is only checked, nothing is
 * written).  Returns 0, or -1 with err (403 quota_exhausted, 401 token_revoked/
 * token_expired, 403 tenant_disabled when that happened meanwhile, 503). */
int auth_count_call(struct db *db, struct principal *p, struct rpc_error *err)
    __attribute__((warn_unused_result));

/* Checks a tool's checked arguments (borrowed) against p's bindings: a bound argument
 * must be passed, with the bound value, and a tool without a bound argument is refused
 * (code tools are bound through their input_tool).  Returns 0, or -1 with err (403
 * binding_mismatch). */
int auth_check_bindings(const struct principal *p, const struct tool *t, json_t *args,
    struct rpc_error *err) __attribute__((warn_unused_result));

/* The count as one statement ($1 the token id), for a caller that pipelines it, and the
 * reading of its result: 0, or -1 with err as auth_count_call's. */
extern const char auth_count_sql[];
int auth_count_result(const PGresult *res, struct principal *p, struct rpc_error *err)
    __attribute__((warn_unused_result));

/* Whether p may call tool. */
int auth_is_granted(const struct principal *p, const char *tool);

void auth_clear(struct principal *p);

#endif
