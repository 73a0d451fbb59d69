/*
 * call.c: one call's lifecycle, the same for every method that names a token: begin
 * (identify the caller, apply its rate limits) and end (record the call, count it, and
 * answer only once its record is durable).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "airlock/call.h"
#include "airlock/gateway.h"
#include "airlock/metrics.h"

int
call_is_tool_error(const struct rpc_error *err)
{
	static const char *const reasons[] = { "invalid_arguments", "constraint_violated",
		"row_cap_exceeded", "program_failed", "sandbox_limit", NULL };
	size_t i;

	for (i = 0; err->reason != NULL && reasons[i] != NULL; i++)
		if (strcmp(err->reason, reasons[i]) == 0)
			return 1;
	return 0;
}

static void
limited(struct rpc_error *err, const char *what, int retry)
{
	rpc_error_retry(err, RPC_TOO_MANY, "rate_limited", retry,
	    "Rate limit of this %s reached; retry in %d s", what, retry);
}

/* A call over its token's or tenant's rate limit is counted per token and second, like
 * refusals before authentication, not recorded: a token flooding past its limit would
 * otherwise add a record per refusal.  Returns -1. */
static int
rate_refusal(struct call *c, const struct rpc_error *err)
{
	audit_refusal_of(c->gw->audit, c->ctx->client, c->p.token_id, err->reason);
	c->is_identified = 0; /* call_end writes no record */
	return -1;
}

/*
 * Authenticates and rate-limits a call.  Returns 0, or -1 with err set.  Refusals before
 * authentication and by rate limit are only counted; every other call gets a record
 * (call_end).
 */
static int
call_begin(struct call *c, void *vctx, const char *method, struct rpc_error *err)
{
	const struct config *cfg;
	char key[160];
	int retry;

	memset(c, 0, sizeof(*c));
	c->ctx = vctx;
	c->gw = c->ctx->gw;
	cfg = c->gw->cfg;
	audit_record_init(&c->rec, method, c->ctx->client);
	/* tokens.self answers the count: it asks the database, every other method may be
	 * answered who calls from memory (what must be exact is checked in its own
	 * transaction, auth_count_call). */
	if (auth_identify(c->ctx->db, c->ctx->bearer, cfg->admin_key_file,
		strcmp(method, "airlock/tokens.self") == 0, &c->p, err) == -1) {
		if (err->code != RPC_UNAVAILABLE)
			audit_refusal_of(c->gw->audit, c->ctx->client,
			    c->p.token_id[0] != '\0' ? c->p.token_id : NULL, err->reason);
		return -1;
	}
	c->is_identified = 1;
	/* Records hold keyed digests: no call goes on without the deployment's key. */
	if (!audit_has_key() &&
	    (db_ensure(c->ctx->db) == -1 || audit_key_load(c->ctx->db->conn) == -1)) {
		db_unavailable(err);
		return -1;
	}
	if (!c->p.is_admin)
		gw_note_tenant(c->gw, c->p.token_id, c->p.tenant);
	strlcpy(c->rec.token_id, c->p.token_id, sizeof(c->rec.token_id));
	strlcpy(c->rec.tenant, c->p.tenant, sizeof(c->rec.tenant));
	strlcpy(c->rec.task, c->p.task, sizeof(c->rec.task));
	strlcpy(c->rec.trace_id, c->ctx->trace_id, sizeof(c->rec.trace_id));
	if (c->p.is_admin)
		return 0;
	snprintf(key, sizeof(key), "token:%s", c->p.token_id);
	if (rl_take(c->gw->rl, key, cfg->rate_token, cfg->burst_token, &retry) == -1) {
		limited(err, "token", retry);
		return rate_refusal(c, err);
	}
	snprintf(key, sizeof(key), "tenant:%s", c->p.tenant);
	if (rl_take(c->gw->rl, key, c->p.rate > 0 ? c->p.rate : cfg->rate_tenant,
		c->p.rate > 0 ? c->p.burst : cfg->burst_tenant, &retry) == -1) {
		limited(err, "tenant", retry);
		return rate_refusal(c, err);
	}
	return 0;
}

const char *
call_outcome_of(const struct rpc_error *err)
{
	switch (err->code) {
	case RPC_UNAVAILABLE:
	case RPC_INTERNAL_ERROR:
		return "error";
	default:
		return "refused";
	}
}

