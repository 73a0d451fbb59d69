/* tool_check.c: a read's or write's statement checked against PostgreSQL as the catalog loads. */
/*
 * The database checks (tool_load with a connection): the statement prepares; it never
 * mentions set_config (membership is checked against the gateway's login role, so such a
 * statement could switch tenants; SET and RESET cannot be a tool's statement: the first
 * keyword must be SELECT/WITH/VALUES/TABLE for a read and INSERT/UPDATE for a write); a
 * read returns columns, and its plan (EXPLAIN EXECUTE, generic plan) neither modifies nor
 * locks rows; a write is one INSERT or UPDATE with RETURNING (no DELETE: there is no hard
 * delete; no MERGE); a read depends on no adopted tenant table directly (it must use the
 * <table>_live view), which PostgreSQL's dependency records of a temporary view made from
 * the statement tell, in a transaction that is rolled back.  The same temporary view tells
 * whether the statement locks rows (its stored query has row marks) when the connecting
 * role may not EXPLAIN the statement (airlockd's role holds no table privileges of its own).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "airlock/db.h"
#include "airlock/log.h"
#include "airlock/tool.h"
#include "tool_int.h"

/* Replacing $name by (NULL::type) for the dependency check's temporary view. */
struct nullify {
	const struct tool *t;
	char **types;
};

static int
nullify_param(void *arg, const char *name, size_t len, struct buf *out, char *err, size_t errlen)
{
	struct nullify *nf = arg;
	size_t k;

	for (k = 0; k < nf->t->n_params; k++)
		if (strlen(nf->t->params[k]) == len && memcmp(nf->t->params[k], name, len) == 0) {
			buf_str(out, "(NULL::");
			buf_str(out, nf->types[k]);
			buf_str(out, ")");
			return 0;
		}
	log_seterr(err, errlen, "statement parameter $%.*s has no property in arguments", (int)len,
	    name);
	return -1;
}

/* PostgreSQL's primary message for a failed result, else libpq's. */
static const char *
pg_message(const PGresult *res, PGconn *conn)
{
	const char *m = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	return m != NULL ? m : PQerrorMessage(conn);
}

/* Runs a parameterless command; 0, or -1 with res kept in *resp for the caller's message. */
static int
run_cmd(PGconn *conn, const char *sql, PGresult **resp)
{
	PGresult *res = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);

	if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK) {
		PQclear(res);
		return 0;
	}
	*resp = res;
	return -1;
}

/* Counts the plan nodes of type node_type in an EXPLAIN (FORMAT JSON) tree. */
static size_t
count_nodes(json_t *v, const char *node_type, json_t **last)
{
	const char *key;
	json_t *e, *nt;
	size_t i, n = 0;

	if (json_is_object(v)) {
		nt = json_object_get(v, "Node Type");
		if (json_is_string(nt) && strcmp(json_string_value(nt), node_type) == 0) {
			n++;
			if (last != NULL)
				*last = v;
		}
		json_object_foreach (v, key, e) {
			n += count_nodes(e, node_type, last);
		}
	}
	/* json_array_foreach does nothing for a value that is not an array. */
	json_array_foreach (v, i, e) {
		n += count_nodes(e, node_type, last);
	}
	return n;
}

/* Counts the ModifyTable nodes of a plan whose Operation is op. */
static size_t
count_modify(json_t *v, const char *op)
{
	const char *key;
	json_t *e, *nt, *o;
	size_t i, n = 0;

	if (json_is_object(v)) {
		nt = json_object_get(v, "Node Type");
		o = json_object_get(v, "Operation");
		if (json_is_string(nt) && strcmp(json_string_value(nt), "ModifyTable") == 0 &&
		    json_is_string(o) && strcmp(json_string_value(o), op) == 0)
			n++;
		json_object_foreach (v, key, e) {
			n += count_modify(e, op);
		}
	}
	json_array_foreach (v, i, e) {
		n += count_modify(e, op);
	}
	return n;
}

