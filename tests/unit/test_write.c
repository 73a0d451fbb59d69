/*
 * test_write.c: gateway/write.c without a database: a plan's bound rows against what a commit
 * would change (check_plan, static, hence the #include), and the statements a tool's write
 * and a revert run.  The transaction itself needs PostgreSQL: tests/integration/test_plans.py.
 */
#include "../../gateway/write.c"

#include "tap.h"

/* What changes_sql's plan part reads: [{table, key, before_digest}], ordered. */
#define ROW(table, id, digest) \
	"{\"key\": {\"id\": " #id "}, \"table\": \"" table "\", \"before_digest\": \"" digest "\"}"

/* The difference named for row i of a plan_stale error's data, or "". */
static const char *
difference(const struct rpc_error *err, size_t i, const char **table, json_int_t *id)
{
	json_t *row = json_array_get(json_object_get(err->data, "rows"), i);

	const char *d = json_string_value(json_object_get(row, "difference"));

	*table = json_string_value(json_object_get(row, "table"));
	if (*table == NULL)
		*table = "";
	*id = json_integer_value(json_object_get(json_object_get(row, "key"), "id"));
	return d != NULL ? d : "";
}

static size_t
n_rows(const struct rpc_error *err)
{
	return json_array_size(json_object_get(err->data, "rows"));
}

static void
test_check_plan(void)
{
	struct rpc_error err;
	const char *d, *table;
	json_int_t id;
	const char *one = "[" ROW("billing.invoices", 7, "aa") "]";
	const char *two =
	    "[" ROW("billing.invoices", 7, "aa") ", " ROW("billing.invoices", 8, "bb") "]";

	memset(&err, 0, sizeof(err));
	ok(check_plan(two, "{}", two, "{}", &err) == 0 && err.reason == NULL && err.data == NULL,
	    "plan: the same rows, nothing inserted: the commit goes on");
	ok(check_plan(one, "{\"billing.invoices\": 1}", one, "{\"billing.invoices\": 1}", &err) ==
		    0 &&
		err.reason == NULL,
	    "plan: the same rows and the same inserts: the commit goes on");

	ok(check_plan(one, "{}", "[" ROW("billing.invoices", 7, "cc") "]", "{}", &err) == -1 &&
		err.code == RPC_CONFLICT && strcmp(err.reason, "plan_stale") == 0 &&
		n_rows(&err) == 2 &&
		strstr(err.message, "2 row(s) differ; nothing was done") != NULL,
	    "plan: a row changed since the preview is stale, named both ways (%s)", err.message);
	d = difference(&err, 0, &table, &id);
	ok(strcmp(d, "previewed, now different or not changed") == 0 &&
		strcmp(table, "billing.invoices") == 0 && id == 7,
	    "plan: the previewed image first (%s)", d);
	d = difference(&err, 1, &table, &id);
	ok(strcmp(d, "changed now, not as previewed") == 0 && id == 7,
	    "plan: then the image the commit would change (%s)", d);
	rpc_error_clear(&err);

	memset(&err, 0, sizeof(err));
	ok(check_plan(two, "{}", one, "{}", &err) == -1 && n_rows(&err) == 1 &&
		strcmp(difference(&err, 0, &table, &id),
		    "previewed, now different or not changed") == 0 &&
		id == 8,
	    "plan: a previewed row the commit would not change is named");
	rpc_error_clear(&err);

	memset(&err, 0, sizeof(err));
	ok(check_plan(one, "{}", two, "{}", &err) == -1 && n_rows(&err) == 1 &&
		strcmp(difference(&err, 0, &table, &id), "changed now, not as previewed") == 0 &&
		id == 8,
	    "plan: a row the commit would change beyond the preview is named");
	rpc_error_clear(&err);

	memset(&err, 0, sizeof(err));
	ok(check_plan("[]", "{}", one, "{}", &err) == -1 && n_rows(&err) == 1,
	    "plan: a preview that changed nothing binds a commit to change nothing");
	ok(strstr(err.message, "inserted") == NULL, "plan: inserts not mentioned when they agree");
	rpc_error_clear(&err);

	memset(&err, 0, sizeof(err));
	ok(check_plan(one, "{\"billing.invoices\": 1}", one, "{\"billing.invoices\": 2}", &err) ==
		    -1 &&
		strcmp(err.reason, "plan_stale") == 0 && n_rows(&err) == 0 &&
		strstr(err.message, "and the rows inserted differ") != NULL,
	    "plan: the same updates but more rows inserted is stale (%s)", err.message);
	ok(json_integer_value(json_object_get(json_object_get(err.data, "inserts_planned"),
	       "billing.invoices")) == 1 &&
		json_integer_value(json_object_get(json_object_get(err.data, "inserts_now"),
		    "billing.invoices")) == 2,
	    "plan: inserts planned and now, per table, in the error's data");
	rpc_error_clear(&err);

	memset(&err, 0, sizeof(err));
	ok(check_plan(one, "{\"billing.invoices\": 1}", one, "{}", &err) == -1 &&
		json_is_object(json_object_get(err.data, "inserts_now")) &&
		json_object_size(json_object_get(err.data, "inserts_now")) == 0,
	    "plan: a planned insert the commit would not make is stale");
	rpc_error_clear(&err);
}

