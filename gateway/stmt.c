/*
 * stmt.c: a tool's statement on a worker's connection, whether it reads or writes: its
 * failure as the caller sees it, the check of the role it left the session as, and its
 * rows as JSON.
 */
#include <stdio.h>
#include <string.h>

#include "airlock/log.h"
#include "airlock/stmt.h"

/* Run right after a tool's statement: who the statement left the session as. */
const char stmt_whoami_sql[] = "SELECT current_user::text AS session_role";

/*
 * Turns a failed statement's result into the error the caller sees.  Only what is the
 * caller's own (the value it sent, a constraint's name) is passed on; everything else is
 * logged and answered without detail, so no SQL text, table or other tenant's value leaks.
 */
void
stmt_error(const PGresult *res, const char *what, struct rpc_error *err)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);

	if (state == NULL)
		state = "XX000";
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
		rpc_error_retry(err, RPC_UNAVAILABLE, "backend_unavailable", 1,
		    "The call met a concurrent one and was rolled back; retry it");
	} else if (strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0) {
		rpc_error_retry(err, RPC_UNAVAILABLE, "backend_unavailable", 1,
		    "The tool's statement ran past its time limit; retry later or narrow the call");
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
		rpc_error_internal(err);
	}
}

int
stmt_check_role(struct db *db, const PGresult *res, const char *role, const char *what,
    struct rpc_error *err)
{
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    strcmp(db_text(res, 0, "session_role"), role) == 0)
		return 0;
	/* The statement changed its role (the catalog's checks should make that impossible):
	 * nothing it returned is answered, and the connection, which may keep the change past
	 * the transaction, is dropped. */
	log_error("%s: the statement left the session as %s, not %s; connection dropped", what,
	    PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
		? db_text(res, 0, "session_role")
		: "(unknown)",
	    role);
	db_close(db);
	rpc_error_internal(err);
	return -1;
}

json_t *
stmt_rows_json(const PGresult *res, int max)
{
	json_t *rows = json_array(), *row;
	int i, j, n = PQntuples(res), nf = PQnfields(res);

	if (max > 0 && n > max)
		n = max;
	for (i = 0; i < n; i++) {
		row = json_object();
		for (j = 0; j < nf; j++)
			json_object_set_new(row, PQfname(res, j),
			    tool_value_json(PQftype(res, j), PQgetvalue(res, i, j),
				PQgetisnull(res, i, j)));
		json_array_append_new(rows, row);
	}
	return rows;
}

void
stmt_name(char name[STMT_NAME_MAX], unsigned long version, const struct tool *t)
{
	/* Per catalog version: a reload's changed statement is prepared under a new name,
	 * while calls of the old catalog still run theirs. */
	snprintf(name, STMT_NAME_MAX, "t%lu_%s", version, t->name);
}

int
stmt_prepare(struct db *db, const struct tool *t, unsigned long version, char name[STMT_NAME_MAX],
    struct rpc_error *err)
{
	PGresult *res = NULL;

	stmt_name(name, version, t);
	if (db_prepare(db, name, t->sql, &res) == 0)
		return 0;
	if (res == NULL)
		db_unavailable(err);
	else
		stmt_error(res, t->name, err);
	PQclear(res);
	return -1;
}