/*
 * Runs EXPLAIN (FORMAT JSON) EXECUTE on the prepared statement and checks its plan.
 * Returns 0, 1 when the connecting role may not plan the statement (no privileges: the
 * temporary view's check stands in), or -1 with err set.  Runs inside the check's
 * transaction, under a savepoint it rolls back to on a privilege error.
 */
static int
check_plan(PGconn *conn, const struct tool *t, const char *stmt, char *err, size_t errlen)
{
	struct buf q = { NULL, 0, 0, 0 };
	PGresult *res = NULL;
	json_t *plan = NULL;
	const char *state;
	size_t k, n;
	int rc = -1;

	buf_str(&q, "EXPLAIN (FORMAT JSON) EXECUTE ");
	buf_str(&q, stmt);
	for (k = 0; k < t->n_params; k++)
		buf_str(&q, k == 0 ? "(NULL" : ", NULL");
	if (t->n_params > 0)
		buf_str(&q, ")");
	if (q.failed) {
		log_seterr(err, errlen, "%s: out of memory", t->file);
		goto out;
	}
	if (run_cmd(conn, "SAVEPOINT airlock_plan", &res) == -1) {
		log_seterr(err, errlen, "%s: cannot check the plan: %s", t->file,
		    pg_message(res, conn));
		goto out;
	}
	res = PQexecParams(conn, q.s, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state != NULL && strcmp(state, "42501") == 0) {
			PQclear(res);
			res = NULL;
			if (run_cmd(conn, "ROLLBACK TO SAVEPOINT airlock_plan", &res) == -1) {
				log_seterr(err, errlen, "%s: cannot check the plan: %s", t->file,
				    pg_message(res, conn));
				goto out;
			}
			rc = 1;
			goto out;
		}
		log_seterr(err, errlen, "%s: cannot plan the statement: %s", t->file,
		    pg_message(res, conn));
		goto out;
	}
	/* EXPLAIN names its one column in capitals, with a space: quoted, as PQfnumber wants. */
	if (PQntuples(res) != 1 ||
	    (plan = json_loads(db_value(res, 0, "\"QUERY PLAN\""), 0, NULL)) == NULL) {
		log_seterr(err, errlen, "%s: cannot read the statement's plan", t->file);
		goto out;
	}
	if (t->kind == TOOL_READ) {
		if (count_nodes(plan, "ModifyTable", NULL) > 0) {
			log_seterr(err, errlen, "%s: a read must not write: its plan modifies rows",
			    t->file);
			goto out;
		}
		if (count_nodes(plan, "LockRows", NULL) > 0) {
			log_seterr(err, errlen,
			    "%s: a read must not lock rows (FOR UPDATE/SHARE): "
			    "its plan locks rows",
			    t->file);
			goto out;
		}
	} else {
		/* One statement; it may change more than one table (a data-modifying WITH, as
		 * refund_invoice does), but only by INSERT and UPDATE. */
		n = count_nodes(plan, "ModifyTable", NULL);
		if (n == 0 || n != count_modify(plan, "Insert") + count_modify(plan, "Update")) {
			log_seterr(err, errlen,
			    "%s: a write must be a single INSERT or UPDATE with "
			    "RETURNING",
			    t->file);
			goto out;
		}
	}
	rc = 0;
out:
	PQclear(res);
	json_decref(plan);
	free(q.s);
	return rc;
}

/*
 * The dependency check of a read: a temporary view made from the statement as written
 * (orig), with each parameter replaced by a typed NULL, must depend on no adopted tenant
 * table directly, and its stored query must not lock rows.  Runs inside the check's
 * transaction, which the caller rolls back.
 */
