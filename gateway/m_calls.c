/*
 * m_calls.c: the methods on recorded calls: calls.get (a call and its changes, limited to
 * the tool's columns), calls.revert (a write undone, itself a write), and calls.list (the
 * console's list, for approvers).
 */
#include <stdio.h>
#include <string.h>

#include "airlock/console.h"
#include "methods_int.h"

static const char *const revert_params[] = { "call_id", "force", "dry_run", "idempotency_key",
	"plan_id", "_meta", NULL };
static const char *const get_params[] = { "call_id", "_meta", NULL };

/* Keeps only the tool's columns (and the key's) in an image; t NULL keeps the key only. */
static void
limit_image(json_t *img, const struct tool *t, json_t *key)
{
	const char *k;
	json_t *v;
	void *tmp;
	size_t i;
	int keep;

	if (!json_is_object(img))
		return;
	json_object_foreach_safe (img, tmp, k, v) {
		keep = json_object_get(key, k) != NULL;
		for (i = 0; t != NULL && i < t->n_cols && !keep; i++)
			keep = strcmp(t->col_names[i], k) == 0;
		if (!keep)
			json_object_del(img, k);
	}
}

/* Limits every change's images to the tool's columns and the key (calls.get). */
void
m_limit_changes(json_t *changes, const struct tool *t)
{
	json_t *ch;
	size_t i;

	json_array_foreach (changes, i, ch) {
		limit_image(json_object_get(ch, "before"), t, json_object_get(ch, "key"));
		limit_image(json_object_get(ch, "after"), t, json_object_get(ch, "key"));
	}
}

static void
call_not_found(struct rpc_error *err)
{
	rpc_error_set(err, RPC_INVALID_PARAMS, "call_not_found", "No such call");
}

json_t *
m_calls_revert(struct call *c, json_t *params, struct rpc_error *err)
{
	struct catalog_ref *ref = NULL;
	const char *target;
	char tenant[64], role[64], tool[65], *groups = NULL;
	struct shown_cols cols;
	struct write_revert rv;
	struct write_req req;
	json_t *result = NULL;
	int is_force;

	strlcpy(c->rec.tool, "airlock/calls.revert", sizeof(c->rec.tool));
	if (m_check_params(c->rec.method, params, revert_params, "call_id", err) == -1)
		goto done;
	c->rec.arguments = json_deep_copy(params);
	target = json_string_value(json_object_get(params, "call_id"));
	is_force = json_is_true(json_object_get(params, "force"));
	if (!c->p.is_admin && !c->p.can_revert) {
		rpc_error_set(err, RPC_FORBIDDEN, "tool_not_granted",
		    "This token does not grant revert");
		goto done;
	}
	if (is_force && !c->p.is_admin) {
		rpc_error_set(err, RPC_FORBIDDEN, "admin_required",
		    "force reverts over later changes and needs the admin credential");
		goto done;
	}
	if (!audit_is_id(target)) {
		call_not_found(err);
		goto done;
	}
	if (write_revert_target(c->ctx->db, target, c->p.is_admin ? NULL : c->p.tenant,
		c->p.is_admin ? NULL : c->p.task, tenant, role, tool, &groups, err) == -1)
		goto done;
	strlcpy(c->rec.tenant, tenant, sizeof(c->rec.tenant));
	/* A revert changes state like any write, so it counts against the quota. */
	if (auth_count_call(c->ctx->db, &c->p, err) == -1)
		goto done;
	/* It shows the columns of the tool whose write it undoes (tool: the chain's first). */
	ref = gw_catalog_get(c->gw);
	cols.t = ref != NULL && tool[0] != '\0' ? tool_find(ref->cat, tool) : NULL;
	cols.is_whole = c->p.is_admin;
	write_revert_req(&rv, &req, target, groups, is_force, role, tenant);
	result = m_run_write(c, &req, params, &cols, err);
done:
	if (result == NULL && m_is_refused(NULL, err)) {
		/* What a refused revert sent is kept bounded, like a refused tool call's. */
		json_decref(c->rec.arguments);
		c->rec.arguments = json_is_object(params) ? audit_summary(params, params) : NULL;
	}
	gw_catalog_put(c->gw, ref);
	free(groups);
	return result;
}

/* A call record of the token's own task, its changes (limited to the tool's columns by
 * the caller), and the tool whose columns those are. */
