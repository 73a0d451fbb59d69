/* test_tool_schema.c: gateway/tool_schema.c: arguments schemas, argument checks, output schemas. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "airlock/tool.h"
#include "conform.h"
#include "tap.h"
#include "tool_fixture.h"

static void
refused_schema_prop(const char *prop, const char *want, const char *what)
{
	char args[1024];

	snprintf(args, sizeof(args),
	    "{\"type\":\"object\",\"properties\":{\"x\":%s},"
	    "\"additionalProperties\":false}",
	    prop);
	refused_parts("read", args, "SELECT $x", want, what);
}

/* Arguments schemas a catalog refuses. */
static void
test_schema_faults(void)
{
	refused_parts("read",
	    "{\"type\":\"object\",\"properties\":{\"airlock_plan_id\":"
	    "{\"type\":\"string\"}},\"additionalProperties\":false}",
	    "SELECT $airlock_plan_id",
	    "names starting with 'airlock_' are the gateway's call options",
	    "a property named like a call option");
	/* The arguments schema. */
	refused_parts("read",
	    "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false,"
	    "\"$schema\":\"x\"}",
	    "SELECT 1", "unknown keyword '$schema'", "an unknown top keyword");
	refused_parts("read", "{\"type\":\"array\",\"additionalProperties\":false}", "SELECT 1",
	    "type must be \"object\"", "top type not object");
	refused_parts("read", "{\"type\":\"object\",\"properties\":{}}", "SELECT 1",
	    "additionalProperties must be present and false", "additionalProperties absent");
	refused_parts("read",
	    "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":true}", "SELECT 1",
	    "additionalProperties must be present and false", "additionalProperties true");
	refused_parts("read",
	    "{\"type\":\"object\",\"properties\":[],\"additionalProperties\":false}", "SELECT 1",
	    "properties must be an object", "properties of the wrong type");
	refused_parts("read",
	    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},"
	    "\"required\":[\"b\"],\"additionalProperties\":false}",
	    "SELECT $a", "required names 'b', which is not a property",
	    "required naming a missing property");
	refused_parts("read",
	    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},"
	    "\"required\":\"a\",\"additionalProperties\":false}",
	    "SELECT $a", "required must be an array", "required of the wrong type");
	refused_parts("read",
	    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},"
	    "\"required\":[\"a\",\"a\"],\"additionalProperties\":false}",
	    "SELECT $a", "required names 'a' twice", "required naming a property twice");
	refused_parts("read",
	    "{\"type\":\"object\",\"properties\":{\"Bad\":{\"type\":\"string\"}},"
	    "\"additionalProperties\":false}",
	    "SELECT 1", "property name 'Bad'", "a bad property name");
	refused_schema_prop("{\"type\":\"string\",\"format\":\"email\"}",
	    "unknown keyword 'format'", "an unknown property keyword");
	refused_schema_prop("{\"type\":\"string\",\"$ref\":\"#\"}", "unknown keyword '$ref'",
	    "$ref refused");
	refused_schema_prop("{\"maxLength\":3}", "needs a type", "a property without type");
	refused_schema_prop("{\"type\":\"date\"}", "keyword 'type' must name", "an unknown type");
	refused_schema_prop("{\"type\":3}", "keyword 'type' must be a string",
	    "type of the wrong type");
	refused_schema_prop("{\"type\":[]}", "keyword 'type' must be a string",
	    "an empty type array");
	refused_schema_prop("{\"type\":[\"string\",\"string\"]}", "names string twice",
	    "a type twice");
	refused_schema_prop("{\"type\":\"null\"}", "other than null", "type null alone");
	refused_schema_prop("{\"type\":\"integer\",\"minimum\":\"1\"}",
	    "'minimum' must be a number", "minimum of the wrong type");
	refused_schema_prop("{\"type\":\"integer\",\"maximum\":true}", "'maximum' must be a number",
	    "maximum of the wrong type");
	refused_schema_prop("{\"type\":\"integer\",\"minimum\":5,\"maximum\":1}",
	    "minimum is above maximum", "minimum above maximum");
	refused_schema_prop("{\"type\":\"string\",\"minimum\":1}", "applies to integer and number",
	    "minimum on a string");
	refused_schema_prop("{\"type\":\"string\",\"maxLength\":-1}",
	    "'maxLength' must be a non-negative", "negative maxLength");
	refused_schema_prop("{\"type\":\"string\",\"minLength\":1.5}",
	    "'minLength' must be a non-negative", "minLength of the wrong type");
	refused_schema_prop("{\"type\":\"string\",\"minLength\":5,\"maxLength\":2}",
	    "minLength is above maxLength", "minLength above maxLength");
	refused_schema_prop("{\"type\":\"integer\",\"maxLength\":3}",
	    "applies to string types only", "maxLength on an integer");
	refused_schema_prop("{\"type\":\"integer\",\"pattern\":\"^a\"}",
	    "applies to string types only", "pattern on an integer");
	refused_schema_prop("{\"type\":\"string\",\"pattern\":5}", "'pattern' must be a string",
	    "pattern of the wrong type");
	refused_schema_prop("{\"type\":\"string\",\"pattern\":\"a(\"}", "pattern does not compile",
	    "a pattern that does not compile");
	refused_schema_prop("{\"type\":\"string\",\"description\":1}",
	    "'description' must be a string", "description of the wrong type");
	refused_schema_prop("{\"type\":\"string\",\"title\":[]}", "'title' must be a string",
	    "title of the wrong type");
	refused_schema_prop("{\"type\":\"string\",\"sensitive\":\"yes\"}",
	    "'sensitive' must be true or false", "sensitive of the wrong type");
	refused_schema_prop("{\"type\":\"string\",\"enum\":[]}", "'enum' must be a non-empty array",
	    "an empty enum");
	refused_schema_prop("{\"type\":\"string\",\"enum\":\"a\"}",
	    "'enum' must be a non-empty array", "enum of the wrong type");
	refused_schema_prop("{\"type\":\"string\",\"enum\":[\"a\",1]}", "enum value 2",
	    "an enum value of the wrong type");
	refused_schema_prop("{\"type\":\"string\",\"enum\":[\"a\",\"a\"]}",
	    "enum lists a value twice", "an enum value twice");
	refused_schema_prop("{\"type\":\"string\",\"enum\":[[1]]}", "enum values must be",
	    "an array in enum");
	refused_schema_prop("{\"type\":\"integer\",\"maximum\":10,\"default\":11}",
	    "default does not pass its own rules", "a default out of range");
	refused_schema_prop("{\"type\":\"integer\",\"default\":\"1\"}",
	    "default does not pass its own rules", "a default of the wrong type");
	refused_schema_prop("{\"type\":\"object\",\"properties\":{}}",
	    "unknown keyword 'properties'", "nested keywords on an object");
	refused_schema_prop("{\"type\":\"array\",\"items\":{}}", "unknown keyword 'items'",
	    "nested keywords on an array");
	refused_schema_prop("{\"type\":\"object\",\"minLength\":1}",
	    "keyword 'minLength' does not apply to object", "a string keyword on an object");
	refused_schema_prop("{\"type\":\"array\",\"maxLength\":3}",
	    "keyword 'maxLength' does not apply", "maxLength on an array");
}

