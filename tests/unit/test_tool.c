/* test_tool.c: gateway/tool.c without a database: loading the catalog, its faults, approval. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "airlock/tool.h"
#include "tap.h"
#include "tool_fixture.h"

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
	refused_parts("read", NOARGS, "", "statement must be a non-empty string",
	    "an empty statement");

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

static void
test_catalog(void)
{
	char err[1024];
	struct catalog *cat, *cat2;
	const struct tool *t;
	json_t *p;

	cat = load_one("t.json", args_manifest, err, sizeof(err));
	ok(cat != NULL && cat->n == 1, "the argument test manifest loads (%s)", err);
	if (cat == NULL)
		exit(1);

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
	fixture_open("test_tool");
	test_load_faults();
	test_catalog();
	test_approval();
	fixture_close();
	return tap_done();
}
