/*
 * read.c: the read path.  A read tool's statement runs as the tenant, read-only, inside one
 * implicit transaction, in one pipelined round trip with its settings, the quota's count
 * and the role check after it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/auth.h"
#include "airlock/read.h"
#include "airlock/stmt.h"

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

int
read_run(struct db *db, const struct tool *t, unsigned long version, const char *role,
    const char *call_id, json_t *args, struct principal *count, json_t **rows, int *truncated,
    struct rpc_error *err)
{
	char name[STMT_NAME_MAX], timeout[16], lock[16], **values = NULL;
	const char *setup[4];
	struct db_query q[4];
	const char *count_v[1];
	size_t i, nq = 0, i_stmt, i_who;
	int rc = -1;

	*rows = NULL;
	*truncated = 0;
	memset(q, 0, sizeof(q));
	if (db_ensure(db) == -1)
		goto unavailable;
	if (stmt_prepare(db, t, version, name, err) == -1)
		goto fail;
	if ((values = calloc(t->n_params + 1, sizeof(*values))) == NULL ||
	    tool_bind(t, args, values) == -1) {
		free(values);
		values = NULL;
		rpc_error_internal(err);
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
	q[nq++].sql = stmt_whoami_sql;
	if (db_pipeline(db, q, nq) == -1)
		goto unavailable;
	if (count != NULL && !count->is_admin && auth_count_result(q[0].res, count, err) == -1)
		goto fail;
	for (i = 0; i < i_who; i++)
		if (PQresultStatus(q[i].res) != PGRES_TUPLES_OK) {
			stmt_error(q[i].res, t->name, err);
			goto fail;
		}
	if (stmt_check_role(db, q[i_who].res, role, t->name, err) == -1)
		goto fail;
	*truncated = PQntuples(q[i_stmt].res) > (int)t->max_rows;
	*rows = stmt_rows_json(q[i_stmt].res, (int)t->max_rows);
	rc = 0;
	goto fail;
unavailable:
	db_unavailable(err);
fail:
	for (i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		PQclear(q[i].res);
	if (values != NULL) {
		tool_unbind(t, values);
		free(values);
	}
	return rc;
}

json_t *
read_result(json_t *rows, int truncated)
{
	return json_pack("{s:O, s:I, s:b, s:b}", "rows", rows, "row_count",
	    (json_int_t)json_array_size(rows), "truncated", truncated, "dry_run", 0);
}
