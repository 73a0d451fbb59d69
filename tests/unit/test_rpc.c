/* test_rpc.c: gateway/rpc.c against every example of the JSON-RPC 2.0 specification, and its limits. */
#include <string.h>
#include <jansson.h>

#include "airlock/rpc.h"
#include "tap.h"

/* The specification's example methods: a test-only table, never airlockd's. */
static json_t *
m_subtract(void *ctx, const char *name, json_t *params, struct rpc_error *err)
{
	json_t *a, *b;

	(void)ctx;
	(void)name;
	if (json_is_array(params) && json_array_size(params) == 2) {
		a = json_array_get(params, 0);
		b = json_array_get(params, 1);
	} else if (json_is_object(params)) {
		a = json_object_get(params, "minuend");
		b = json_object_get(params, "subtrahend");
	} else
		a = b = NULL;
	if (!json_is_integer(a) || !json_is_integer(b)) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params", "Invalid params");
		return NULL;
	}
	return json_integer(json_integer_value(a) - json_integer_value(b));
}

static json_t *
m_sum(void *ctx, const char *name, json_t *params, struct rpc_error *err)
{
	json_int_t s = 0;
	json_t *v;
	size_t i;

	(void)ctx;
	(void)name;
	(void)err;
	json_array_foreach (params, i, v)
		s += json_integer_value(v);
	return json_integer(s);
}

static json_t *
m_get_data(void *ctx, const char *name, json_t *params, struct rpc_error *err)
{
	(void)ctx;
	(void)name;
	(void)params;
	(void)err;
	return json_pack("[s,i]", "hello", 5);
}

static int notified;

static json_t *
m_notify(void *ctx, const char *name, json_t *params, struct rpc_error *err)
{
	(void)ctx;
	(void)name;
	(void)params;
	(void)err;
	notified++;
	return json_null();
}

static json_t *
m_denied(void *ctx, const char *name, json_t *params, struct rpc_error *err)
{
	(void)ctx;
	(void)name;
	(void)params;
	rpc_error_set(err, RPC_UNAUTHORIZED, "token_missing", "no token");
	err->data = json_pack("{s:i}", "extra", 1);
	return NULL;
}

static const struct rpc_method table[] = {
	{ "subtract", m_subtract, 0 },
	{ "sum", m_sum, 0 },
	{ "get_data", m_get_data, 0 },
	{ "update", m_notify, 0 },
	{ "notify_hello", m_notify, 0 },
	{ "notify_sum", m_notify, 0 },
	{ "denied", m_denied, 0 },
	{ "slow", m_get_data, RPC_SLOW },
	{ NULL, NULL, 0 },
};

static const struct rpc_limits limits = { .max_depth = 16, .max_batch = 10 };

/* Runs body; returns the compact response text ("" for none) in buf. */
static int
run(const char *body, char *buf, size_t size)
{
	struct rpc_msg msg = { 0 };
	char *s;
	int status;

	rpc_parse(&msg, &limits, body, strlen(body));
	rpc_execute(&msg, table, NULL);
	status = msg.http_status;
	buf[0] = '\0';
	if (msg.response != NULL) {
		s = json_dumps(msg.response, JSON_COMPACT | JSON_SORT_KEYS);
		snprintf(buf, size, "%s", s);
		free(s);
	}
	rpc_msg_clear(&msg);
	return status;
}

/* Whether body's response equals expected, compared as JSON ("" means no response). */
static int
same(const char *body, const char *expected)
{
	char got[4096];
	json_t *a, *b;
	int eq;

	run(body, got, sizeof(got));
	if (expected[0] == '\0' || got[0] == '\0') {
		if (strcmp(got, expected) != 0)
			printf("# got: %s\n", got);
		return strcmp(got, expected) == 0;
	}
	a = json_loads(got, 0, NULL);
	b = json_loads(expected, 0, NULL);
	eq = a && b && json_equal(a, b);
	if (!eq)
		printf("# got: %s\n# expected: %s\n", got, expected);
	json_decref(a);
	json_decref(b);
	return eq;
}

