/* test_tool.c: gateway/tool*.c and pgjson.c without a database: manifests, arguments, values. */
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "airlock/pgjson.h"
#include "airlock/tool.h"
#include "tap.h"

static char tmpdir[PATH_MAX];

/* Empties tmpdir. */
static void
clear_dir(void)
{
	struct dirent *de;
	char path[PATH_MAX + 300];
	DIR *d = opendir(tmpdir);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	closedir(d);
}

static void
write_file(const char *fname, const char *text)
{
	char path[PATH_MAX + 300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, fname);
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

/* Loads a directory holding just fname with text; returns the catalog or NULL (err set). */
static struct catalog *
load_one(const char *fname, const char *text, char *err, size_t errlen)
{
	clear_dir();
	write_file(fname, text);
	err[0] = '\0';
	return tool_load(tmpdir, NULL, err, errlen);
}

/* A manifest from pieces: kind, arguments schema, statement (or the code object). */
static char *
manifest(const char *name, const char *kind, const char *args, const char *statement)
{
	char *s = NULL;

	if (strcmp(kind, "code") == 0)
		asprintf(&s,
		    "{\"name\":\"%s\",\"description\":\"d\",\"kind\":\"code\","
		    "\"arguments\":%s,\"code\":%s}",
		    name, args, statement);
	else {
		json_t *st = json_string(statement);
		char *q = json_dumps(st, JSON_ENCODE_ANY);

		asprintf(&s,
		    "{\"name\":\"%s\",\"description\":\"d\",\"kind\":\"%s\","
		    "\"arguments\":%s,\"statement\":%s}",
		    name, kind, args, q);
		free(q);
		json_decref(st);
	}
	return s;
}

#define NOARGS "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}"

/* Expects the manifest text in t.json to be refused with a message containing want. */
static void
refused(const char *text, const char *want, const char *what)
{
	char err[2048];
	struct catalog *cat = load_one("t.json", text, err, sizeof(err));

	ok(cat == NULL && strstr(err, want) != NULL && strstr(err, "/t.json: ") != NULL,
	    "refused: %s (%s)", what, err);
	tool_catalog_free(cat);
}

/* Expects a manifest for kind with these arguments and statement to be refused. */
static void
refused_parts(const char *kind, const char *args, const char *statement, const char *want,
    const char *what)
{
	char *m = manifest("t", kind, args, statement);

	refused(m, want, what);
	free(m);
}

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

static void
test_load_faults(void)
{
	char *m;

	refused("{\"name\":\"t\",\"description\":\"d\",\"kind\":\"read\",\"idempotent\":true,"
		"\"arguments\":" NOARGS ",\"statement\":\"SELECT 1\"}",
	    "idempotent applies to write "
	    "tools only",
	    "idempotent on a read");
	refused("{\"name\":\"t\",\"description\":\"d\",\"kind\":\"write\",\"call_options\":1,"
		"\"arguments\":" NOARGS ",\"statement\":\"UPDATE t SET a = 1 RETURNING a\"}",
	    "call_options must be true or false", "call_options not a boolean");
	refused_parts("read",
	    "{\"type\":\"object\",\"properties\":{\"airlock_plan_id\":"
	    "{\"type\":\"string\"}},\"additionalProperties\":false}",
	    "SELECT $airlock_plan_id",
	    "names starting with 'airlock_' are the gateway's call options",
	    "a property named like a call option");

	refused("{\"name\": \"t\",\n \"kind\": }", "line 2", "JSON that does not parse, with line");
	refused("[1]", "must be a JSON object", "not an object");
	refused("{\"name\":\"t\",\"name\":\"t\"}", "duplicate", "a duplicate key");
	m = manifest("t", "read", NOARGS, "SELECT 1");
	m[strlen(m) - 1] = '\0';
	{
		char buf[4096];

		snprintf(buf, sizeof(buf), "%s,\"owner\":\"x\"}", m);
		refused(buf, "unknown key 'owner'", "an unknown top-level key");
	}
	free(m);
	m = manifest("T", "read", NOARGS, "SELECT 1");
	refused(m, "name must match", "a bad name");
	free(m);
	m = manifest("other", "read", NOARGS, "SELECT 1");
	refused(m, "name 'other' differs", "name differs from the file's basename");
	free(m);
	refused_parts("delete", NOARGS, "SELECT 1", "kind must be", "a bad kind");
	refused("{\"name\":\"t\",\"kind\":\"read\",\"arguments\":" NOARGS
		",\"statement\":\"SELECT 1\"}",
	    "description must be", "no description");
	refused(
	    "{\"name\":\"t\",\"description\":\"d\",\"kind\":\"read\",\"statement\":\"SELECT 1\"}",
	    "arguments (a JSON Schema) is required", "no arguments");
	refused("{\"name\":\"t\",\"description\":\"d\",\"kind\":\"read\",\"arguments\":" NOARGS "}",
	    "statement must be", "a read without a statement");
	refused("{\"name\":\"t\",\"description\":\"d\",\"kind\":\"read\",\"arguments\":" NOARGS
		",\"statement\":\"SELECT 1\",\"max_rows\":0}",
	    "max_rows must be an integer from 1", "max_rows 0");
	refused("{\"name\":\"t\",\"description\":\"d\",\"kind\":\"read\",\"arguments\":" NOARGS
		",\"statement\":\"SELECT 1\",\"timeout_ms\":60001}",
	    "timeout_ms must be an integer from 1 to 60000", "timeout_ms over 60000");
	refused("{\"name\":\"t\",\"description\":\"d\",\"kind\":\"read\",\"arguments\":" NOARGS
		",\"statement\":\"SELECT 1\",\"timeout_ms\":\"5\"}",
	    "timeout_ms must be", "timeout_ms of the wrong type");
	refused("{\"name\":\"t\",\"description\":\"d\",\"kind\":\"read\",\"arguments\":" NOARGS
		",\"statement\":\"SELECT 1\",\"destructive\":true}",
	    "destructive applies to write", "destructive on a read");
	refused("{\"name\":\"t\",\"description\":\"d\",\"kind\":\"write\",\"arguments\":" NOARGS
		",\"statement\":\"UPDATE x SET a = 1 RETURNING a\",\"destructive\":\"no\"}",
	    "destructive must be true or false", "destructive of the wrong type");
	refused("{\"name\":\"t\",\"description\":\"d\",\"kind\":\"read\",\"arguments\":" NOARGS
		",\"statement\":\"SELECT 1\",\"title\":3}",
	    "title must be a string", "title of the wrong type");
	refused("{\"name\":\"t\",\"description\":\"d\",\"kind\":\"read\",\"arguments\":" NOARGS
		",\"statement\":\"SELECT 1\",\"code\":{\"interpreter\":\"sh\"}}",
	    "code applies to code tools only", "code on a read");

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

	/* The statement. */
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
	refused_parts("read", NOARGS, "", "statement must be a non-empty string",
	    "an empty statement");
	refused_parts("read", NOARGS, "SELECT 1 /* open /* */", "unterminated /* comment",
	    "an unterminated block comment");

	/* Code tools. */
	refused_parts("code", NOARGS, "{\"interpreter\":\"perl\"}", "interpreter must be",
	    "an unknown interpreter");
	refused_parts("code", NOARGS, "{\"interpreter\":\"sh\",\"network\":true}",
	    "unknown key 'network'", "an unknown code key");
	refused_parts("code", NOARGS, "{\"interpreter\":\"sh\",\"limits\":{\"disk_mb\":1}}",
	    "unknown limit 'disk_mb'", "an unknown limit");
	refused_parts("code", NOARGS, "{\"interpreter\":\"sh\",\"limits\":{\"time_s\":0}}",
	    "limit 'time_s' must be an integer from 1", "a limit of zero");
	refused_parts("code", NOARGS, "{\"interpreter\":\"sh\",\"limits\":{\"mem_mb\":-5}}",
	    "limit 'mem_mb' must be an integer from 1", "a negative limit");
	refused_parts("code", NOARGS, "{\"interpreter\":\"sh\",\"limits\":{\"pids\":\"4\"}}",
	    "limit 'pids' must be an integer", "a limit of the wrong type");
	refused_parts("code", NOARGS, "{\"interpreter\":\"sh\",\"allow\":[\"example.com\"]}",
	    "must be \"host:port\"", "an allow entry without port");
	refused_parts("code", NOARGS, "{\"interpreter\":\"sh\",\"allow\":[\"example.com:0\"]}",
	    "needs a port from 1 to 65535", "port 0");
	refused_parts("code", NOARGS, "{\"interpreter\":\"sh\",\"allow\":[\"example.com:65536\"]}",
	    "needs a port from 1 to 65535", "port 65536");
	refused_parts("code", NOARGS, "{\"interpreter\":\"sh\",\"allow\":[\"example.com:+80\"]}",
	    "needs a port from 1 to 65535", "a signed port");
	refused_parts("code", NOARGS, "{\"interpreter\":\"sh\",\"allow\":[\"a b:80\"]}",
	    "has a bad host", "a bad host");
	refused_parts("code", NOARGS, "{\"interpreter\":\"sh\",\"allow\":\"x:1\"}",
	    "allow must be an array", "allow of the wrong type");
	refused("{\"name\":\"t\",\"description\":\"d\",\"kind\":\"code\",\"arguments\":" NOARGS "}",
	    "a code tool needs code", "a code tool without code");
	refused("{\"name\":\"t\",\"description\":\"d\",\"kind\":\"code\",\"arguments\":" NOARGS
		",\"code\":{\"interpreter\":\"sh\"},\"statement\":\"SELECT 1\"}",
	    "a code tool takes no statement", "a code tool with a statement");
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

/* The catalog most argument tests use. */
static const char *const args_manifest =
    "{\"name\":\"t\",\"description\":\"d\",\"kind\":\"read\",\"arguments\":{"
    "\"type\":\"object\",\"properties\":{"
    "\"customer_id\":{\"type\":\"integer\",\"minimum\":1},"
    "\"status\":{\"type\":\"string\",\"enum\":[\"open\",\"paid\",\"void\"]},"
    "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100,\"default\":20},"
    "\"query\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":5},"
    "\"code\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{3}$\"},"
    "\"ratio\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1.5},"
    "\"flag\":{\"type\":\"boolean\"},"
    "\"note\":{\"type\":[\"string\",\"null\"],\"maxLength\":10},"
    "\"input\":{\"type\":\"object\"},"
    "\"list\":{\"type\":\"array\",\"default\":[1,2]},"
    "\"secret\":{\"type\":\"string\",\"sensitive\":true,\"description\":\"s\"},"
    "\"word\":{\"type\":\"string\",\"pattern\":\"b\"}"
    "},\"required\":[\"customer_id\"],\"additionalProperties\":false},"
    "\"statement\":\"SELECT $customer_id, $status, $limit\"}";

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

static void
test_catalog(void)
{
	char err[1024];
	struct catalog *cat, *cat2;
	const struct tool *t;
	json_t *p;
	char *values[3] = { (char *)1, (char *)1, (char *)1 };
	json_t *args;

	cat = load_one("t.json", args_manifest, err, sizeof(err));
	ok(cat != NULL && cat->n == 1, "the argument test manifest loads (%s)", err);
	if (cat == NULL)
		exit(1);
	tool = &cat->tools[0];
	test_args();

	t = tool_find(cat, "t");
	ok(t == &cat->tools[0] && tool_find(cat, "nope") == NULL && tool_find(NULL, "t") == NULL,
	    "tool_find");
	ok(t->kind == TOOL_READ && t->max_rows == 100 && t->timeout_ms == 5000 &&
		!t->is_destructive,
	    "defaults: max_rows 100, timeout 5000, not destructive");
	p = json_object_get(json_object_get(t->input_schema, "properties"), "secret");
	ok(p != NULL && json_object_get(p, "sensitive") == NULL &&
		json_object_get(p, "description") != NULL,
	    "input_schema drops the sensitive mark only");
	p = json_object_get(json_object_get(t->schema, "properties"), "secret");
	ok(json_is_true(json_object_get(p, "sensitive")), "schema keeps the sensitive mark");
	ok(json_is_true(json_object_get(t->annotations, "readOnlyHint")) &&
		json_is_false(json_object_get(t->annotations, "destructiveHint")) &&
		json_is_true(json_object_get(t->annotations, "idempotentHint")) &&
		json_is_false(json_object_get(t->annotations, "openWorldHint")) &&
		strcmp(json_string_value(json_object_get(t->annotations, "title")), "T") == 0 &&
		strcmp(t->title, "T") == 0,
	    "read annotations, a title made from the name");
	ok(json_equal(t->listed_schema, t->input_schema), "a read lists its schema as is");
	ok(json_object_get(json_object_get(json_object_get(t->output_schema, "properties"), "rows"),
	       "items") != NULL &&
		json_array_size(json_object_get(t->output_schema, "required")) == 1 &&
		json_array_size(json_object_get(t->output_schema, "anyOf")) == 2,
	    "output schema shape without a database: call_id, then rows or an error");

	/* Binding. */
	args = json_pack("{s:i, s:n}", "customer_id", 42, "status");
	ok(tool_bind(t, args, values) == 0 && strcmp(values[0], "42") == 0 && values[1] == NULL &&
		values[2] == NULL,
	    "tool_bind: values by parameter, null and absent as NULL");
	tool_unbind(t, values);
	ok(values[0] == NULL, "tool_unbind clears");
	json_decref(args);

	cat2 = load_one("t.json", args_manifest, err, sizeof(err));
	ok(cat2 != NULL && cat2->version != cat->version, "every load has its own version");
	tool_catalog_free(cat2);
	tool_catalog_free(cat);
	tool_catalog_free(NULL);

	/* Writes and code tools. */
	cat = load_one("w.json",
	    "{\"name\":\"w\",\"description\":\"d\",\"kind\":\"write\","
	    "\"title\":\"W\",\"arguments\":" NOARGS
	    ",\"statement\":\"UPDATE t SET a = 1 RETURNING a\","
	    "\"max_rows\":5}",
	    err, sizeof(err));
	ok(cat != NULL && cat->tools[0].is_destructive && cat->tools[0].max_rows == 5 &&
		json_is_true(json_object_get(cat->tools[0].annotations, "destructiveHint")) &&
		json_is_false(json_object_get(cat->tools[0].annotations, "readOnlyHint")) &&
		json_is_false(json_object_get(cat->tools[0].annotations, "idempotentHint")) &&
		strcmp(json_string_value(json_object_get(cat->tools[0].annotations, "title")),
		    "W") == 0,
	    "write: destructive by default, annotations with title (%s)", err);
	tool_catalog_free(cat);
	cat = load_one("w.json",
	    "{\"name\":\"w\",\"description\":\"d\",\"kind\":\"write\","
	    "\"destructive\":false,\"arguments\":" NOARGS
	    ",\"statement\":\"INSERT INTO t VALUES (1) "
	    "RETURNING a\"}",
	    err, sizeof(err));
	ok(cat != NULL && !cat->tools[0].is_destructive &&
		json_is_false(json_object_get(cat->tools[0].annotations, "destructiveHint")),
	    "write: destructive false (%s)", err);
	tool_catalog_free(cat);
	cat = load_one("c.json",
	    "{\"name\":\"c\",\"description\":\"d\",\"kind\":\"code\","
	    "\"arguments\":{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\"},"
	    "\"input\":{\"type\":[\"object\",\"null\"]}},\"required\":[\"code\"],"
	    "\"additionalProperties\":false},\"code\":{\"interpreter\":\"python3\",\"limits\":"
	    "{\"time_s\":5,\"cpu_s\":2,\"mem_mb\":128,\"pids\":32,\"stdout_max\":65536,"
	    "\"stderr_max\":16384},\"allow\":[\"api.example.com:443\",\"[::1]:8080\"]}}",
	    err, sizeof(err));
	ok(cat != NULL && cat->tools[0].kind == TOOL_CODE && cat->tools[0].sql == NULL &&
		json_integer_value(json_object_get(json_object_get(cat->tools[0].code, "limits"),
		    "mem_mb")) == 128 &&
		json_array_size(json_object_get(cat->tools[0].code, "allow")) == 2 &&
		cat->tools[0].output_schema != NULL,
	    "code tool loads (%s)", err);
	tool_catalog_free(cat);
	cat = load_one("c.json",
	    "{\"name\":\"c\",\"description\":\"d\",\"kind\":\"code\","
	    "\"arguments\":" NOARGS ",\"code\":{\"interpreter\":\"sh\"}}",
	    err, sizeof(err));
	ok(cat != NULL && json_is_array(json_object_get(cat->tools[0].code, "allow")) &&
		json_is_object(json_object_get(cat->tools[0].code, "limits")),
	    "code: limits and allow default to empty (%s)", err);
	ok(cat != NULL &&
		json_is_false(json_object_get(cat->tools[0].annotations, "openWorldHint")) &&
		json_is_false(json_object_get(cat->tools[0].annotations, "idempotentHint")),
	    "code without egress: a closed world, not idempotent");
	tool_catalog_free(cat);
	cat = load_one("c.json",
	    "{\"name\":\"c\",\"description\":\"d\",\"kind\":\"code\","
	    "\"arguments\":" NOARGS ",\"code\":{\"interpreter\":\"sh\",\"allow\":"
	    "[\"api.example.com:443\"]}}",
	    err, sizeof(err));
	ok(cat != NULL && json_is_true(json_object_get(cat->tools[0].annotations, "openWorldHint")),
	    "code with egress: an open world (%s)", err);
	tool_catalog_free(cat);

	/* Titles made from names; idempotent writes; call options as arguments. */
	cat = load_one("look_up_things.json",
	    "{\"name\":\"look_up_things\",\"description\":"
	    "\"d\",\"kind\":\"write\",\"idempotent\":true,\"arguments\":{\"type\":\"object\","
	    "\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"],"
	    "\"additionalProperties\":false},\"statement\":\"UPDATE t SET a = $a RETURNING a\"}",
	    err, sizeof(err));
	t = cat != NULL ? &cat->tools[0] : NULL;
	ok(t != NULL && strcmp(t->title, "Look up things") == 0 &&
		json_is_true(json_object_get(t->annotations, "idempotentHint")) &&
		t->has_call_options,
	    "write: humanised title, idempotent when it says so, call options by default (%s)",
	    err);
	p = t != NULL ? json_object_get(t->listed_schema, "properties") : NULL;
	ok(json_is_object(json_object_get(p, TOOL_OPTION_DRY_RUN)) &&
		json_is_object(json_object_get(p, TOOL_OPTION_KEY)) &&
		json_is_object(json_object_get(p, TOOL_OPTION_PLAN)) &&
		json_object_get(json_object_get(t->input_schema, "properties"), TOOL_OPTION_KEY) ==
		    NULL &&
		json_equal(json_object_get(t->listed_schema, "required"),
		    json_object_get(t->input_schema, "required")),
	    "write: listed schema adds the options, none required; input_schema keeps none");
	tool_catalog_free(cat);
	cat = load_one("w.json",
	    "{\"name\":\"w\",\"description\":\"d\",\"kind\":\"write\","
	    "\"call_options\":false,\"arguments\":" NOARGS ",\"statement\":\"UPDATE t SET a = 1 "
	    "RETURNING a\"}",
	    err, sizeof(err));
	ok(cat != NULL && !cat->tools[0].has_call_options &&
		json_equal(cat->tools[0].listed_schema, cat->tools[0].input_schema),
	    "write: call_options false lists the schema as is (%s)", err);
	tool_catalog_free(cat);

	/* Several files load sorted by name; other files are ignored. */
	clear_dir();
	write_file("b_tool.json",
	    "{\"name\":\"b_tool\",\"description\":\"d\",\"kind\":\"read\","
	    "\"arguments\":" NOARGS ",\"statement\":\"SELECT 1\"}");
	write_file("a.json",
	    "{\"name\":\"a\",\"description\":\"d\",\"kind\":\"read\","
	    "\"arguments\":" NOARGS ",\"statement\":\"SELECT 1\"}");
	write_file("README.md", "not a manifest");
	cat = tool_load(tmpdir, NULL, err, sizeof(err));
	ok(cat != NULL && cat->n == 2 && strcmp(cat->tools[0].name, "a") == 0 &&
		strcmp(cat->tools[1].name, "b_tool") == 0,
	    "sorted by name, other files ignored");
	tool_catalog_free(cat);
	clear_dir();
	cat = tool_load(tmpdir, NULL, err, sizeof(err));
	ok(cat != NULL && cat->n == 0, "an empty catalog loads");
	tool_catalog_free(cat);
	ok(tool_load("/nonexistent/tools", NULL, err, sizeof(err)) == NULL &&
		strstr(err, "/nonexistent/tools") != NULL,
	    "a missing directory is named (%s)", err);
}