void
call_digest(json_t *v, char hex[65])
{
	json_t *sc = json_object_get(v, "structuredContent"), *view;

	/* The one place that says what a result's digest covers: a tool result's
	 * structuredContent (else the whole result) without what differs between a call and
	 * its replay, so a replay's record shows the same digest as its call's. */
	view = json_copy(sc != NULL ? sc : v); /* only its top level changes */
	json_object_del(view, "call_id");
	json_object_del(view, "replayed");
	audit_digest(view, hex);
	json_decref(view);
}

/*
 * Counts the call for /metrics, as answered: result (borrowed) or err.  The tool label is
 * a tool of the current catalog or "", never a name a request made up.
 */
static void
count_call(struct call *c, json_t *result, const struct rpc_error *err)
{
	struct catalog_ref *ref;
	struct timespec now;
	const char *tool = "", *outcome, *reason;
	json_t *sc;

	clock_gettime(CLOCK_REALTIME, &now);
	if (c->rec.tool[0] != '\0' && (ref = gw_catalog_get(c->gw)) != NULL) {
		if (tool_find(ref->cat, c->rec.tool) != NULL)
			tool = c->rec.tool;
		gw_catalog_put(c->gw, ref);
	}
	sc = json_object_get(result, "structuredContent");
	if (result == NULL) {
		outcome = call_outcome_of(err);
		reason = err->reason;
	} else if (json_is_true(json_object_get(result, "isError"))) {
		outcome = "tool_error";
		reason = json_string_value(json_object_get(json_object_get(sc, "error"), "reason"));
	} else {
		outcome = "ok";
		reason = "";
		if (json_is_object(sc))
			metrics_call_result(tool, json_is_true(json_object_get(sc, "dry_run")),
			    json_is_string(json_object_get(sc, "plan_id")),
			    json_is_true(json_object_get(sc, "replayed")));
		if (strcmp(c->rec.method, "airlock/calls.revert") == 0 &&
		    !json_is_true(json_object_get(sc, "dry_run")) &&
		    !json_is_true(json_object_get(sc, "replayed")))
			metrics_count(METRICS_REVERTS);
	}
	metrics_call(c->rec.method, tool, outcome, reason,
	    (double)(now.tv_sec - c->rec.at.tv_sec) +
		(double)(now.tv_nsec - c->rec.at.tv_nsec) / 1e9);
}

/*
 * Records the call and returns what to answer: result (stolen), or NULL with err.  The
 * record's result digest covers c->digest_of when set, else the result (call_digest).
 * When the record cannot be written the call fails closed: no data without its record.
 */
static json_t *
call_end(struct call *c, json_t *result, struct rpc_error *err)
{
	if (c->is_identified && !c->is_recorded) {
		audit_record_end(&c->rec);
		if (result == NULL && atomic_load(&c->ctx->is_cancelled)) {
			/* The client left: its statement was cancelled, whatever err says. */
			c->rec.outcome = "error";
			c->rec.reason = "cancelled";
		} else if (result != NULL) {
			if (json_is_true(json_object_get(result, "isError"))) {
				/* A refusal answered as a result the model can act on is still a
				 * refusal in the record, as it is on /rpc. */
				c->rec.outcome = c->is_refusal_result ? "refused" : "tool_error";
				audit_record_reason(&c->rec,
				    json_string_value(
					json_object_get(json_object_get(json_object_get(result,
									    "structuredContent"),
							    "error"),
					    "reason")));
			}
			call_digest(c->digest_of != NULL ? c->digest_of : result,
			    c->rec.result_digest);
		} else {
			c->rec.outcome = call_outcome_of(err);
			c->rec.reason = err->reason;
		}
		/* On a worker, the record goes to the writer with the answer, which leaves only
		 * once the record is durable (the worker takes its next job meanwhile); else
		 * the call waits here for its record. */
		if (c->ctx->on_recorded != NULL && !c->ctx->is_record_handed &&
		    audit_submit(c->gw->audit, &c->rec, c->ctx->on_recorded,
			c->ctx->recorded_arg) == 0)
			c->ctx->is_record_handed = 1;
		else if (audit_write(c->gw->audit, &c->rec) == -1) {
			json_decref(result);
			result = NULL;
			rpc_error_clear(err);
			audit_unrecorded(err);
		}
	}
	count_call(c, result, err);
	audit_record_clear(&c->rec);
	auth_clear(&c->p);
	json_decref(c->digest_of);
	c->digest_of = NULL;
	return result;
}

json_t *
call_run(void *vctx, const char *method, json_t *params, call_fn fn, struct rpc_error *err)
{
	struct call c;
	json_t *result = NULL;

	if (call_begin(&c, vctx, method, err) == 0)
		result = fn(&c, params, err);
	return call_end(&c, result, err);
}