static int
check_view(PGconn *conn, const struct tool *t, const char *orig, const char *stmt, char **types,
    char *err, size_t errlen)
{
	struct nullify nf = { t, types };
	struct buf q = { NULL, 0, 0, 0 }, tables = { NULL, 0, 0, 0 };
	PGresult *res = NULL;
	char view[128], fault[256];
	const char *params[1];
	int i, rc = -1;

	snprintf(view, sizeof(view), "pg_temp.%s_view", stmt);
	buf_str(&q, "CREATE TEMPORARY VIEW ");
	buf_str(&q, view);
	buf_str(&q, " AS ");
	if (tool_sql_scan(orig, nullify_param, &nf, &q, fault, sizeof(fault)) == -1) {
		log_seterr(err, errlen, "%s: %s", t->file, fault);
		goto out;
	}
	res = PQexecParams(conn, q.s, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_seterr(err, errlen, "%s: cannot check what the read depends on (as a view): %s",
		    t->file, pg_message(res, conn));
		goto out;
	}
	PQclear(res);
	params[0] = view;
	res = PQexecParams(conn,
	    "SELECT DISTINCT format('%I.%I', n.nspname, c.relname) AS adopted "
	    "FROM pg_rewrite r "
	    "JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid "
	    "JOIN pg_class c ON c.oid = d.refobjid "
	    "JOIN pg_namespace n ON n.oid = c.relnamespace "
	    "JOIN airlock.tenant_tables tt ON tt.schema_name = n.nspname "
	    "AND tt.table_name = c.relname "
	    "WHERE r.ev_class = $1::regclass AND d.refclassid = 'pg_class'::regclass "
	    "AND d.refobjid <> r.ev_class ORDER BY 1",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_seterr(err, errlen, "%s: cannot check what the read depends on: %s", t->file,
		    pg_message(res, conn));
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++) {
		buf_str(&tables, i > 0 ? ", " : "");
		buf_str(&tables, db_text(res, i, "adopted"));
	}
	if (PQntuples(res) > 0) {
		log_seterr(err, errlen,
		    "%s: the read uses the adopted tenant table%s %s directly; "
		    "read its _live view instead (soft-deleted rows left out)",
		    t->file, PQntuples(res) > 1 ? "s" : "", tables.failed ? "(many)" : tables.s);
		goto out;
	}
	PQclear(res);
	res = PQexecParams(conn,
	    "SELECT bool_or(ev_action::text ~ ':rowMarks \\(') AS locks "
	    "FROM pg_rewrite WHERE ev_class = $1::regclass",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		log_seterr(err, errlen, "%s: cannot check the read for locks: %s", t->file,
		    pg_message(res, conn));
		goto out;
	}
	if (strcmp(db_text(res, 0, "locks"), "t") == 0) {
		log_seterr(err, errlen, "%s: a read must not lock rows (FOR UPDATE/SHARE)",
		    t->file);
		goto out;
	}
	rc = 0;
out:
	PQclear(res);
	free(q.s);
	free(tables.s);
	return rc;
}

/* The SQL names of the prepared statement's parameter types, one new string each. */
static char **
param_type_names(PGconn *conn, const PGresult *desc, size_t n, char *err, size_t errlen)
{
	struct buf arr = { NULL, 0, 0, 0 };
	PGresult *res = NULL;
	const char *params[1];
	char num[16], **types = NULL;
	size_t k;

	buf_str(&arr, "{");
	for (k = 0; k < n; k++) {
		snprintf(num, sizeof(num), "%s%u", k > 0 ? "," : "", PQparamtype(desc, (int)k));
		buf_str(&arr, num);
	}
	buf_str(&arr, "}");
	if (arr.failed || (types = calloc(n + 1, sizeof(*types))) == NULL) {
		log_seterr(err, errlen, "out of memory");
		goto fail;
	}
	params[0] = arr.s;
	res = PQexecParams(conn,
	    "SELECT format_type(u.t, NULL) AS type_name FROM unnest($1::oid[]) "
	    "WITH ORDINALITY AS u(t, i) ORDER BY u.i",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || (size_t)PQntuples(res) != n) {
		log_seterr(err, errlen, "cannot name the parameter types: %s",
		    pg_message(res, conn));
		goto fail;
	}
	for (k = 0; k < n; k++)
		if ((types[k] = strdup(db_text(res, (int)k, "type_name"))) == NULL) {
			log_seterr(err, errlen, "out of memory");
			goto fail;
		}
	PQclear(res);
	free(arr.s);
	return types;
fail:
	for (k = 0; types != NULL && k < n; k++)
		free(types[k]);
	free(types);
	PQclear(res);
	free(arr.s);
	return NULL;
}

