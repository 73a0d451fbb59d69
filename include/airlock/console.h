/* console.h: the audit console at /console (a page embedded in the binary) and its reads. */
/*
 * The MHD_Response console_response returns is the caller's to queue and destroy; the
 * reads' JSON is a new reference.
 */
#ifndef AIRLOCK_CONSOLE_H
#define AIRLOCK_CONSOLE_H

#include <jansson.h>

#include "airlock/db.h"
#include "airlock/rpc.h"

struct MHD_Response;

/*
 * The response for GET path under /console: the page, its script or its style sheet, with
 * a strict Content-Security-Policy (nothing inline, nothing from elsewhere, no framing,
 * no form submission), no caching and no referrer; 404 for anything else.  Sets *status.
 * Returns a new response (the caller queues and destroys it), or NULL when out of memory.
 */
struct MHD_Response *console_response(const char *path, unsigned *status);

/* Whether path is served by console_response. */
int console_is_path(const char *path);

/* Whether origin (an Origin header) is the origin of the request itself, as its Host header
 * (may be NULL) names it: the console's own page calling /rpc. */
int console_is_same_origin(const char *origin, const char *host);

/* What airlock/calls.list filters on; NULL members do not filter. */
struct console_filter {
	const char *tenant;
	const char *tool;
	const char *outcome;
	const char *from, *to; /* timestamps (ISO 8601), from inclusive, to exclusive */
	const char *before;    /* a seq: only older calls (the next page) */
	int limit;	       /* 1..200 */
};

/*
 * Calls of the record matching f, newest first: {calls: [{call_id, seq, at, tenant,
 * token_id, task, method, tool, outcome, reason, dry_run, plan_id, duration_ms, changes}],
 * next_before: seq of the page's last call, or null when there are no more}.  Returns a new
 * object, or NULL with err (-32602 invalid_params for a malformed time, 503).
 */
json_t *console_calls(struct db *db, const struct console_filter *f, struct rpc_error *err);

/*
 * The chain's state (airlock.chain_state): the head checkpoint and its hash (the anchor),
 * the tenant's head when tenant is not NULL, records not sealed yet, and a cheap check of
 * the newest records' digests.  Returns a new object, or NULL with err (503).
 */
json_t *console_chain(struct db *db, const char *tenant, struct rpc_error *err);

#endif