/*
 * A strict checker for the JSON Schema subset the output schemas use, as a client's
 * validator with formats would apply it (Ajv with ajv-formats, as the MCP SDK does):
 * true and false, type, enum, pattern, format (date-time and date as RFC 3339 says,
 * uuid), anyOf, required, properties, items, description.  An unknown keyword or format fails, as in
 * a strict validator.  Returns 1 when v conforms, else 0 with why in msg.
 */
static char why[512];

static int fail_why(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
fail_why(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return 0;
}

static int
is_type(json_t *v, const char *type)
{
	if (strcmp(type, "string") == 0)
		return json_is_string(v);
	if (strcmp(type, "integer") == 0)
		return json_is_integer(v);
	if (strcmp(type, "number") == 0)
		return json_is_number(v);
	if (strcmp(type, "boolean") == 0)
		return json_is_boolean(v);
	if (strcmp(type, "null") == 0)
		return json_is_null(v);
	if (strcmp(type, "object") == 0)
		return json_is_object(v);
	if (strcmp(type, "array") == 0)
		return json_is_array(v);
	return -1;
}

static int
digits(const char *s, int n, int *out)
{
	int i;

	*out = 0;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return 0;
		*out = *out * 10 + (s[i] - '0');
	}
	return 1;
}

/* RFC 3339 full-date at s; returns the characters used, or 0. */
static int
full_date(const char *s)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, m, d, leap;

	if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &m) || s[7] != '-' ||
	    !digits(s + 8, 2, &d) || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (m == 2 && d == 29 && !leap)
		return 0;
	return 10;
}

