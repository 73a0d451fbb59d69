/*
 * approval.c: plans held for an approver.  A write that needs approval leaves its preview
 * as a pending plan (migrations/0012_approvals.sql); this lists and reads those plans for
 * approvers and records their decisions.  A decision and its own call record commit in one
 * transaction, through the operator's function airlock.decide_plan, which checks the plan
 * again under a row lock: tenant, still pending, not expired, four eyes.
 */
#include <stdlib.h>
#include <string.h>

#include "airlock/approval.h"
#include "airlock/log.h"

static const char plans_sql[] = "SELECT airlock.plans_held($1, $2::uuid, $3, $4::integer) AS plan";

/* The asking call's arguments and its preview's changes (the record keeps them). */
static const char preview_sql[] =
    "SELECT coalesce((SELECT arguments FROM airlock.calls WHERE id = $1::uuid), 'null')::text AS arguments,"
    " (SELECT coalesce(jsonb_agg(jsonb_build_object('table', table_name,"
    "  'key', airlock.image_json(key), 'action', CASE op WHEN 'insert' THEN 'create' ELSE op END,"
    "  'before', airlock.image_json(before), 'after', airlock.image_json(after)) ORDER BY id),"
    "  '[]')::text FROM airlock.changes WHERE call_id = $1::uuid) AS changes";

static const char decide_sql[] =
    "SELECT plan_tenant FROM airlock.decide_plan($1::uuid, $2, $3, $4, $5, $6, $7, $8::uuid)";

json_t *
approval_plans(struct db *db, const char *tenant, const char *plan_id, const char *status,
    int limit, struct rpc_error *err)
{
	const char *values[4];
	char n[16];
	PGresult *res;
	json_t *out = NULL, *v;
	int i;

	snprintf(n, sizeof(n), "%d", limit);
	values[0] = tenant;
	values[1] = plan_id;
	values[2] = status;
	values[3] = n;
	if (db_ensure(db) == -1) {
		db_unavailable(err);
		return NULL;
	}
	res = db_exec(db, "approval_plans", plans_sql, 4, values);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warn("plans: %s", PQresultErrorMessage(res));
		db_unavailable(err);
		goto out;
	}
	out = json_array();
	for (i = 0; i < PQntuples(res); i++)
		if ((v = json_loads(db_value(res, i, "plan"), 0, NULL)) != NULL)
			json_array_append_new(out, v);
out:
	PQclear(res);
	return out;
}

json_t *
approval_preview(struct db *db, const char *plan_id, json_t **arguments, struct rpc_error *err)
{
	const char *values[1] = { plan_id };
	PGresult *res;
	json_t *changes = NULL;

	*arguments = NULL;
	if (db_ensure(db) == -1) {
		db_unavailable(err);
		return NULL;
	}
	res = db_exec(db, "approval_preview", preview_sql, 1, values);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		db_unavailable(err);
		goto out;
	}
	*arguments = json_loads(db_value(res, 0, "arguments"), JSON_DECODE_ANY, NULL);
	changes = json_loads(db_value(res, 0, "changes"), 0, NULL);
	if (*arguments == NULL)
		*arguments = json_null();
	if (changes == NULL)
		changes = json_array();
out:
	PQclear(res);
	return changes;
}

/* The refusal decide_plan raised (its SQLSTATE), as the caller's error. */
static void
decide_error(const PGresult *res, const char *plan_id, struct rpc_error *err)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (state == NULL)
		db_unavailable(err);
	else if (strcmp(state, "AL404") == 0)
		rpc_error_set(err, RPC_INVALID_PARAMS, "plan_not_found",
		    "No plan %s waits for "
		    "approval",
		    plan_id);
	else if (strcmp(state, "AL409") == 0)
		rpc_error_set(err, RPC_CONFLICT, "plan_decided", "Plan %s was decided already",
		    plan_id);
	else if (strcmp(state, "AL410") == 0)
		rpc_error_set(err, RPC_CONFLICT, "plan_expired", "Plan %s has expired", plan_id);
	else if (strcmp(state, "AL403") == 0)
		rpc_error_set(err, RPC_FORBIDDEN, "four_eyes",
		    "Four eyes: a token of the task "
		    "that asked cannot approve its plan");
	else {
		log_error("deciding plan %s: %s", plan_id, PQresultErrorMessage(res));
		db_unavailable(err);
	}
}

json_t *
approval_answer(const char *plan_id, int is_approve, const char *tenant, const char *tool,
    const char *decided_by, const char *approver, const char *note)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "plan_id", plan_id, "status",
	    is_approve ? "approved" : "rejected", "tenant", tenant, "tool", tool, "decided_by",
	    decided_by, "approver", approver, "note", note ? json_string(note) : json_null());
}

int
approval_decide(struct db *db, const struct audit_record *rec, const char *plan_id, int is_approve,
    const struct approval_decider *who, const char *note, struct rpc_error *err)
{
	const char *rec_v[1], *values[8];
	struct db_query q[2];
	char *text = NULL;
	size_t i;
	int rc = -1;

	memset(q, 0, sizeof(q));
	if ((text = audit_record_batch(rec)) == NULL) {
		rpc_error_internal(err);
		goto out;
	}
	if (db_ensure(db) == -1) {
		db_unavailable(err);
		goto out;
	}
	rec_v[0] = text;
	values[0] = plan_id;
	values[1] = is_approve ? "approved" : "rejected";
	values[2] = who->tenant;
	values[3] = who->token_id;
	values[4] = who->task;
	values[5] = who->approver;
	values[6] = note;
	values[7] = rec->id;
	/* One pipeline, one implicit transaction: the record and the decision, or neither. */
	q[0].sql = audit_insert_calls_sql;
	q[0].n = 1;
	q[0].values = rec_v;
	q[1].sql = decide_sql;
	q[1].n = 8;
	q[1].values = values;
	if (db_pipeline(db, q, 2) == -1) {
		db_unavailable(err);
		goto out;
	}
	if (PQresultStatus(q[0].res) != PGRES_COMMAND_OK) {
		log_error("deciding plan %s: %s", plan_id, PQresultErrorMessage(q[0].res));
		db_unavailable(err);
	} else if (PQresultStatus(q[1].res) != PGRES_TUPLES_OK)
		decide_error(q[1].res, plan_id, err);
	else
		rc = 0;
out:
	for (i = 0; i < 2; i++)
		PQclear(q[i].res);
	free(text);
	return rc;
}
