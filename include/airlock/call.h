/* call.h: one call's lifecycle: identify and limit it, then record, count and answer it. */
/*
 * A struct call lives on its method's stack from call_begin to call_end and owns its
 * principal and its record until call_end releases them; results passed to call_end are
 * stolen, digests borrowed.
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
	int is_recorded;		/* the record went in with a write's effect */
	int is_refusal_result;		/* refused, answered as an isError result (/mcp) */
};

/*
 * Starts call c of method for the request vctx (a struct request_ctx): authenticates the
 * bearer token and applies the token's and the tenant's rate limits.  Returns 0, or -1
 * with err set; call_end must follow either way.
 */
int call_begin(struct call *c, void *vctx, const char *method, struct rpc_error *err)
    __attribute__((warn_unused_result));

/*
 * Ends call c: records it (unless a write's commit did), counts it for /metrics, and
 * returns what to answer: result (stolen), or NULL with err.  digest_of (borrowed, may be
 * NULL) is what the record's result digest covers.  A call whose record cannot be written
 * is answered 503: no data without its record.
 */
json_t *call_end(struct call *c, json_t *result, json_t *digest_of, struct rpc_error *err);

/* The record's outcome for a call answered with err: "error" or "refused". */
const char *call_outcome_of(const struct rpc_error *err);

/* What a result's digest covers: sc (borrowed) without call_id and replayed.  Returns a
 * new reference. */
json_t *call_digest_view(json_t *sc);

/* Whether the error is one the model should see as a tool result (isError: true)
 * rather than a JSON-RPC error: reasons invalid_arguments, constraint_violated,
 * row_cap_exceeded, program_failed, sandbox_limit. */
int call_is_tool_error(const struct rpc_error *err);

#endif