static void
test_stmt_tool(void)
{
	char *names[] = { "id", "note", "amount" };
	struct tool t;
	struct write_stmt st;
	char **values = NULL;
	json_t *args = json_pack("{s:i, s:n, s:s}", "id", 7, "note", "amount", "12.50");

	memset(&t, 0, sizeof(t));
	t.params = names;
	t.n_params = 3;
	t.max_rows = 5;
	t.timeout_ms = 1500;
	memset(&st, 0, sizeof(st));
	st.needs_approval = 1;
	st.approval_rows = 3;
	st.sql = "UPDATE x SET a = 1";
	ok(write_stmt_tool(&st, &t, "tool_w", args, &values) == 0 && values != NULL,
	    "tool write: bound");
	ok(values != NULL && strcmp(values[0], "7") == 0 && values[1] == NULL &&
		strcmp(values[2], "12.50") == 0 && values[3] == NULL,
	    "tool write: values by parameter, null as NULL, the array ends in NULL");
	ok(strcmp(st.name, "tool_w") == 0 && st.sql == NULL && st.n == 3 &&
		(const char *const *)values == st.values,
	    "tool write: the prepared statement with its values");
	ok(st.max_rows == 5 && st.timeout_ms == 1500, "tool write: the tool's row cap and timeout");
	ok(!st.needs_approval && st.approval_rows == 0 && !st.is_four_eyes,
	    "tool write: no approval carried over from an earlier statement");
	write_unbind(&t, values);
	write_unbind(&t, NULL);
	json_decref(args);
}

static void
test_stmt_revert(void)
{
	struct write_stmt st;
	const char *values[2] = { NULL, NULL };
	const char *groups = "[{\"table\": \"billing.invoices\"}]";

	memset(&st, 0xff, sizeof(st));
	write_stmt_revert(&st, groups, 0, values);
	ok(st.name == NULL && st.sql == write_revert_sql && st.n == 2 && st.values == values &&
		values[0] == groups && strcmp(values[1], "false") == 0,
	    "revert: the revert statement, its groups, not forced");
	ok(st.max_rows == 0 && st.timeout_ms == 10000 && !st.needs_approval &&
		st.approval_rows == 0,
	    "revert: no row cap, no approval, ten seconds");
	write_stmt_revert(&st, groups, 1, values);
	ok(strcmp(values[1], "true") == 0, "revert: forced");
	ok(strstr(write_revert_sql, "$1") != NULL && strstr(write_revert_sql, "$2") != NULL &&
		strstr(write_revert_sql, "$3") == NULL,
	    "revert: the statement takes the two values it is given");
}

int
main(void)
{
	test_check_plan();
	test_stmt_tool();
	test_stmt_revert();
	return tap_done();
}
