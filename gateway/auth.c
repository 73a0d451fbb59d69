/* auth.c: bearer tokens to principals: hash lookup, expiry, revocation, tenant state, quota. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/auth.h"

/* What authentication needs of a token, through the operator's function: the gateway's
 * role holds no privilege on airlock.tokens. */
static const char lookup_sql[] = "SELECT * FROM airlock.token_lookup($1)";

/* Counted only while the token is still good: expiry and revocation win over a count
 * (airlock.count_call raises AL403 otherwise). */
const char auth_count_sql[] = "SELECT airlock.count_call($1)";

static void
unauthorized(struct rpc_error *err, const char *reason, const char *message)
{
	rpc_error_set(err, RPC_UNAUTHORIZED, reason, "%s", message);
}

int
auth_identify(struct db *db, const char *bearer, const char *admin_file, struct principal *p,
    struct rpc_error *err)
{
	char id[TOK_ID_LEN + 1], hex[65];
	const char *values[1];
	uint8_t hash[32];
	PGresult *res = NULL;
	size_t i;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	if (bearer == NULL || bearer[0] == '\0') {
		unauthorized(err, "token_missing", "Authorization: Bearer <token> is required");
		return -1;
	}
	if (tok_is_admin(admin_file, bearer)) {
		p->is_admin = 1;
		strlcpy(p->token_id, "admin", sizeof(p->token_id));
		return 0;
	}
	if (tok_parse(bearer, hash, id) == -1) {
		unauthorized(err, "token_invalid", "The bearer value is not a valid token");
		return -1;
	}
	if (db_ensure(db) == -1) {
		db_unavailable(err);
		return -1;
	}
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", hash[i]);
	values[0] = hex;
	res = db_exec(db, "auth_lookup", lookup_sql, 1, values);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_unavailable(err);
		goto fail;
	}
	if (PQntuples(res) != 1) {
		unauthorized(err, "token_invalid", "Unknown token");
		goto fail;
	}
	/* A refusal of a token that exists keeps its id (the caller counts it with it). */
	strlcpy(p->token_id, PQgetvalue(res, 0, 0), sizeof(p->token_id));
	if (strcmp(PQgetvalue(res, 0, 13), "t") == 0) {
		unauthorized(err, "token_revoked", "The token was revoked");
		goto fail;
	}
	if (strcmp(PQgetvalue(res, 0, 12), "t") == 0) {
		unauthorized(err, "token_expired", "The token has expired");
		goto fail;
	}
	if (strcmp(PQgetvalue(res, 0, 3), "t") == 0) {
		rpc_error_set(err, RPC_FORBIDDEN, "tenant_disabled", "The tenant is disabled");
		goto fail;
	}
	strlcpy(p->tenant, PQgetvalue(res, 0, 1), sizeof(p->tenant));
	strlcpy(p->role, PQgetvalue(res, 0, 2), sizeof(p->role));
	strlcpy(p->task, PQgetvalue(res, 0, 4), sizeof(p->task));
	p->tools = json_loads(PQgetvalue(res, 0, 5), 0, NULL);
	p->bindings = json_loads(PQgetvalue(res, 0, 6), 0, NULL);
	p->can_revert = strcmp(PQgetvalue(res, 0, 7), "t") == 0;
	p->is_preview_only = strcmp(PQgetvalue(res, 0, 8), "t") == 0;
	p->max_calls = strtoll(PQgetvalue(res, 0, 9), NULL, 10);
	p->calls_used = strtoll(PQgetvalue(res, 0, 10), NULL, 10);
	strlcpy(p->expires_at, PQgetvalue(res, 0, 11), sizeof(p->expires_at));
	p->rate = strtod(PQgetvalue(res, 0, 14), NULL);
	p->burst = strtod(PQgetvalue(res, 0, 15), NULL);
	/* An approver token grants no tools; its person is what its decisions record. */
	if (PQnfields(res) > 16 && !PQgetisnull(res, 0, 16))
		strlcpy(p->approver, PQgetvalue(res, 0, 16), sizeof(p->approver));
	if (!json_is_array(p->tools) || !json_is_object(p->bindings)) {
		auth_clear(p);
		rpc_error_set(err, RPC_INTERNAL_ERROR, "internal", "Internal error");
		goto fail;
	}
	rc = 0;
fail:
	PQclear(res);
	return rc;
}

int
auth_count_result(const PGresult *res, struct principal *p, struct rpc_error *err)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		p->calls_used = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		return 0;
	}
	if (state != NULL && strcmp(state, "AL403") == 0)
		rpc_error_set(err, RPC_FORBIDDEN, "quota_exhausted",
		    "This token's %lld calls are used up", p->max_calls);
	else
		db_unavailable(err);
	return -1;
}

int
auth_count_call(struct db *db, struct principal *p, struct rpc_error *err)
{
	const char *values[1] = { p->token_id };
	PGresult *res;
	int rc;

	if (p->is_admin)
		return 0;
	res = db_exec(db, "auth_count", auth_count_sql, 1, values);
	rc = auth_count_result(res, p, err);
	PQclear(res);
	return rc;
}

int
auth_is_granted(const struct principal *p, const char *tool)
{
	json_t *v;
	size_t i;

	if (p->is_admin)
		return 0;	/* the admin credential mints tokens; it calls no tools */
	json_array_foreach(p->tools, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), tool) == 0)
			return 1;
	return 0;
}

void
auth_clear(struct principal *p)
{
	json_decref(p->tools);
	json_decref(p->bindings);
	p->tools = p->bindings = NULL;
}

int
auth_check_bindings(const struct principal *p, const struct tool *t, json_t *args,
    struct rpc_error *err)
{
	json_t *props = json_object_get(t->schema, "properties"), *v;
	const char *k;
	char *text;
	int same;

	/* A code tool reaches data only through its input_tool, which is checked itself. */
	if (p->is_admin || t->kind == TOOL_CODE)
		return 0;
	json_object_foreach(p->bindings, k, v) {
		/* A tool without the bound argument cannot honour the binding: minting refuses
		 * such a grant, and a catalog changed since fails closed here. */
		if (json_object_get(props, k) == NULL) {
			rpc_error_set(err, RPC_FORBIDDEN, "binding_mismatch", "This token is bound "
			    "to a value of argument '%s', which tool '%s' does not take", k, t->name);
			err->data = json_pack("{s:s}", "argument", k);
			return -1;
		}
		text = tool_arg_text(json_object_get(args, k));
		same = text != NULL && strcmp(text, json_string_value(v)) == 0;
		free(text);
		if (!same) {
			rpc_error_set(err, RPC_FORBIDDEN, "binding_mismatch",
			    "This token is bound to another value of argument '%s'", k);
			err->data = json_pack("{s:s}", "argument", k);
			return -1;
		}
	}
	return 0;
}