static const struct tool *tool;

/* Checks args (JSON text) and expects msg and bad_arg; want_msg NULL means accepted. */
static json_t *
check(const char *args, const char *want_msg, const char *want_arg, const char *what)
{
	json_t *a = args != NULL ? json_loads(args, JSON_DECODE_ANY, NULL) : NULL, *out;
	const char *bad = "unset";
	char msg[512] = "";

	out = tool_check_args(tool, a, &bad, msg, sizeof(msg));
	if (want_msg == NULL)
		ok(out != NULL && bad == NULL, "accepted: %s %s", what, msg);
	else
		ok(out == NULL && strcmp(msg, want_msg) == 0 &&
			(want_arg == NULL ? bad == NULL
					  : (bad != NULL && strcmp(bad, want_arg) == 0)),
		    "refused: %s (%s; %s)", what, msg, bad ? bad : "NULL");
	json_decref(a);
	return out;
}

static void
test_args(void)
{
	json_t *out, *a;
	const char *bad;
	char msg[256], *dump;

	out = check("{\"customer_id\":42}", NULL, NULL, "a required integer");
	dump = out ? json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	ok(dump != NULL && strcmp(dump, "{\"customer_id\":42,\"limit\":20,\"list\":[1,2]}") == 0,
	    "defaults applied to absent arguments (%s)", dump ? dump : "NULL");
	free(dump);
	json_decref(out);
	out =
	    check("{\"customer_id\":42,\"limit\":7}", NULL, NULL, "a given value over its default");
	ok(out != NULL && json_integer_value(json_object_get(out, "limit")) == 7,
	    "a given value is not replaced by the default");
	json_decref(out);
	out = check("{\"customer_id\":3.0}", NULL, NULL, "an integral real for an integer");
	ok(out != NULL && json_is_integer(json_object_get(out, "customer_id")) &&
		json_integer_value(json_object_get(out, "customer_id")) == 3,
	    "an integral real becomes an integer");
	json_decref(out);

	json_decref(check(NULL, "missing required argument 'customer_id'", "customer_id",
	    "no arguments at all"));
	json_decref(check("{}", "missing required argument 'customer_id'", "customer_id",
	    "missing required"));
	json_decref(check("[]", "arguments must be an object", NULL, "arguments not an object"));
	json_decref(check("{\"customer_id\":\"42\"}", "argument 'customer_id' must be an integer",
	    "customer_id", "a string for an integer"));
	json_decref(check("{\"customer_id\":1.5}", "argument 'customer_id' must be an integer",
	    "customer_id", "a fraction for an integer"));
	json_decref(check("{\"customer_id\":true}", "argument 'customer_id' must be an integer",
	    "customer_id", "a boolean for an integer"));
	json_decref(check("{\"customer_id\":null}", "argument 'customer_id' must be an integer",
	    "customer_id", "null for a non-nullable integer"));
	json_decref(check("{\"customer_id\":1e300}", "argument 'customer_id' must be an integer",
	    "customer_id", "a huge real for an integer"));
	json_decref(check("{\"customer_id\":0}", "argument 'customer_id' must be at least 1",
	    "customer_id", "below minimum"));
	json_decref(check("{\"customer_id\":1,\"limit\":101}",
	    "argument 'limit' must be at most 100", "limit", "above maximum"));
	json_decref(check("{\"customer_id\":1,\"limit\":100}", NULL, NULL, "at maximum"));
	json_decref(check("{\"customer_id\":1,\"ratio\":1.6}",
	    "argument 'ratio' must be at most 1.5", "ratio", "a real above a real maximum"));
	json_decref(check("{\"customer_id\":1,\"ratio\":-0.5}",
	    "argument 'ratio' must be at least 0", "ratio", "a real below minimum"));
	json_decref(
	    check("{\"customer_id\":1,\"ratio\":1}", NULL, NULL, "an integer for a number"));
	json_decref(check("{\"customer_id\":1,\"ratio\":\"1\"}",
	    "argument 'ratio' must be a number", "ratio", "a string for a number"));
	json_decref(check("{\"customer_id\":1,\"status\":\"closed\"}",
	    "argument 'status' must be one of: open, paid, void", "status", "not in enum"));
	json_decref(check("{\"customer_id\":1,\"status\":\"paid\"}", NULL, NULL, "in enum"));
	json_decref(check("{\"customer_id\":1,\"query\":\"\"}",
	    "argument 'query' must be at least 1 character long", "query", "too short"));
	json_decref(check("{\"customer_id\":1,\"query\":\"abcdef\"}",
	    "argument 'query' must be at most 5 characters long", "query", "too long"));
	json_decref(
	    check("{\"customer_id\":1,\"query\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}",
		NULL, NULL, "length counts characters, not bytes"));
	json_decref(check("{\"customer_id\":1,\"code\":\"usd\"}",
	    "argument 'code' must match the pattern ^[A-Z]{3}$", "code", "pattern"));
	json_decref(check("{\"customer_id\":1,\"code\":\"USD\"}", NULL, NULL, "pattern matched"));
	json_decref(check("{\"customer_id\":1,\"word\":\"abc\"}", NULL, NULL,
	    "pattern searched unanchored"));
	json_decref(check("{\"customer_id\":1,\"flag\":\"true\"}",
	    "argument 'flag' must be a boolean", "flag", "a string for a boolean"));
	json_decref(check("{\"customer_id\":1,\"flag\":false}", NULL, NULL, "a boolean"));
	json_decref(check("{\"customer_id\":1,\"note\":null}", NULL, NULL, "null where allowed"));
	json_decref(check("{\"customer_id\":1,\"note\":5}",
	    "argument 'note' must be a string or null", "note", "a number for a nullable string"));
	json_decref(check("{\"customer_id\":1,\"note\":\"12345678901\"}",
	    "argument 'note' must be at most 10 characters long", "note",
	    "nullable string too long"));
	json_decref(check("{\"customer_id\":1,\"input\":[1]}", "argument 'input' must be an object",
	    "input", "an array for an object"));
	json_decref(
	    check("{\"customer_id\":1,\"input\":{\"rows\":[{\"a\":1}]}}", NULL, NULL, "an object"));
	json_decref(check("{\"customer_id\":1,\"list\":{}}", "argument 'list' must be an array",
	    "list", "an object for an array"));
	json_decref(
	    check("{\"customer_id\":1,\"tenant\":\"tenant_b\"}", "unexpected argument 'tenant'",
		"tenant", "a tenant argument the tool does not declare"));
	json_decref(check("{\"customer_id\":1,\"extra\":1}", "unexpected argument 'extra'", "extra",
	    "an extra argument"));
	out = check("{\"customer_id\":1,\"query\":\"';--\",\"note\":\"1 OR 1=1\",\"code\":\"ABC\","
		    "\"secret\":\"$1) ; DROP TABLE x; --\"}",
	    NULL, NULL, "SQL metacharacters are data");
	dump = out ? tool_arg_text(json_object_get(out, "secret")) : NULL;
	ok(dump != NULL && strcmp(dump, "$1) ; DROP TABLE x; --") == 0,
	    "metacharacters reach the database unchanged as one value");
	free(dump);
	json_decref(out);

	/* A string with a NUL byte cannot come from jansson's parser, but can be built. */
	a = json_object();
	json_object_set_new(a, "customer_id", json_integer(1));
	json_object_set_new(a, "query", json_stringn("a\0b", 3));
	out = tool_check_args(tool, a, &bad, msg, sizeof(msg));
	ok(out == NULL && strstr(msg, "must not contain NUL") != NULL && bad != NULL &&
		strcmp(bad, "query") == 0,
	    "a NUL in a string is refused (%s)", msg);
	json_decref(a);
	ok(tool_check_args(tool, NULL, NULL, msg, sizeof(msg)) == NULL, "bad_arg may be NULL");
}

