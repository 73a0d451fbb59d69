/* call.h: one call's lifecycle: identify and limit it, then record, count and answer it. */
/*
 * A struct call lives on call_run's stack for one method and owns its principal, its
 * record and digest_of until call_run ends it; a method's result is handed to call_run.
 */
#ifndef AIRLOCK_CALL_H
#define AIRLOCK_CALL_H

#include <jansson.h>

#include "airlock/audit.h"
#include "airlock/auth.h"
#include "airlock/rpc.h"

struct gateway;
struct request_ctx;

/* One call's state, from authentication to its record. */
struct call {
	struct request_ctx *ctx;
	struct gateway *gw;
	struct principal p;
	struct audit_record rec;
	int is_identified;
	int is_recorded;       /* the record went in with a write's effect */
	int is_refusal_result; /* refused, answered as an isError result (/mcp) */
	json_t *digest_of;     /* what the record's digest covers when not the
					 * answer (a new reference), or NULL */
};

/* A method that names a token, run inside its call: its result (a new reference), or NULL
 * with err set.  c->rec.method names the method; c->p is the caller. */
typedef json_t *(*call_fn)(struct call *c, json_t *params, struct rpc_error *err);

/*
 * Runs method fn for the request vctx (a struct request_ctx) as one call: begins it (the
 * bearer token identified, the token's and the tenant's rate limits applied; a refusal
 * there answers without running fn), runs fn, and ends it: records the call (unless a
 * write's commit did), counts it for /metrics and returns what to answer, fn's result or
 * NULL with err.  A call whose record cannot be written is answered 503: no data without
 * its record.  Refusals before authentication and by rate limit are counted, not recorded.
 */
json_t *call_run(void *vctx, const char *method, json_t *params, call_fn fn, struct rpc_error *err);

/* The record's outcome for a call answered with err: "error" or "refused". */
const char *call_outcome_of(const struct rpc_error *err);

/* The result digest of a call's record: of v's structuredContent when v is a tool result,
 * else of v (a structuredContent or another method's result), without call_id and
 * replayed, which differ between a call and its replay.  v is borrowed. */
void call_digest(json_t *v, char hex[65]);

/* Whether the error is one the model should see as a tool result (isError: true)
 * rather than a JSON-RPC error: reasons invalid_arguments, constraint_violated,
 * row_cap_exceeded, program_failed, sandbox_limit. */
int call_is_tool_error(const struct rpc_error *err);

#endif