/* RFC 3339 date-time: full-date "T" time-hour ":" minute ":" second [frac] offset. */
static int
is_date_time(const char *s)
{
	int h, mi, sec, oh, om, n = full_date(s);

	if (n == 0 || (s[n] != 'T' && s[n] != 't'))
		return 0;
	s += n + 1;
	if (!digits(s, 2, &h) || s[2] != ':' || !digits(s + 3, 2, &mi) || s[5] != ':' ||
	    !digits(s + 6, 2, &sec) || h > 23 || mi > 59 || sec > 60)
		return 0;
	s += 8;
	if (*s == '.') {
		if (!isdigit((unsigned char)s[1]))
			return 0;
		for (s++; isdigit((unsigned char)*s); s++)
			;
	}
	if ((*s == 'Z' || *s == 'z') && s[1] == '\0')
		return 1;
	return (*s == '+' || *s == '-') && digits(s + 1, 2, &oh) && s[3] == ':' &&
	    digits(s + 4, 2, &om) && oh <= 23 && om <= 59 && s[6] == '\0';
}

static int
is_uuid(const char *s)
{
	int i;

	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i]))
			return 0;
	}
	return s[36] == '\0';
}

static int
conforms(json_t *schema, json_t *v, const char *path)
{
	const char *k, *str;
	json_t *kw, *x, *sub;
	size_t i;
	char sub_path[256];
	int any;
	regex_t re;

	if (json_is_boolean(schema))
		return json_is_true(schema) ? 1 : fail_why("%s: the schema is false", path);
	if (!json_is_object(schema))
		return fail_why("%s: the schema is not an object", path);
	json_object_foreach (schema, k, kw) {
		if (strcmp(k, "description") == 0 || strcmp(k, "title") == 0)
			continue;
		if (strcmp(k, "type") == 0) {
			any = 0;
			if (json_is_string(kw))
				any = is_type(v, json_string_value(kw));
			else
				json_array_foreach (kw, i, x)
					if (is_type(v, json_string_value(x)) == 1)
						any = 1;
			if (any != 1)
				return fail_why("%s: not of the type %s", path,
				    json_is_string(kw) ? json_string_value(kw) : "listed");
		} else if (strcmp(k, "enum") == 0) {
			any = 0;
			json_array_foreach (kw, i, x)
				if (json_equal(x, v))
					any = 1;
			if (!any)
				return fail_why("%s: not in the enum", path);
		} else if (strcmp(k, "pattern") == 0) {
			if (!json_is_string(v))
				continue;
			if (regcomp(&re, json_string_value(kw), REG_EXTENDED | REG_NOSUB) != 0)
				return fail_why("%s: bad pattern %s", path, json_string_value(kw));
			any = regexec(&re, json_string_value(v), 0, NULL, 0) == 0;
			regfree(&re);
			if (!any)
				return fail_why("%s: does not match %s", path,
				    json_string_value(kw));
		} else if (strcmp(k, "format") == 0) {
			if (!json_is_string(v))
				continue;
			str = json_string_value(v);
			if (strcmp(json_string_value(kw), "date-time") == 0)
				any = is_date_time(str);
			else if (strcmp(json_string_value(kw), "date") == 0)
				any = full_date(str) == 10 && str[10] == '\0';
			else if (strcmp(json_string_value(kw), "uuid") == 0)
				any = is_uuid(str);
			else
				return fail_why("%s: unknown format %s", path,
				    json_string_value(kw));
			if (!any)
				return fail_why("%s: not a %s", path, json_string_value(kw));
		} else if (strcmp(k, "anyOf") == 0) {
			any = 0;
			json_array_foreach (kw, i, sub)
				if (conforms(sub, v, path))
					any = 1;
			if (!any)
				return fail_why("%s: matches no branch of anyOf", path);
		} else if (strcmp(k, "required") == 0) {
			if (!json_is_object(v))
				continue;
			json_array_foreach (kw, i, x)
				if (json_object_get(v, json_string_value(x)) == NULL)
					return fail_why("%s: missing %s", path,
					    json_string_value(x));
		} else if (strcmp(k, "properties") == 0) {
			if (!json_is_object(v))
				continue;
			json_object_foreach (kw, str, sub) {
				if ((x = json_object_get(v, str)) == NULL)
					continue;
				snprintf(sub_path, sizeof(sub_path), "%s.%s", path, str);
				if (!conforms(sub, x, sub_path))
					return 0;
			}
		} else if (strcmp(k, "items") == 0) {
			if (!json_is_array(v))
				continue;
			json_array_foreach (v, i, x) {
				snprintf(sub_path, sizeof(sub_path), "%s[%zu]", path, i);
				if (!conforms(kw, x, sub_path))
					return 0;
			}
		} else
			return fail_why("%s: unknown keyword %s", path, k);
	}
	return 1;
}

