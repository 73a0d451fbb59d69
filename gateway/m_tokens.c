/* m_tokens.c: the token methods: tokens.self for any token, tokens.mint and tokens.revoke
 * for the admin credential. */
#include <stdio.h>
#include <string.h>

#include "airlock/log.h"
#include "methods_int.h"

json_t *
m_tokens_self(struct call *c, json_t *params, struct rpc_error *err)
{
	json_t *result;

	(void)params;
	(void)err;
	if (c->p.is_admin)
		result = json_pack("{s:b}", "admin", 1);
	else
		result = json_pack("{s:s, s:s, s:s, s:O, s:O, s:s, s:b, s:b, s:I, s:o, s:o}",
		    "token_id", c->p.token_id, "tenant", c->p.tenant, "task", c->p.task, "tools",
		    c->p.tools, "bindings", c->p.bindings, "expires_at", c->p.expires_at,
		    "preview_only", c->p.is_preview_only, "revert", c->p.can_revert, "calls_used",
		    (json_int_t)c->p.calls_used, "calls_left",
		    c->p.max_calls > 0 ? json_integer(c->p.max_calls - c->p.calls_used)
				       : json_null(),
		    "approver",
		    c->p.approver[0] != '\0' ? json_string(c->p.approver) : json_null());
	return result;
}

static int
require_admin(struct call *c, json_t *params, struct rpc_error *err)
{
	if (!c->p.is_admin) {
		rpc_error_set(err, RPC_FORBIDDEN, "admin_required",
		    "This method needs the admin credential");
		return -1;
	}
	if (!json_is_object(params)) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
		    "params must be an object");
		return -1;
	}
	c->rec.arguments = json_deep_copy(params);
	if (db_ensure(c->ctx->db) == -1) {
		db_unavailable(err);
		return -1;
	}
	return 0;
}

json_t *
m_tokens_mint(struct call *c, json_t *params, struct rpc_error *err)
{
	char token[TOK_LEN + 1], id[TOK_ID_LEN + 1], expires[40], msg[256];
	struct catalog_ref *ref;
	struct tok_spec spec;
	json_t *result = NULL, *ttl, *v;
	int is_user_error, rc;

	if (require_admin(c, params, err) == -1)
		return NULL;
	memset(&spec, 0, sizeof(spec));
	spec.tenant = json_string_value(json_object_get(params, "tenant"));
	spec.task = json_string_value(json_object_get(params, "task"));
	spec.tools = json_object_get(params, "tools");
	spec.bindings = json_object_get(params, "bindings");
	ttl = json_object_get(params, "ttl");
	spec.ttl = json_is_integer(ttl) ? json_integer_value(ttl)
	    : json_is_string(ttl)	? tok_parse_ttl(json_string_value(ttl))
					: -1;
	v = json_object_get(params, "max_calls");
	spec.max_calls = v == NULL			      ? 0
	    : json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v)
							      : -1;
	spec.is_preview_only = json_is_true(json_object_get(params, "preview_only"));
	spec.can_revert = json_is_true(json_object_get(params, "revert"));
	spec.approver = json_string_value(json_object_get(params, "approver"));
	if (json_object_get(params, "approver") != NULL && spec.approver == NULL)
		spec.approver = ""; /* refused by the spec's check */
	spec.mint_call = c->rec.id;
	if (spec.tenant != NULL)
		strlcpy(c->rec.tenant, spec.tenant, sizeof(c->rec.tenant));
	/* Bindings are checked against the catalog in use. */
	ref = gw_catalog_get(c->gw);
	spec.catalog = ref != NULL ? ref->cat : NULL;
	rc = tok_mint(c->ctx->db->conn, &spec, token, id, expires, sizeof(expires), msg,
	    sizeof(msg), &is_user_error);
	gw_catalog_put(c->gw, ref);
	if (rc == -1) {
		if (is_user_error)
			rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params", "%s", msg);
		else {
			log_error("tokens.mint: %s", msg);
			rpc_error_retry(err, RPC_UNAVAILABLE, "backend_unavailable", 1,
			    "The token could not be stored; retry shortly");
		}
		return NULL;
	}
	result = json_pack("{s:s, s:s, s:s, s:s, s:s}", "token_id", id, "tenant", spec.tenant,
	    "task", spec.task ? spec.task : id, "expires_at", expires, "token", token);
	explicit_bzero(token, sizeof(token));
	/* The record's digest never covers the secret. */
	c->digest_of = json_deep_copy(result);
	json_object_del(c->digest_of, "token");
	return result;
}

json_t *
m_tokens_revoke(struct call *c, json_t *params, struct rpc_error *err)
{
	/* airlock.revoke_token() only ever sets a revocation; asked again, it changes nothing
	 * and names the token's tenant. */
	static const char revoke_sql[] =
	    "SELECT token_tenant FROM airlock.revoke_token($1) WHERE NOT was_revoked";
	static const char find_sql[] = "SELECT token_tenant FROM airlock.revoke_token($1)";
	const char *values[1];
	PGresult *res = NULL;
	json_t *result = NULL;
	int already = 0;

	if (require_admin(c, params, err) == -1)
		return NULL;
	values[0] = json_string_value(json_object_get(params, "token_id"));
	if (values[0] == NULL || strlen(values[0]) != TOK_ID_LEN) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
		    "token_id must be the token's 12-digit id");
		goto done;
	}
	res = db_exec(c->ctx->db, "tokens_revoke", revoke_sql, 1, values);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 0) {
		PQclear(res);
		res = db_exec(c->ctx->db, "tokens_find", find_sql, 1, values);
		already = 1;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_unavailable(err);
		goto done;
	}
	if (PQntuples(res) == 0) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params", "No token with id %s",
		    values[0]);
		goto done;
	}
	strlcpy(c->rec.tenant, db_text(res, 0, "token_tenant"), sizeof(c->rec.tenant));
	result = json_pack("{s:s, s:b, s:b}", "token_id", values[0], "revoked", 1,
	    "already_revoked", already);
done:
	PQclear(res);
	return result;
}
