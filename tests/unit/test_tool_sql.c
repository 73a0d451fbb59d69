/* test_tool_sql.c: gateway/tool_sql.c: statements refused, rewritten to $n, and bound. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "airlock/tool.h"
#include "tap.h"
#include "tool_fixture.h"

/* Statements a catalog refuses, whatever the database would say. */
static void
test_statement_faults(void)
{
	refused_parts("read", NOARGS, "SELECT * FROM t WHERE id = $1", "positional parameter $1",
	    "a positional parameter");
	refused_parts("read", NOARGS, "SELECT * FROM t WHERE id = $id",
	    "statement parameter $id has no property", "a parameter with no property");
	refused_parts("read", NOARGS, "SELECT set_config('role', 'x', true)", "mentions set_config",
	    "set_config");
	refused_parts("read", NOARGS, "SELECT 1 /* SET_Config */", "mentions set_config",
	    "set_config in any case, anywhere");
	refused_parts("read", NOARGS, "SET role tenant_b", "a read must be one SELECT", "SET");
	refused_parts("read", NOARGS, "RESET role", "a read must be one SELECT", "RESET");
	refused_parts("read", NOARGS, "UPDATE t SET a = 1 RETURNING a", "a read must be one SELECT",
	    "a read that is an UPDATE");
	refused_parts("write", NOARGS, "DELETE FROM t RETURNING id", "DELETE is refused",
	    "a write that deletes");
	refused_parts("write", NOARGS, "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
	    "a write must be a single INSERT or UPDATE", "MERGE");
	refused_parts("write", NOARGS, "SELECT 1", "a write must be a single INSERT or UPDATE",
	    "a write that is a SELECT");
	refused_parts("read", NOARGS, "SELECT 1 /* open /* */", "unterminated /* comment",
	    "an unterminated block comment");
}

/* The rewritten statement of a one-tool catalog with properties a, b, c. */
static void
rewrites(const char *statement, const char *want_sql, const char *want_params, const char *what)
{
	const char *args =
	    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},"
	    "\"b\":{\"type\":\"integer\"},\"c\":{\"type\":\"string\"}},\"additionalProperties\":false}";
	char *m = manifest("t", "read", args, statement), err[1024], params[256], want[512];
	struct catalog *cat = load_one("t.json", m, err, sizeof(err));
	size_t k;

	params[0] = '\0';
	if (cat != NULL)
		for (k = 0; k < cat->tools[0].n_params; k++) {
			if (k > 0)
				strlcat(params, ",", sizeof(params));
			strlcat(params, cat->tools[0].params[k], sizeof(params));
		}
	/* Every read runs capped at the default max_rows (100) plus the row that tells. */
	snprintf(want, sizeof(want), "SELECT * FROM (\n%s\n) AS capped LIMIT 101", want_sql);
	ok(cat != NULL && strcmp(cat->tools[0].sql, want) == 0 && strcmp(params, want_params) == 0,
	    "rewrite: %s", what);
	if (cat == NULL)
		printf("# %s\n", err);
	tool_catalog_free(cat);
	free(m);
}

static void
test_rewrite(void)
{
	rewrites("SELECT $a, $b", "SELECT $1, $2", "a,b", "in order of first appearance");
	rewrites("SELECT $b, $a, $b", "SELECT $1, $2, $1", "b,a", "a repeated name binds once");
	rewrites("SELECT $a::text, $b::int", "SELECT $1::text, $2::int", "a,b", ":: casts");
	rewrites("SELECT '$a', $b", "SELECT '$a', $1", "b", "string literals");
	rewrites("SELECT 'it''s $a', $b", "SELECT 'it''s $a', $1", "b",
	    "doubled quotes in literals");
	rewrites("SELECT E'\\' $a', $b", "SELECT E'\\' $a', $1", "b", "E'' backslash escapes");
	rewrites("SELECT \"$a\" FROM t WHERE x = $b", "SELECT \"$a\" FROM t WHERE x = $1", "b",
	    "quoted identifiers");
	rewrites("SELECT \"x\"\"$a\", $b", "SELECT \"x\"\"$a\", $1", "b",
	    "doubled quotes in identifiers");
	rewrites("SELECT $b -- and $a\n, $c", "SELECT $1  \n, $2", "b,c", "line comments");
	rewrites("SELECT /* $a /* nested $a */ still $a */ $b", "SELECT   $1", "b",
	    "nested block comments");
	rewrites("SELECT $a;\n-- the end\n", "SELECT $1", "a",
	    "a trailing semicolon and comment, dropped before the cap");
	rewrites("SELECT $$ $a $$, $b", "SELECT $$ $a $$, $1", "b", "dollar quotes");
	rewrites("SELECT $q$ $a $$ $a $q$, $b", "SELECT $q$ $a $$ $a $q$, $1", "b",
	    "tagged dollar quotes");
	rewrites("SELECT a$b FROM t WHERE x = $c", "SELECT a$b FROM t WHERE x = $1", "c",
	    "$ inside an identifier");
	rewrites("SELECT 1", "SELECT 1", "", "no parameters");
	rewrites("SELECT $a||$c", "SELECT $1||$2", "a,c", "parameters next to operators");
}

/* Arguments bound to the statement's parameters as text. */
static void
test_bind(void)
{
	struct catalog *cat;
	const struct tool *t = args_tool(&cat);
	char *values[3] = { (char *)1, (char *)1, (char *)1 };
	json_t *args;

	args = json_pack("{s:i, s:n}", "customer_id", 42, "status");
	ok(tool_bind(t, args, values) == 0 && strcmp(values[0], "42") == 0 && values[1] == NULL &&
		values[2] == NULL,
	    "tool_bind: values by parameter, null and absent as NULL");
	tool_unbind(t, values);
	ok(values[0] == NULL, "tool_unbind clears");
	json_decref(args);
	tool_catalog_free(cat);
}

static void
text_is(json_t *v, const char *want, const char *what)
{
	char *t = tool_arg_text(v);

	ok(want == NULL ? t == NULL : (t != NULL && strcmp(t, want) == 0), "arg text: %s (%s)",
	    what, t ? t : "NULL");
	free(t);
	json_decref(v);
}

static void
test_arg_text(void)
{
	text_is(json_integer(-9007199254740993LL), "-9007199254740993", "integer in decimal");
	text_is(json_real(0.1), "0.10000000000000001", "real with %.17g");
	text_is(json_real(2.5), "2.5", "short real");
	text_is(json_true(), "true", "true");
	text_is(json_false(), "false", "false");
	text_is(json_string("O'Brien; --"), "O'Brien; --", "string as is");
	text_is(json_pack("{s:[i,s]}", "a", 1, "x"), "{\"a\":[1,\"x\"]}", "object as compact JSON");
	text_is(json_pack("[i,n]", 1), "[1,null]", "array as compact JSON");
	text_is(json_null(), NULL, "null is SQL NULL");
	ok(tool_arg_text(NULL) == NULL, "arg text: no value is NULL");
}

int
main(void)
{
	fixture_open("test_tool_sql");
	test_statement_faults();
	test_rewrite();
	test_bind();
	test_arg_text();
	fixture_close();
	return tap_done();
}