/* What PostgreSQL (DateStyle ISO, TimeZone UTC, PostgreSQL 14 and later) can return for each
 * type the gateway maps, edges first. */
static const struct {
	unsigned oid;
	const char *text;
} pg_values[] = {
	{ 20, "9223372036854775807" },
	{ 20, "-9223372036854775808" },
	{ 20, "0" },
	{ 1700, "12.50" },
	{ 1700, "-0.000001" },
	{ 1700, "NaN" },
	{ 1700, "Infinity" },
	{ 1700, "-Infinity" },
	{ 1700, "123456789012345678901234567890.000000000001" },
	{ 1700, "0" },
	{ 701, "1.5" },
	{ 701, "-0" },
	{ 701, "NaN" },
	{ 701, "Infinity" },
	{ 701, "-Infinity" },
	{ 701, "1e+308" },
	{ 701, "2.2250738585072014e-308" },
	{ 700, "3.4028235e+38" },
	{ 700, "-Infinity" },
	{ 700, "1e-45" },
	{ 21, "-32768" },
	{ 23, "2147483647" },
	{ 26, "4294967295" },
	{ 16, "t" },
	{ 16, "f" },
	{ 114, "{\"a\": 1}" },
	{ 114, "123456789012345678901234567890" },
	{ 3802, "null" },
	{ 1184, "2026-11-27 16:44:36.123456+00" },
	{ 1184, "2026-11-27 16:44:36+00" },
	{ 1184, "2026-11-27 16:44:36.5+05:30" },
	{ 1184, "infinity" },
	{ 1184, "-infinity" },
	{ 1184, "0044-03-15 12:00:00+00 BC" },
	{ 1184, "4713-01-01 00:00:00+00 BC" },
	{ 1184, "10000-01-01 00:00:00+00" },
	{ 1184, "294276-12-31 23:59:59.999999+00" },
	{ 1184, "0001-01-01 00:00:00+00" },
	{ 1184, "0400-02-29 00:00:00.5+00" },
	{ 1184, "1850-06-01 12:00:00+00:53:28" },
	{ 1114, "2026-11-27 16:44:36.123456" },
	{ 1114, "2026-11-27 16:44:36" },
	{ 1114, "infinity" },
	{ 1114, "-infinity" },
	{ 1114, "0044-03-15 12:00:00 BC" },
	{ 1114, "10000-01-01 00:00:00" },
	{ 1114, "294276-12-31 23:59:59.999999" },
	{ 1082, "2026-11-27" },
	{ 1082, "infinity" },
	{ 1082, "-infinity" },
	{ 1082, "0044-03-15 BC" },
	{ 1082, "4713-01-01 BC" },
	{ 1082, "10000-01-01" },
	{ 1082, "5874897-12-31" },
	{ 1082, "0001-01-01" },
	{ 2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" },
	{ 25, "hello" },
	{ 25, "" },
	{ 1186, "P1DT2H" },
	{ 1083, "24:00:00" },
	{ 1007, "{1,2}" },
};

/* Values a column's schema must refuse: each schema says more than "a string". */
static const struct {
	unsigned oid;
	const char *json;
} not_values[] = {
	{ 20, "\"12.5\"" },
	{ 20, "\"1e3\"" },
	{ 20, "\"abc\"" },
	{ 20, "12" },
	{ 1700, "\"1e5\"" },
	{ 1700, "\"abc\"" },
	{ 1700, "\"inf\"" },
	{ 1700, "12.5" },
	{ 701, "\"1.5\"" },
	{ 701, "\"abc\"" },
	{ 1184, "\"yesterday\"" },
	{ 1184, "\"2026-02-30T00:00:00+00:00\"" },
	{ 1184, "\"2026-11-27T16:44:36\"" },
	{ 1184, "12" },
	{ 1114, "\"yesterday\"" },
	{ 1114, "\"2026-11-27T16:44:36+00:00\"" },
	{ 1082, "\"2026-02-30\"" },
	{ 1082, "\"27/11/2026\"" },
	{ 2950, "\"not-a-uuid\"" },
	{ 23, "\"1\"" },
	{ 16, "\"t\"" },
};

static void
test_value_formats(void)
{
	json_t *schema, *v;
	char *d;
	size_t i;

	for (i = 0; i < sizeof(pg_values) / sizeof(pg_values[0]); i++) {
		schema = pgjson_type_schema(pg_values[i].oid);
		v = pgjson_value(pg_values[i].oid, pg_values[i].text, 0);
		d = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		why[0] = '\0';
		ok(schema != NULL && v != NULL && conforms(schema, v, "value"),
		    "type %u: '%s' as %s conforms to its schema %s", pg_values[i].oid,
		    pg_values[i].text, d ? d : "NULL", why);
		free(d);
		json_decref(v);
		v = pgjson_value(pg_values[i].oid, NULL, 1);
		ok(conforms(schema, v, "value"), "type %u: null conforms %s", pg_values[i].oid,
		    why);
		json_decref(v);
		json_decref(schema);
	}
	for (i = 0; i < sizeof(not_values) / sizeof(not_values[0]); i++) {
		schema = pgjson_type_schema(not_values[i].oid);
		v = json_loads(not_values[i].json, JSON_DECODE_ANY, NULL);
		ok(schema != NULL && v != NULL && !conforms(schema, v, "value"),
		    "type %u: the schema refuses %s", not_values[i].oid, not_values[i].json);
		json_decref(v);
		json_decref(schema);
	}
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

static void
value_is(unsigned oid, const char *text, const char *want, const char *what)
{
	json_t *v = pgjson_value(oid, text, text == NULL);
	char *d = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	ok(d != NULL && strcmp(d, want) == 0, "value: %s → %s (%s)", what, want, d ? d : "NULL");
	free(d);
	json_decref(v);
}

static void
schema_is(unsigned oid, const char *want, const char *what)
{
	json_t *v = pgjson_type_schema(oid);
	char *d = v ? json_dumps(v, JSON_COMPACT) : NULL;

	ok(d != NULL && strcmp(d, want) == 0, "schema: %s %s (%s)", what, want, d ? d : "NULL");
	free(d);
	json_decref(v);
}

static void
test_values(void)
{
	value_is(21, "-32768", "-32768", "int2");
	value_is(23, "2147483647", "2147483647", "int4");
	value_is(26, "4294967295", "4294967295", "oid");
	value_is(20, "9223372036854775807", "\"9223372036854775807\"", "int8 as a string");
	value_is(20, "42", "\"42\"", "a small int8 still a string");
	value_is(1700, "12.50", "\"12.50\"", "numeric as a string, scale kept");
	value_is(1700, "NaN", "\"NaN\"", "numeric NaN");
	value_is(701, "1.5", "1.5", "float8");
	value_is(700, "-0.25", "-0.25", "float4");
	value_is(701, "123.5", "123.5", "float8 with a fraction");
	value_is(701, "NaN", "\"NaN\"", "float8 NaN as a string");
	value_is(701, "Infinity", "\"Infinity\"", "float8 Infinity as a string");
	value_is(700, "-Infinity", "\"-Infinity\"", "float4 -Infinity as a string");
	value_is(16, "t", "true", "bool true");
	value_is(16, "f", "false", "bool false");
	value_is(3802, "{\"a\": [1, 2]}", "{\"a\":[1,2]}", "jsonb parsed");
	value_is(114, "[1, \"x\"]", "[1,\"x\"]", "json parsed");
	value_is(114, "3", "3", "json scalar");
	value_is(114, "{\"a\": 1, \"a\": 2}", "{\"a\":2}", "json with a duplicate key");
	value_is(114, "123456789012345678901234567890", "\"123456789012345678901234567890\"",
	    "json jansson refuses: the text as a string");
	value_is(1184, "2026-11-27 16:44:36.123+00", "\"2026-11-27T16:44:36.123+00:00\"",
	    "timestamptz");
	value_is(1184, "2026-11-27 16:44:36+00", "\"2026-11-27T16:44:36+00:00\"",
	    "timestamptz without fraction");
	value_is(1184, "2026-11-27 16:44:36.5+05:30", "\"2026-11-27T16:44:36.5+05:30\"",
	    "timestamptz with minutes in the offset");
	value_is(1184, "infinity", "\"infinity\"", "timestamptz infinity");
	value_is(1184, "0044-03-15 12:00:00+00 BC", "\"0044-03-15 12:00:00+00 BC\"",
	    "timestamptz BC left as written");
	value_is(1114, "2026-11-27 16:44:36.123456", "\"2026-11-27T16:44:36.123456\"", "timestamp");
	value_is(1082, "2026-11-27", "\"2026-11-27\"", "date");
	value_is(25, "hello", "\"hello\"", "text");
	value_is(1043, "x", "\"x\"", "varchar");
	value_is(2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	    "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"", "uuid");
	value_is(19, "tenant_a", "\"tenant_a\"", "name");
	value_is(23, NULL, "null", "NULL int4");
	value_is(1700, NULL, "null", "NULL numeric");
	value_is(3802, NULL, "null", "NULL jsonb");

	schema_is(21, "{\"type\":[\"integer\",\"null\"]}", "int2");
	schema_is(23, "{\"type\":[\"integer\",\"null\"]}", "int4");
	schema_is(26, "{\"type\":[\"integer\",\"null\"]}", "oid");
	schema_is(20,
	    "{\"type\":[\"string\",\"null\"],\"pattern\":\"^-?[0-9]+$\","
	    "\"description\":\"int8 as a decimal string.\"}",
	    "int8: a pattern, no format");
	schema_is(1700,
	    "{\"type\":[\"string\",\"null\"],\"pattern\":"
	    "\"^(-?[0-9]+(\\\\.[0-9]+)?|NaN|-?Infinity)$\",\"description\":\"numeric as a "
	    "decimal string, exactly as stored.\"}",
	    "numeric: a pattern");
	schema_is(700,
	    "{\"type\":[\"number\",\"string\",\"null\"],\"pattern\":"
	    "\"^(NaN|-?Infinity)$\"}",
	    "float4: NaN and the infinities as strings");
	schema_is(16, "{\"type\":[\"boolean\",\"null\"]}", "bool");
	schema_is(114, "{}", "json");
	schema_is(3802, "{}", "jsonb");
	schema_is(2950, "{\"type\":[\"string\",\"null\"],\"format\":\"uuid\"}", "uuid");
	schema_is(25, "{\"type\":[\"string\",\"null\"]}", "text");
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

/* tool_needs_approval: always, by an argument's value (failing closed), never. */
static void
test_approval(void)
{
	static const char m[] =
	    "{\"name\": \"w\", \"description\": \"w\", \"kind\": \"write\","
	    " \"approval\": %s, \"arguments\": {\"type\": \"object\", \"properties\":"
	    " {\"amount\": {\"type\": [\"string\", \"number\", \"null\"]}},"
	    " \"required\": [], \"additionalProperties\": false},"
	    " \"statement\": \"UPDATE t SET a = $amount RETURNING a\"}";
	static const struct {
		const char *policy, *args;
		int needs;
	} cases[] = {
		{ "\"required\"", "{}", 1 },
		{ "{\"four_eyes\": true}", "{}", 1 },
		{ "{\"above_rows\": 3}", "{\"amount\": \"1000\"}", 0 },
		{ "{\"argument\": \"amount\", \"above\": 100}", "{\"amount\": \"100.00\"}", 0 },
		{ "{\"argument\": \"amount\", \"above\": 100}", "{\"amount\": \"100.01\"}", 1 },
		{ "{\"argument\": \"amount\", \"above\": 100}", "{\"amount\": 250}", 1 },
		{ "{\"argument\": \"amount\", \"above\": 100}", "{\"amount\": \"1e3\"}", 1 },
		{ "{\"argument\": \"amount\", \"above\": 100}", "{\"amount\": \"lots\"}", 1 },
		{ "{\"argument\": \"amount\", \"above\": 100}", "{\"amount\": \"nan\"}", 1 },
		{ "{\"argument\": \"amount\", \"above\": 100}", "{\"amount\": \"50 \"}", 1 },
		{ "{\"argument\": \"amount\", \"above\": 100}", "{\"amount\": null}", 0 },
		{ "{\"argument\": \"amount\", \"above\": 100}", "{}", 0 },
	};
	struct catalog *cat;
	char text[1024], err[512];
	json_t *args;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), m, cases[i].policy);
		cat = load_one("w.json", text, err, sizeof(err));
		args = json_loads(cases[i].args, 0, NULL);
		ok(cat != NULL && tool_needs_approval(&cat->tools[0], args) == cases[i].needs,
		    "approval %s with %s: %s", cases[i].policy, cases[i].args,
		    cases[i].needs ? "needed" : "not needed");
		if (cat == NULL)
			printf("# %s\n", err);
		json_decref(args);
		tool_catalog_free(cat);
	}
	snprintf(text, sizeof(text), m, "{\"above_rows\": 0}");
	cat = load_one("w.json", text, err, sizeof(err));
	ok(cat != NULL && cat->tools[0].approval_rows == 1 && !cat->tools[0].is_approval_always,
	    "above_rows 0: every write that changes a row");
	tool_catalog_free(cat);
}

int
main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_tool.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_load_faults();
	test_rewrite();
	test_catalog();
	test_values();
	test_value_formats();
	test_output_schemas();
	test_arg_text();
	test_approval();
	clear_dir();
	rmdir(tmpdir);
	return tap_done();
}