/* The code and reason of a single error response, or of element i of a batch. */
static int
error_is(const char *body, int code, const char *reason)
{
	char got[4096];
	json_t *r, *e;
	const char *got_reason;
	int match;

	run(body, got, sizeof(got));
	r = json_loads(got, 0, NULL);
	e = json_is_array(r) ? json_array_get(r, 0) : r;
	e = json_object_get(e, "error");
	got_reason = json_string_value(json_object_get(json_object_get(e, "data"), "reason"));
	match = json_integer_value(json_object_get(e, "code")) == code && got_reason != NULL &&
	    strcmp(got_reason, reason) == 0;
	if (!match)
		printf("# got: %s\n", got);
	json_decref(r);
	return match;
}

int
main(void)
{
	char buf[4096];
	char *big;
	size_t i;

	/* Specification, "rpc call with positional parameters". */
	ok(same("{\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": [42, 23], \"id\": 1}",
	       "{\"jsonrpc\": \"2.0\", \"result\": 19, \"id\": 1}"),
	    "positional params");
	ok(same("{\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": [23, 42], \"id\": 2}",
	       "{\"jsonrpc\": \"2.0\", \"result\": -19, \"id\": 2}"),
	    "positional params, reversed");
	/* "rpc call with named parameters". */
	ok(same(
	       "{\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": {\"subtrahend\": 23, \"minuend\": 42}, \"id\": 3}",
	       "{\"jsonrpc\": \"2.0\", \"result\": 19, \"id\": 3}"),
	    "named params");
	ok(same(
	       "{\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": {\"minuend\": 42, \"subtrahend\": 23}, \"id\": 4}",
	       "{\"jsonrpc\": \"2.0\", \"result\": 19, \"id\": 4}"),
	    "named params, other order");
	/* "a Notification". */
	notified = 0;
	ok(same("{\"jsonrpc\": \"2.0\", \"method\": \"update\", \"params\": [1,2,3,4,5]}", ""),
	    "notification: no response");
	ok(notified == 1, "notification: the method ran");
	ok(same("{\"jsonrpc\": \"2.0\", \"method\": \"foobar\"}", ""),
	    "notification of an unknown method: no response");
	/* "rpc call of non-existent method". */
	ok(error_is("{\"jsonrpc\": \"2.0\", \"method\": \"foobar\", \"id\": \"1\"}", -32601,
	       "method_not_found"),
	    "non-existent method");
	run("{\"jsonrpc\": \"2.0\", \"method\": \"foobar\", \"id\": \"1\"}", buf, sizeof(buf));
	ok(strstr(buf, "\"id\":\"1\"") != NULL, "string id echoed on error");
	/* "rpc call with invalid JSON". */
	ok(error_is("{\"jsonrpc\": \"2.0\", \"method\": \"foobar, \"params\": \"bar\", \"baz]",
	       -32700, "parse_error"),
	    "invalid JSON");
	run("{\"jsonrpc\": \"2.0\", \"method\": \"foobar, \"params\": \"bar\", \"baz]", buf,
	    sizeof(buf));
	ok(strstr(buf, "\"id\":null") != NULL, "parse error has id null");
	/* "rpc call with invalid Request object". */
	ok(error_is("{\"jsonrpc\": \"2.0\", \"method\": 1, \"params\": \"bar\"}", -32600,
	       "invalid_request"),
	    "invalid Request object");
	/* "rpc call Batch, invalid JSON". */
	ok(error_is(
	       "[{\"jsonrpc\": \"2.0\", \"method\": \"sum\", \"params\": [1,2,4], \"id\": \"1\"},{\"jsonrpc\": \"2.0\", \"method\"]",
	       -32700, "parse_error"),
	    "batch, invalid JSON");
	/* "rpc call with an empty Array". */
	run("[]", buf, sizeof(buf));
	ok(buf[0] == '{' && error_is("[]", -32600, "invalid_request"),
	    "empty batch: one error, not an array");
	/* "rpc call with an invalid Batch (but not empty)". */
	run("[1]", buf, sizeof(buf));
	ok(buf[0] == '[' && error_is("[1]", -32600, "invalid_request"), "batch [1]");
	/* "rpc call with invalid Batch". */
	run("[1,2,3]", buf, sizeof(buf));
	{
		json_t *r = json_loads(buf, 0, NULL);

		ok(json_array_size(r) == 3, "batch [1,2,3]: three errors");
		json_decref(r);
	}
	/* "rpc call Batch". */
	ok(same(
	       "[{\"jsonrpc\": \"2.0\", \"method\": \"sum\", \"params\": [1,2,4], \"id\": \"1\"},"
	       "{\"jsonrpc\": \"2.0\", \"method\": \"notify_hello\", \"params\": [7]},"
	       "{\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": [42,23], \"id\": \"2\"},"
	       "{\"foo\": \"boo\"},"
	       "{\"jsonrpc\": \"2.0\", \"method\": \"foo.get\", \"params\": {\"name\": \"myself\"}, \"id\": \"5\"},"
	       "{\"jsonrpc\": \"2.0\", \"method\": \"get_data\", \"id\": \"9\"}]",
	       "[{\"jsonrpc\": \"2.0\", \"result\": 7, \"id\": \"1\"},"
	       "{\"jsonrpc\": \"2.0\", \"result\": 19, \"id\": \"2\"},"
	       "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request: jsonrpc must be \\\"2.0\\\"\", \"data\": {\"reason\": \"invalid_request\"}}, \"id\": null},"
	       "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32601, \"message\": \"Method not found: foo.get\", \"data\": {\"reason\": \"method_not_found\"}}, \"id\": \"5\"},"
	       "{\"jsonrpc\": \"2.0\", \"result\": [\"hello\", 5], \"id\": \"9\"}]"),
	    "batch: the specification's mixed example");
	/* "rpc call Batch (all notifications)". */
	ok(same("[{\"jsonrpc\": \"2.0\", \"method\": \"notify_sum\", \"params\": [1,2,4]},"
		"{\"jsonrpc\": \"2.0\", \"method\": \"notify_hello\", \"params\": [7]}]",
	       ""),
	    "batch of notifications: no response");

	/* ids. */
	ok(same("{\"jsonrpc\":\"2.0\",\"method\":\"get_data\",\"id\":null}",
	       "{\"jsonrpc\":\"2.0\",\"result\":[\"hello\",5],\"id\":null}"),
	    "null id echoed");
	ok(same("{\"jsonrpc\":\"2.0\",\"method\":\"get_data\",\"id\":1.5}",
	       "{\"jsonrpc\":\"2.0\",\"result\":[\"hello\",5],\"id\":1.5}"),
	    "fractional id echoed");
	ok(error_is("{\"jsonrpc\":\"2.0\",\"method\":\"get_data\",\"id\":[1]}", -32600,
	       "invalid_request"),
	    "array id refused");
	ok(error_is("{\"jsonrpc\":\"2.0\",\"method\":\"get_data\",\"id\":{}}", -32600,
	       "invalid_request"),
	    "object id refused");
	ok(error_is("{\"jsonrpc\":\"1.0\",\"method\":\"get_data\",\"id\":1}", -32600,
	       "invalid_request"),
	    "wrong jsonrpc version");
	ok(error_is("{\"jsonrpc\":2.0,\"method\":\"get_data\",\"id\":1}", -32600,
	       "invalid_request"),
	    "jsonrpc as a number");
	ok(error_is("{\"method\":\"get_data\",\"id\":1}", -32600, "invalid_request"),
	    "jsonrpc missing");
	ok(error_is("{\"jsonrpc\":\"2.0\",\"id\":1}", -32600, "invalid_request"), "method missing");
	ok(error_is("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":3,\"id\":1}", -32600,
	       "invalid_request"),
	    "scalar params");
	ok(error_is("{\"jsonrpc\":\"2.0\",\"method\":\"subtract\",\"params\":[1],\"id\":1}", -32602,
	       "invalid_params"),
	    "method reports invalid params");

	/* Top-level scalars are JSON but not requests. */
	ok(error_is("42", -32600, "invalid_request"), "top-level number");
	ok(error_is("\"x\"", -32600, "invalid_request"), "top-level string");
	ok(error_is("null", -32600, "invalid_request"), "top-level null");
	/* Valid JSON that jansson refuses is -32600; text that is not JSON is -32700. */
	ok(error_is("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"method\":\"sum\",\"id\":1}", -32600,
	       "invalid_request"),
	    "duplicate key");
	ok(error_is("{\"jsonrpc\":\"2.0\",\"method\":\"a\\u0000b\",\"id\":1}", -32600,
	       "invalid_request"),
	    "NUL escape");
	ok(error_is("{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[1e999],\"id\":1}", -32600,
	       "invalid_request"),
	    "real out of range");
	ok(error_is(
	       "{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[99999999999999999999],\"id\":1}",
	       -32600, "invalid_request"),
	    "integer out of range");
	ok(error_is("{\"jsonrpc\":\"2.0\",\"method\":\"s\xff\",\"id\":1}", -32700, "parse_error"),
	    "invalid UTF-8");
	ok(error_is("\x01\x02\x03garbage", -32700, "parse_error"), "binary garbage");
	ok(error_is("", -32700, "parse_error"), "empty body");
	ok(error_is("{\"jsonrpc\":\"2.0\"} {}", -32700, "parse_error"), "trailing text");

	/* Limits. */
	big = malloc(64);
	strcpy(big, "[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]"); /* 17 levels */
	ok(error_is(big, -32600, "invalid_request"), "nesting over the limit");
	strcpy(big, "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]"); /* 16 levels: a batch of one non-object */
	run(big, buf, sizeof(buf));
	ok(buf[0] == '[', "nesting at the limit is parsed");
	ok(error_is(
	       "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":[\"[[[[[[[[[[[[[[[[[[[[[[[[[\"],\"id\":1}",
	       -32601, "method_not_found"),
	    "brackets inside strings do not count");
	free(big);
	big = malloc(11 * 50 + 3);
	strcpy(big, "[");
	for (i = 0; i < 11; i++)
		strcat(big,
		    i ? ",{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"id\":1}"
		      : "{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"id\":1}");
	strcat(big, "]");
	ok(error_is(big, -32600, "invalid_request"), "batch over the limit");
	run(big, buf, sizeof(buf));
	ok(buf[0] == '{', "batch over the limit: one error");
	free(big);

	/* HTTP status of a single request's error; batches stay 200. */
	ok(run("{\"jsonrpc\":\"2.0\",\"method\":\"denied\",\"id\":1}", buf, sizeof(buf)) == 401,
	    "401 error sets HTTP 401");
	ok(strstr(buf, "\"extra\":1") && strstr(buf, "\"reason\":\"token_missing\""),
	    "error data merged with reason");
	ok(run("[{\"jsonrpc\":\"2.0\",\"method\":\"denied\",\"id\":1}]", buf, sizeof(buf)) == 200,
	    "batch with a 401 element is HTTP 200");

	/* Worker routing. */
	{
		struct rpc_msg msg = { 0 };
		const char *b1 =
		    "[{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"id\":1},{\"jsonrpc\":\"2.0\",\"method\":\"slow\",\"id\":2}]";
		const char *b2 = "{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"id\":1}";

		rpc_parse(&msg, &limits, b1, strlen(b1));
		ok(rpc_needs_worker(&msg, table), "a batch with a slow method needs a worker");
		rpc_msg_clear(&msg);
		rpc_parse(&msg, &limits, b2, strlen(b2));
		ok(!rpc_needs_worker(&msg, table), "a fast method runs inline");
		rpc_msg_clear(&msg);
	}
	return tap_done();
}
