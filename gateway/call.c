/* call.c: a tool's statement, run as the tenant inside one implicit transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/auth.h"
#include "airlock/call.h"
#include "airlock/log.h"

/*
 * The role and the call id, set transaction-locally in one statement with the limits.  A
 * read writes nothing but, for a token with a quota, its count; that transaction commits
 * without waiting for its WAL flush (synchronous_commit off), and loses nothing answered:
 * its commit record is in the WAL before the audit batch's that holds the call's record,
 * and the call is answered only once that batch is flushed, which flushes everything
 * before it.
 */
static const char setup_read_sql[] =
    "SELECT set_config('role', $1, true), set_config('airlock.call_id', $2, true),"
    " set_config('statement_timeout', $3, true), set_config('lock_timeout', $4, true),"
    " set_config('transaction_read_only', 'on', true),"
    " set_config('synchronous_commit', 'off', true)";

#define LOCK_TIMEOUT_MS 2000

/* Run right after a tool's statement: who the statement left the session as. */
const char call_whoami_sql[] = "SELECT current_user::text";

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

/*
 * Turns a failed statement's result into the error the caller sees.  Only what is the
 * caller's own (the value it sent, a constraint's name) is passed on; everything else is
 * logged and answered without detail, so no SQL text, table or other tenant's value leaks.
 */
void
call_sql_error(const PGresult *res, const char *what, struct rpc_error *err)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);

	if (state == NULL)
		state = "XX000";
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
		rpc_error_set(err, RPC_UNAVAILABLE, "backend_unavailable",
		    "The call met a concurrent one and was rolled back; retry it");
		err->data = json_pack("{s:i}", "retryAfterSeconds", 1);
	} else if (strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0) {
		rpc_error_set(err, RPC_UNAVAILABLE, "backend_unavailable",
		    "The tool's statement ran past its time limit; retry later or narrow the call");
		err->data = json_pack("{s:i}", "retryAfterSeconds", 1);
	} else if (strncmp(state, "22", 2) == 0) {
		rpc_error_set(err, 0, "invalid_arguments", "The database refused an argument: %s",
		    primary ? primary : "invalid value");
	} else if (strncmp(state, "23", 2) == 0) {
		rpc_error_set(err, 0, "constraint_violated", "The call violates constraint %s",
		    constraint ? constraint : "(unnamed)");
		if (constraint != NULL)
			err->data = json_pack("{s:s}", "constraint", constraint);
	} else {
		log_error("%s: SQLSTATE %s: %s", what, state, primary ? primary : "");
		rpc_error_set(err, RPC_INTERNAL_ERROR, "internal", "Internal error");
	}
}

int
call_check_role(struct db *db, const PGresult *res, const char *role, const char *what,
    struct rpc_error *err)
{
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    strcmp(PQgetvalue(res, 0, 0), role) == 0)
		return 0;
	/* The statement changed its role (the catalog's checks should make that impossible):
	 * nothing it returned is answered, and the connection, which may keep the change past
	 * the transaction, is dropped. */
	log_error("%s: the statement left the session as %s, not %s; connection dropped", what,
	    PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 ?
	    PQgetvalue(res, 0, 0) : "(unknown)", role);
	db_close(db);
	rpc_error_set(err, RPC_INTERNAL_ERROR, "internal", "Internal error");
	return -1;
}

json_t *
call_rows_json(const PGresult *res, int max)
{
	json_t *rows = json_array(), *row;
	int i, j, n = PQntuples(res), nf = PQnfields(res);

	if (max > 0 && n > max)
		n = max;
	for (i = 0; i < n; i++) {
		row = json_object();
		for (j = 0; j < nf; j++)
			json_object_set_new(row, PQfname(res, j), tool_value_json(PQftype(res, j),
			    PQgetvalue(res, i, j), PQgetisnull(res, i, j)));
		json_array_append_new(rows, row);
	}
	return rows;
}

int
call_read(struct db *db, const struct tool *t, unsigned long version, const char *role,
    const char *call_id, json_t *args, struct principal *count, json_t **rows, int *truncated,
    struct rpc_error *err)
{
	char name[96], timeout[16], lock[16], **values = NULL;
	const char *setup[4];
	struct db_query q[4];
	const char *count_v[1];
	size_t i, nq = 0, i_stmt, i_who;
	PGresult *res = NULL;
	int rc = -1;

	*rows = NULL;
	*truncated = 0;
	memset(q, 0, sizeof(q));
	if (db_ensure(db) == -1)
		goto unavailable;
	snprintf(name, sizeof(name), "t%lu_%s", version, t->name);
	if (db_prepare(db, name, t->sql, &res) == -1) {
		if (res == NULL)
			goto unavailable;
		call_sql_error(res, t->name, err);
		goto fail;
	}
	if ((values = calloc(t->n_params + 1, sizeof(*values))) == NULL ||
	    tool_bind(t, args, values) == -1) {
		free(values);
		values = NULL;
		rpc_error_set(err, RPC_INTERNAL_ERROR, "internal", "Internal error");
		goto fail;
	}
	snprintf(timeout, sizeof(timeout), "%u", t->timeout_ms);
	snprintf(lock, sizeof(lock), "%d", LOCK_TIMEOUT_MS);
	setup[0] = role;
	setup[1] = call_id;
	setup[2] = timeout;
	setup[3] = lock;
	/* The quota's count goes first in the same implicit transaction: one round trip for
	 * count and read, and a read that fails leaves the count undone. */
	if (count != NULL && !count->is_admin) {
		count_v[0] = count->token_id;
		q[nq].sql = auth_count_sql;
		q[nq].n = 1;
		q[nq++].values = count_v;
	}
	q[nq].sql = setup_read_sql;
	q[nq].n = 4;
	q[nq++].values = setup;
	i_stmt = nq;
	q[nq].name = name;
	q[nq].n = (int)t->n_params;
	q[nq++].values = (const char *const *)values;
	i_who = nq;
	q[nq++].sql = call_whoami_sql;
	if (db_pipeline(db, q, nq) == -1)
		goto unavailable;
	if (count != NULL && !count->is_admin && auth_count_result(q[0].res, count, err) == -1)
		goto fail;
	for (i = 0; i < i_who; i++)
		if (PQresultStatus(q[i].res) != PGRES_TUPLES_OK) {
			call_sql_error(q[i].res, t->name, err);
			goto fail;
		}
	if (call_check_role(db, q[i_who].res, role, t->name, err) == -1)
		goto fail;
	*truncated = PQntuples(q[i_stmt].res) > (int)t->max_rows;
	*rows = call_rows_json(q[i_stmt].res, (int)t->max_rows);
	rc = 0;
	goto fail;
unavailable:
	db_unavailable(err);
fail:
	PQclear(res);
	for (i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		PQclear(q[i].res);
	if (values != NULL) {
		tool_unbind(t, values);
		free(values);
	}
	return rc;
}
