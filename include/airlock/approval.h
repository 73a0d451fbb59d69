/* approval.h: plans held for an approver: listing them, reading one, deciding on one. */
/* Owns nothing: db is borrowed; every JSON it returns is a new reference. */
#ifndef AIRLOCK_APPROVAL_H
#define AIRLOCK_APPROVAL_H

#include <jansson.h>

#include "airlock/audit.h"
#include "airlock/db.h"
#include "airlock/rpc.h"

#define APPROVAL_NOTE_MAX 2000 /* characters of a decision's note */

/*
 * The plans held for approval, newest first: of tenant (NULL: every tenant), plan_id
 * (NULL: any), status ("pending", "approved", "rejected", "expired"; NULL: any), at most
 * limit (1..500).  Returns a new array of {plan_id, tenant, tool, status, four_eyes,
 * asked_by, asked_task, created_at, expires_at, rows_updated, rows_inserted, decided_by,
 * decided_task, approver, note, decided_at, decision_call, applied_by}, or NULL with err
 * (503).
 */
json_t *approval_plans(struct db *db, const char *tenant, const char *plan_id, const char *status,
    int limit, struct rpc_error *err);

/*
 * What the asking call of plan_id would have done: sets *arguments to its recorded
 * arguments (sensitive ones as keyed digests; new) and returns its preview's changes as
 * calls.get shows them (a new array, whole images), or NULL with err (503).
 */
json_t *approval_preview(struct db *db, const char *plan_id, json_t **arguments,
    struct rpc_error *err);

/* Who decides on a plan. */
struct approval_decider {
	const char *tenant;   /* the decider's tenant; NULL: any (admin, operator) */
	const char *token_id; /* an approver token's id, "admin" */
	const char *task;     /* NULL for the admin credential */
	const char *approver; /* the person recorded */
};

/*
 * The answer to a decision on plan_id, made by decided_by ("operator", "admin" or an
 * approver token's id) for the person approver, with note (may be NULL), on the plan of
 * tenant and tool: what the decision's record digests, whoever decided.  Returns a new
 * object, or NULL.
 */
json_t *approval_answer(const char *plan_id, int is_approve, const char *tenant, const char *tool,
    const char *decided_by, const char *approver, const char *note);

/*
 * Approves (is_approve) or rejects plan_id with note (may be NULL), and writes rec, the
 * decision's own call record (finished: outcome, digest, duration), in the same
 * transaction: both or neither.  Returns 0, or -1 with err: call record and decision
 * rolled back, 403 four_eyes, 409 plan_decided / plan_expired, -32602 plan_not_found, 503.
 */
int approval_decide(struct db *db, const struct audit_record *rec, const char *plan_id,
    int is_approve, const struct approval_decider *who, const char *note, struct rpc_error *err)
    __attribute__((warn_unused_result));

#endif
