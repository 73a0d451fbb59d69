/*
 * m_plans.c: the approvers' methods: plans.list, plans.get, plans.approve and plans.reject
 * (writes held for approval), and audit.state (the chain's state for the console).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "airlock/approval.h"
#include "airlock/console.h"
#include "methods_int.h"

/* Approvers: an approver token or the admin credential.  Returns 0, or -1 with err. */
int
m_require_approver(struct call *c, json_t *params, const char *const *known, struct rpc_error *err)
{
	const char *k;
	json_t *v;
	size_t i;

	if (!c->p.is_admin && c->p.approver[0] == '\0') {
		rpc_error_set(err, RPC_FORBIDDEN, "approver_required",
		    "This method needs an approver token or the admin credential");
		return -1;
	}
	if (params != NULL && !json_is_object(params)) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
		    "params must be an object");
		return -1;
	}
	json_object_foreach (params, k, v) {
		for (i = 0; known[i] != NULL && strcmp(known[i], k) != 0; i++)
			;
		if (known[i] == NULL) {
			rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
			    "%s has no parameter '%.64s'", c->rec.method, k);
			return -1;
		}
	}
	return 0;
}

/* The tenant an approver's request is limited to: its own, or for the admin credential
 * params.tenant (NULL: every tenant).  Returns 0, or -1 with err. */
int
m_approver_tenant(struct call *c, json_t *params, const char **tenant, struct rpc_error *err)
{
	json_t *v = json_object_get(params, "tenant");

	if (v != NULL && !json_is_string(v)) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params", "tenant must be a string");
		return -1;
	}
	*tenant = c->p.is_admin ? json_string_value(v) : c->p.tenant;
	return 0;
}

static const char *const plan_statuses[] = { "pending", "approved", "rejected", "expired", "all",
	NULL };

json_t *
m_plans_list(struct call *c, json_t *params, struct rpc_error *err)
{
	static const char *const known[] = { "status", "tenant", "limit", "_meta", NULL };
	const char *tenant, *status;
	json_t *plans, *result = NULL, *v;
	json_int_t limit = 100;
	size_t i;

	if (m_require_approver(c, params, known, err) == -1 ||
	    m_approver_tenant(c, params, &tenant, err) == -1)
		goto done;
	c->rec.arguments = params != NULL ? json_deep_copy(params) : NULL;
	status = params != NULL && json_object_get(params, "status") != NULL
	    ? json_string_value(json_object_get(params, "status"))
	    : "pending";
	for (i = 0;
	     status != NULL && plan_statuses[i] != NULL && strcmp(plan_statuses[i], status) != 0;
	     i++)
		;
	if (status == NULL || plan_statuses[i] == NULL) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
		    "status must be one of "
		    "pending, approved, rejected, expired, all");
		goto done;
	}
	if ((v = json_object_get(params, "limit")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 500) {
			rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
			    "limit must be an integer from 1 to 500");
			goto done;
		}
		limit = json_integer_value(v);
	}
	if (tenant != NULL)
		strlcpy(c->rec.tenant, tenant, sizeof(c->rec.tenant));
	plans = approval_plans(c->ctx->db, tenant, NULL, strcmp(status, "all") == 0 ? NULL : status,
	    (int)limit, err);
	if (plans != NULL)
		result = json_pack("{s:o}", "plans", plans);
done:
	return result;
}

/* The plan params.plan_id names, as its approver may see it (another tenant's is not
 * found).  Returns it (new), or NULL with err. */
static json_t *
find_plan(struct call *c, json_t *params, const char **plan_id, struct rpc_error *err)
{
	json_t *plans, *plan;

	*plan_id = json_string_value(json_object_get(params, "plan_id"));
	if (*plan_id == NULL || !audit_is_id(*plan_id)) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
		    "plan_id must be a call id");
		return NULL;
	}
	strlcpy(c->rec.plan_id, *plan_id, sizeof(c->rec.plan_id));
	if ((plans = approval_plans(c->ctx->db, c->p.is_admin ? NULL : c->p.tenant, *plan_id, NULL,
		 1, err)) == NULL)
		return NULL;
	plan = json_incref(json_array_get(plans, 0));
	json_decref(plans);
	if (plan == NULL)
		rpc_error_set(err, RPC_INVALID_PARAMS, "plan_not_found",
		    "No plan %s waits for "
		    "approval",
		    *plan_id);
	else {
		strlcpy(c->rec.tenant, json_string_value(json_object_get(plan, "tenant")),
		    sizeof(c->rec.tenant));
		strlcpy(c->rec.tool, json_string_value(json_object_get(plan, "tool")),
		    sizeof(c->rec.tool));
	}
	return plan;
}