/* The database checks of one read or write, in order: prepare, describe, plan, dependencies. */
int
tool_check_statement(PGconn *conn, struct tool *t, const char *orig, const char *stmt, char *err,
    size_t errlen)
{
	PGresult *res = NULL;
	char **types = NULL, fault[512];
	size_t k, j;
	int prepared = 0, rc = -1, plan;

	res = PQprepare(conn, stmt, t->sql, 0, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_seterr(err, errlen, "%s: the statement does not prepare: %s", t->file,
		    pg_message(res, conn));
		goto out;
	}
	prepared = 1;
	PQclear(res);
	res = PQdescribePrepared(conn, stmt);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_seterr(err, errlen, "%s: cannot describe the statement: %s", t->file,
		    pg_message(res, conn));
		goto out;
	}
	if ((size_t)PQnparams(res) != t->n_params) {
		log_seterr(err, errlen, "%s: the statement has %d parameters, expected %zu",
		    t->file, PQnparams(res), t->n_params);
		goto out;
	}
	if (PQnfields(res) == 0) {
		log_seterr(err, errlen,
		    t->kind == TOOL_READ
			? "%s: a read must return rows (one "
			  "SELECT)"
			: "%s: a write needs RETURNING (the changed rows are its result)",
		    t->file);
		goto out;
	}
	t->n_cols = (size_t)PQnfields(res);
	if ((t->col_types = calloc(t->n_cols, sizeof(*t->col_types))) == NULL ||
	    (t->col_names = calloc(t->n_cols, sizeof(*t->col_names))) == NULL) {
		log_seterr(err, errlen, "%s: out of memory", t->file);
		goto out;
	}
	for (k = 0; k < t->n_cols; k++) {
		t->col_types[k] = PQftype(res, (int)k);
		if ((t->col_names[k] = strdup(PQfname(res, (int)k))) == NULL) {
			log_seterr(err, errlen, "%s: out of memory", t->file);
			goto out;
		}
		for (j = 0; j < k; j++)
			if (strcmp(t->col_names[j], t->col_names[k]) == 0) {
				log_seterr(err, errlen,
				    "%s: the statement returns two columns named "
				    "'%s'; give them distinct names (AS)",
				    t->file, t->col_names[k]);
				goto out;
			}
	}
	if ((types = param_type_names(conn, res, t->n_params, fault, sizeof(fault))) == NULL) {
		log_seterr(err, errlen, "%s: %s", t->file, fault);
		goto out;
	}
	PQclear(res);
	res = NULL;

	/* The rest happens in a transaction that is always rolled back. */
	if (run_cmd(conn, "BEGIN", &res) == -1 ||
	    run_cmd(conn, "SET LOCAL plan_cache_mode = force_generic_plan", &res) == -1) {
		log_seterr(err, errlen, "%s: %s", t->file, pg_message(res, conn));
		goto out;
	}
	if ((plan = check_plan(conn, t, stmt, err, errlen)) == -1)
		goto out;
	if (t->kind == TOOL_READ && check_view(conn, t, orig, stmt, types, err, errlen) == -1)
		goto out;
	if (run_cmd(conn, "ROLLBACK", &res) == -1) {
		log_seterr(err, errlen, "%s: %s", t->file, pg_message(res, conn));
		goto out;
	}
	rc = 0;
out:
	PQclear(res);
	res = NULL;
	if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
		res = PQexec(conn, "ROLLBACK");
		PQclear(res);
		res = NULL;
	}
	if (prepared && PQstatus(conn) == CONNECTION_OK) {
		char sql[128];

		snprintf(sql, sizeof(sql), "DEALLOCATE %s", stmt);
		res = PQexec(conn, sql);
		PQclear(res);
	}
	for (k = 0; types != NULL && k < t->n_params; k++)
		free(types[k]);
	free(types);
	return rc;
}