static const char calls_get_sql[] =
    "SELECT jsonb_build_object('call_id', id, 'at', at, 'tenant', tenant, 'task', task,"
    " 'method', method, 'tool', tool, 'arguments', arguments, 'dry_run', dry_run,"
    " 'idempotency_key', idempotency_key, 'plan_id', plan_id, 'outcome', outcome,"
    " 'reason', reason, 'duration_ms', duration_ms, 'result_digest', result_digest)::text AS call,"
    " (SELECT coalesce(jsonb_agg(jsonb_build_object('table', table_name,"
    "  'key', airlock.image_json(key), 'action', CASE op WHEN 'insert' THEN 'create' ELSE op END,"
    "  'before', airlock.image_json(before), 'after', airlock.image_json(after)) ORDER BY x.id),"
    "  '[]')::text FROM airlock.changes x WHERE x.call_id = c.id) AS changes, c.tenant, c.task,"
    " coalesce(airlock.origin_tool(c.id), '') AS origin_tool"
    " FROM airlock.calls c WHERE c.id = $1::uuid";

json_t *
m_calls_get(struct call *c, json_t *params, struct rpc_error *err)
{
	struct catalog_ref *ref = NULL;
	const struct tool *t;
	const char *values[1];
	PGresult *res = NULL;
	json_t *result = NULL, *call, *changes;

	if (m_check_params(c->rec.method, params, get_params, "call_id", err) == -1)
		goto done;
	values[0] = json_string_value(json_object_get(params, "call_id"));
	c->rec.arguments = json_deep_copy(params);
	if (!audit_is_id(values[0])) {
		call_not_found(err);
		goto done;
	}
	if (c->p.is_admin && db_ensure(c->ctx->db) == -1) {
		db_unavailable(err);
		goto done;
	}
	res = db_exec(c->ctx->db, "calls_get", calls_get_sql, 1, values);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_unavailable(err);
		goto done;
	}
	/* A token reads its own task's calls; an approver its tenant's (the console). */
	if (PQntuples(res) == 0 ||
	    (!c->p.is_admin &&
		(strcmp(db_text(res, 0, "tenant"), c->p.tenant) != 0 ||
		    (c->p.approver[0] == '\0' &&
			strcmp(db_text(res, 0, "task"), c->p.task) != 0)))) {
		call_not_found(err);
		goto done;
	}
	call = json_loads(db_value(res, 0, "call"), 0, NULL);
	changes = json_loads(db_value(res, 0, "changes"), 0, NULL);
	ref = gw_catalog_get(c->gw);
	/* A revert's record shows the columns of the tool whose write it undid. */
	t = ref != NULL ? tool_find(ref->cat, db_text(res, 0, "origin_tool")) : NULL;
	if (!c->p.is_admin)
		m_limit_changes(changes, t);
	result = json_pack("{s:o, s:o}", "call", call ? call : json_null(), "changes",
	    changes ? changes : json_array());
done:
	gw_catalog_put(c->gw, ref);
	PQclear(res);
	return result;
}

/* The console's list of calls: the admin credential, or an approver token (its tenant). */
json_t *
m_calls_list(struct call *c, json_t *params, struct rpc_error *err)
{
	static const char *const known[] = { "tenant", "tool", "outcome", "from", "to", "before",
		"limit", "_meta", NULL };
	static const char *const strings[] = { "tool", "outcome", "from", "to", "before", NULL };
	struct console_filter f;
	json_t *result = NULL, *v;
	size_t i;

	if (m_require_approver(c, params, known, err) == -1)
		goto done;
	c->rec.arguments = params != NULL ? json_deep_copy(params) : NULL;
	memset(&f, 0, sizeof(f));
	if (m_approver_tenant(c, params, &f.tenant, err) == -1)
		goto done;
	for (i = 0; strings[i] != NULL; i++) {
		v = json_object_get(params, strings[i]);
		if (v != NULL && (!json_is_string(v) || json_string_length(v) > 64)) {
			rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
			    "%s must be a string of at most 64 characters", strings[i]);
			goto done;
		}
	}
	f.tool = json_string_value(json_object_get(params, "tool"));
	f.outcome = json_string_value(json_object_get(params, "outcome"));
	f.from = json_string_value(json_object_get(params, "from"));
	f.to = json_string_value(json_object_get(params, "to"));
	f.before = json_string_value(json_object_get(params, "before"));
	f.limit = 50;
	if ((v = json_object_get(params, "limit")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 200) {
			rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
			    "limit must be an integer from 1 to 200");
			goto done;
		}
		f.limit = (int)json_integer_value(v);
	}
	if (f.tenant != NULL)
		strlcpy(c->rec.tenant, f.tenant, sizeof(c->rec.tenant));
	result = console_calls(c->ctx->db, &f, err);
done:
	/* The record's digest covers the page shown, not the whole record it was read from. */
	return result;
}