json_t *
m_plans_get(struct call *c, json_t *params, struct rpc_error *err)
{
	static const char *const known[] = { "plan_id", "_meta", NULL };
	struct catalog_ref *ref = NULL;
	const char *plan_id;
	json_t *plan = NULL, *changes, *args = NULL, *result = NULL;

	if (m_require_approver(c, params, known, err) == -1)
		goto done;
	c->rec.arguments = json_deep_copy(params);
	if ((plan = find_plan(c, params, &plan_id, err)) == NULL)
		goto done;
	if ((changes = approval_preview(c->ctx->db, plan_id, &args, err)) == NULL)
		goto done;
	/* An approver sees what the tool shows, as the asking agent did. */
	ref = gw_catalog_get(c->gw);
	if (!c->p.is_admin)
		m_limit_changes(changes, ref != NULL ? tool_find(ref->cat, c->rec.tool) : NULL);
	json_object_set_new(plan, "arguments", args);
	json_object_set_new(plan, "changes", changes);
	result = json_pack("{s:O}", "plan", plan);
done:
	gw_catalog_put(c->gw, ref);
	json_decref(plan);
	return result;
}

/* airlock/plans.approve and airlock/plans.reject. */
json_t *
m_plans_decide(struct call *c, json_t *params, struct rpc_error *err)
{
	static const char *const known[] = { "plan_id", "note", "_meta", NULL };
	struct approval_decider who;
	const char *plan_id, *note, *status;
	json_t *plan = NULL, *result = NULL, *v;
	int is_approve = strcmp(c->rec.method, "airlock/plans.approve") == 0;

	if (m_require_approver(c, params, known, err) == -1)
		goto done;
	c->rec.arguments = json_deep_copy(params);
	v = json_object_get(params, "note");
	if (v != NULL && (!json_is_string(v) || json_string_length(v) > APPROVAL_NOTE_MAX)) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
		    "note must be a string of at most %d bytes", APPROVAL_NOTE_MAX);
		goto done;
	}
	note = json_string_value(v);
	if ((plan = find_plan(c, params, &plan_id, err)) == NULL)
		goto done;
	/* Told here for a clear answer; decide_plan checks all of it again under a lock. */
	status = json_string_value(json_object_get(plan, "status"));
	if (status != NULL && strcmp(status, "expired") == 0) {
		rpc_error_set(err, RPC_CONFLICT, "plan_expired", "Plan %s has expired", plan_id);
		goto done;
	}
	if (status == NULL || strcmp(status, "pending") != 0) {
		rpc_error_set(err, RPC_CONFLICT, "plan_decided", "Plan %s was %s already", plan_id,
		    status ? status : "decided");
		goto done;
	}
	if (is_approve && json_is_true(json_object_get(plan, "four_eyes")) && !c->p.is_admin &&
	    strcmp(c->p.task, json_string_value(json_object_get(plan, "asked_task")) ?: "") == 0) {
		rpc_error_set(err, RPC_FORBIDDEN, "four_eyes",
		    "Four eyes: a token of the task "
		    "that asked cannot approve its plan");
		goto done;
	}
	result = approval_answer(plan_id, is_approve, c->rec.tenant, c->rec.tool, c->p.token_id,
	    c->p.is_admin ? "admin" : c->p.approver, note);
	/* The record commits with the decision, so it is finished here. */
	call_digest(result, c->rec.result_digest);
	audit_record_end(&c->rec);
	who.tenant = c->p.is_admin ? NULL : c->p.tenant;
	who.token_id = c->p.token_id;
	who.task = c->p.is_admin ? NULL : c->p.task;
	who.approver = c->p.is_admin ? "admin" : c->p.approver;
	/* The person is in the chained record itself, not only behind the token id. */
	json_object_set_new(c->rec.arguments, "approver", json_string(who.approver));
	if (approval_decide(c->ctx->db, &c->rec, plan_id, is_approve, &who, note, err) == -1) {
		json_decref(result);
		result = NULL;
		goto done;
	}
	c->is_recorded = 1;
done:
	if (result == NULL && m_is_refused(NULL, err)) {
		/* What a refused decision sent is kept bounded, like a refused tool call's. */
		json_decref(c->rec.arguments);
		c->rec.arguments = json_is_object(params) ? audit_summary(params, params) : NULL;
	}
	json_decref(plan);
	return result;
}

/* The chain's state for the console: the admin credential, or an approver token (with its
 * tenant's head). */
json_t *
m_audit_state(struct call *c, json_t *params, struct rpc_error *err)
{
	static const char *const known[] = { "tenant", "_meta", NULL };
	const char *tenant;
	json_t *result = NULL;

	if (m_require_approver(c, params, known, err) == -1 ||
	    m_approver_tenant(c, params, &tenant, err) == -1)
		goto done;
	c->rec.arguments = params != NULL ? json_deep_copy(params) : NULL;
	result = console_chain(c->ctx->db, tenant, err);
done:
	return result;
}