/* Whether sc (JSON text) conforms to schema; prints why not. */
static int
sc_conforms(json_t *schema, const char *sc)
{
	json_t *v = json_loads(sc, 0, NULL);
	int r;

	why[0] = '\0';
	r = v != NULL && conforms(schema, v, "structuredContent");
	if (!r)
		printf("# not conforming: %s\n", v == NULL ? "bad JSON in the test" : why);
	json_decref(v);
	return r;
}

#define CALL_ID "\"call_id\":\"0b0c0d0e-1111-4222-8333-944445555666\""

static void
test_output_schemas(void)
{
	static char *names[] = { "id", "amount", "issued_at", "born", "seen", "price", "doc" };
	static unsigned types[] = { 20, 1700, 1184, 1082, 1114, 701, 3802 };
	struct tool t;
	json_t *schema;

	memset(&t, 0, sizeof(t));
	t.col_names = names;
	t.col_types = types;
	t.n_cols = sizeof(names) / sizeof(names[0]);

	t.kind = TOOL_READ;
	schema = tool_output_schema(&t);
	ok(schema != NULL && json_is_object(schema) &&
		strcmp(json_string_value(json_object_get(schema, "type")), "object") == 0,
	    "read: the output schema is an object schema");
	ok(sc_conforms(schema,
	       "{" CALL_ID ",\"rows\":[{\"id\":\"9223372036854775807\","
	       "\"amount\":\"NaN\",\"issued_at\":\"infinity\",\"born\":\"0044-03-15 BC\","
	       "\"seen\":\"2026-11-27T16:44:36.5\",\"price\":\"-Infinity\",\"doc\":{\"a\":[1]}},"
	       "{\"id\":null,\"amount\":\"12.50\",\"issued_at\":\"2026-11-27T16:44:36.123+00:00\","
	       "\"born\":\"2026-11-27\",\"seen\":\"-infinity\",\"price\":1.5,\"doc\":null}],"
	       "\"row_count\":2,\"truncated\":false,\"dry_run\":false,\"replayed\":false}"),
	    "read: rows at the edges of every type conform");
	ok(sc_conforms(schema,
	       "{" CALL_ID ",\"error\":{\"reason\":\"invalid_arguments\","
	       "\"message\":\"argument 'customer_id' must be an integer\","
	       "\"argument\":\"customer_id\"}}"),
	    "read: an invalid_arguments tool error conforms");
	ok(!sc_conforms(schema, "{" CALL_ID "}"), "read: neither rows nor error: refused");
	ok(!sc_conforms(schema, "{\"error\":{\"reason\":\"invalid_arguments\",\"message\":\"m\"}}"),
	    "read: an error without call_id: refused");
	ok(!sc_conforms(schema, "{" CALL_ID ",\"error\":{\"message\":\"m\"}}"),
	    "read: an error without a reason: refused");
	ok(!sc_conforms(schema, "{" CALL_ID ",\"rows\":[],\"truncated\":false,\"dry_run\":false}"),
	    "read: a result without row_count: refused");
	ok(!sc_conforms(schema,
	       "{" CALL_ID ",\"rows\":[{\"id\":1}],\"row_count\":1,"
	       "\"truncated\":false,\"dry_run\":false}"),
	    "read: an int8 as a number: refused");
	json_decref(schema);

	t.kind = TOOL_WRITE;
	schema = tool_output_schema(&t);
	ok(schema != NULL &&
		sc_conforms(schema,
		    "{" CALL_ID ",\"rows\":[{\"id\":\"7\"}],"
		    "\"row_count\":1,\"truncated\":false,\"dry_run\":true,\"changes\":[{\"table\":"
		    "\"billing.invoices\",\"key\":{\"id\":7},\"action\":\"update\",\"before\":{\"id\":7,"
		    "\"status\":\"open\"},\"after\":{\"id\":7,\"status\":\"void\"}}],\"plan_id\":"
		    "\"0b0c0d0e-1111-4222-8333-944445555666\",\"replayed\":false,\"note\":\"A preview\"}"),
	    "write: a dry-run preview conforms");
	ok(sc_conforms(schema,
	       "{" CALL_ID ",\"rows\":[{\"id\":\"7\"}],\"row_count\":1,"
	       "\"truncated\":false,\"dry_run\":false,\"changes\":[{\"table\":\"t\",\"key\":{\"id\":7},"
	       "\"action\":\"create\",\"before\":null,\"after\":{\"id\":7}}],\"plan_id\":null,"
	       "\"replayed\":true}"),
	    "write: a committed (replayed) write conforms");
	ok(sc_conforms(schema,
	       "{" CALL_ID ",\"error\":{\"reason\":\"row_cap_exceeded\","
	       "\"message\":\"m\",\"count\":2,\"max_rows\":1}}"),
	    "write: row_cap_exceeded conforms");
	ok(sc_conforms(schema,
	       "{" CALL_ID ",\"error\":{\"reason\":\"constraint_violated\","
	       "\"message\":\"m\",\"constraint\":\"invoices_currency_check\"}}"),
	    "write: constraint_violated conforms");
	ok(!sc_conforms(schema,
	       "{" CALL_ID ",\"rows\":[],\"row_count\":0,\"truncated\":false,"
	       "\"dry_run\":false,\"plan_id\":7}"),
	    "write: a plan_id that is not a string: refused");
	json_decref(schema);

	t.kind = TOOL_CODE;
	schema = tool_output_schema(&t);
	ok(schema != NULL &&
		sc_conforms(schema,
		    "{" CALL_ID ",\"dry_run\":false,\"exit_code\":0,"
		    "\"signal\":0,\"limit\":null,\"limits_hit\":[],\"stdout\":{\"sum\":3},"
		    "\"stdout_truncated\":false,\"stderr\":\"\",\"stderr_truncated\":false,\"wall_ms\":3,"
		    "\"cpu_ms\":1,\"peak_memory_bytes\":null}"),
	    "code: a run conforms");
	ok(sc_conforms(schema,
	       "{" CALL_ID ",\"dry_run\":true,\"plan\":{\"interpreter\":\"sh\","
	       "\"limits\":{\"time_s\":5},\"allow\":[],\"input_bytes\":0}}"),
	    "code: a dry-run plan conforms");
	ok(sc_conforms(schema,
	       "{" CALL_ID ",\"error\":{\"reason\":\"program_failed\",\"message\":"
	       "\"The program exited with status 3\",\"dry_run\":false,\"exit_code\":3,\"signal\":0,"
	       "\"limit\":null,\"limits_hit\":[],\"stdout\":\"partial\\n\",\"stdout_truncated\":false,"
	       "\"stderr\":\"\",\"stderr_truncated\":false,\"wall_ms\":3,\"cpu_ms\":1,"
	       "\"peak_memory_bytes\":1024}}"),
	    "code: program_failed conforms");
	ok(sc_conforms(schema,
	       "{" CALL_ID ",\"error\":{\"reason\":\"sandbox_limit\",\"message\":"
	       "\"m\",\"limit\":\"output\",\"exit_code\":null,\"signal\":9}}"),
	    "code: sandbox_limit conforms");
	ok(sc_conforms(schema,
	       "{" CALL_ID ",\"error\":{\"reason\":\"invalid_arguments\","
	       "\"message\":\"m\",\"argument\":\"code\"}}"),
	    "code: invalid_arguments conforms");
	ok(!sc_conforms(schema, "{" CALL_ID ",\"exit_code\":0}"),
	    "code: neither dry_run nor error: refused");
	json_decref(schema);
}

int
main(void)
{
	struct catalog *cat;

	fixture_open("test_tool_schema");
	test_schema_faults();
	tool = args_tool(&cat);
	test_args();
	tool_catalog_free(cat);
	test_output_schemas();
	fixture_close();
	return tap_done();
}
