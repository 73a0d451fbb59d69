/* rpc.c: JSON-RPC 2.0 exactly: single requests, batches, notifications, id echo, errors. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/rpc.h"

const char rpc_internal_error_text[] =
    "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32603,"
    "\"message\":\"Internal error\",\"data\":{\"reason\":\"internal\"}},\"id\":null}";

/* Set when a jansson allocation fails on this thread (rpc.h says why). */
static _Thread_local int is_json_short;

static void *
json_alloc(size_t size)
{
	void *p = malloc(size);

	if (p == NULL)
		is_json_short = 1;
	return p;
}

void
rpc_alloc_init(void)
{
	json_set_alloc_funcs(json_alloc, free);
}

void
rpc_alloc_reset(void)
{
	is_json_short = 0;
}

int
rpc_alloc_failed(void)
{
	return is_json_short;
}

static void
error_vset(struct rpc_error *err, int code, const char *reason, const char *fmt, va_list ap)
{
	err->code = code;
	err->reason = reason;
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
}

void
rpc_error_set(struct rpc_error *err, int code, const char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(err, code, reason, fmt, ap);
	va_end(ap);
}

void
rpc_error_clear(struct rpc_error *err)
{
	json_decref(err->data);
	err->data = NULL;
}

int
rpc_http_status(int code)
{
	switch (code) {
	case RPC_UNAUTHORIZED:
	case RPC_TOO_MANY:
	case RPC_UNAVAILABLE:
		return code;
	default:
		return 200;
	}
}

json_t *
rpc_error_response(json_t *id, const struct rpc_error *err)
{
	json_t *data;

	data = json_object();
	if (err->data != NULL)
		json_object_update(data, err->data);
	json_object_set_new(data, "reason", json_string(err->reason ? err->reason : "internal"));
	return json_pack("{s:s, s:{s:i, s:s, s:o}, s:O}", "jsonrpc", "2.0", "error", "code",
	    err->code, "message", err->message, "data", data, "id", id ? id : json_null());
}

static json_t *
error_response(json_t *id, int code, const char *reason, const char *message)
{
	struct rpc_error err = { 0 };

	rpc_error_set(&err, code, reason, "%s", message);
	return rpc_error_response(id, &err);
}

/* The answer to a fault of the gateway's own (rpc_error_internal): a new reference. */
static json_t *
internal_response(json_t *id)
{
	struct rpc_error err = { 0 };

	rpc_error_internal(&err);
	return rpc_error_response(id, &err);
}

/*
 * Whether arrays and objects nest deeper than max.  Scanning the text first keeps
 * jansson's own recursion (and its 2048 levels) out of an attacker's reach.
 */
static int
is_too_deep(const char *s, size_t len, size_t max)
{
	size_t depth = 0, i;
	int in_string = 0;

	for (i = 0; i < len; i++) {
		char c = s[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = 0;
		} else if (c == '"') {
			in_string = 1;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				return 1;
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return 0;
}

void
rpc_parse(struct rpc_msg *msg, const struct rpc_limits *lim, const char *body, size_t len)
{
	json_error_t jerr;
	char text[200];

	msg->http_status = 200;
	rpc_alloc_reset();
	if (is_too_deep(body, len, lim->max_depth)) {
		snprintf(text, sizeof(text), "Invalid Request: nesting deeper than %zu levels",
		    lim->max_depth);
		msg->response = error_response(NULL, RPC_INVALID_REQUEST, "invalid_request", text);
		goto out;
	}
	msg->root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (rpc_alloc_failed()) {
		/* Whatever jansson made of the body, it is not the body. */
		json_decref(msg->root);
		msg->root = NULL;
		msg->response = internal_response(NULL);
		goto out;
	}
	if (msg->root == NULL) {
		switch (json_error_code(&jerr)) {
		case json_error_duplicate_key:
		case json_error_null_character:
		case json_error_null_byte_in_key:
		case json_error_numeric_overflow:
			/* Valid JSON that the gateway will not take. */
			snprintf(text, sizeof(text), "Invalid Request: %s", jerr.text);
			msg->response =
			    error_response(NULL, RPC_INVALID_REQUEST, "invalid_request", text);
			break;
		default:
			snprintf(text, sizeof(text), "Parse error: %s at byte %d", jerr.text,
			    jerr.position);
			msg->response = error_response(NULL, RPC_PARSE_ERROR, "parse_error", text);
			break;
		}
		goto out;
	}
	msg->is_batch = json_is_array(msg->root);
	if (msg->is_batch && json_array_size(msg->root) == 0) {
		msg->response = error_response(NULL, RPC_INVALID_REQUEST, "invalid_request",
		    "Invalid Request: empty batch");
		goto refuse;
	}
	if (msg->is_batch && json_array_size(msg->root) > lim->max_batch) {
		snprintf(text, sizeof(text),
		    "Invalid Request: batch of %zu calls, over the limit of %zu",
		    json_array_size(msg->root), lim->max_batch);
		msg->response = error_response(NULL, RPC_INVALID_REQUEST, "invalid_request", text);
		goto refuse;
	}
	return;
refuse:
	msg->is_batch = 0;
	json_decref(msg->root);
	msg->root = NULL;
out:
	if (msg->response == NULL || rpc_alloc_failed()) {
		json_decref(msg->response);
		msg->response = NULL;
		msg->is_failed = 1;
	}
}

static const struct rpc_method *
find_method(const struct rpc_method *table, const char *name)
{
	for (; table->name != NULL; table++)
		if (strcmp(table->name, name) == 0)
			return table;
	return NULL;
}

/*
 * Checks one request object.  Returns the method name, or NULL after setting
 * *why.  *id is the id to echo (borrowed; NULL for none or unusable).
 */
static const char *
check_request(json_t *req, json_t **id, int *is_notification, const char **why)
{
	json_t *v, *params;

	*id = NULL;
	*is_notification = 0;
	if (!json_is_object(req)) {
		*why = "Invalid Request: not an object";
		return NULL;
	}
	v = json_object_get(req, "id");
	if (v == NULL)
		*is_notification = 1;
	else if (json_is_string(v) || json_is_number(v) || json_is_null(v))
		*id = v;
	else {
		*why = "Invalid Request: id must be a string, a number or null";
		return NULL;
	}
	v = json_object_get(req, "jsonrpc");
	if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0) {
		*why = "Invalid Request: jsonrpc must be \"2.0\"";
		return NULL;
	}
	v = json_object_get(req, "method");
	if (!json_is_string(v)) {
		*why = "Invalid Request: method must be a string";
		return NULL;
	}
	params = json_object_get(req, "params");
	if (params != NULL && !json_is_object(params) && !json_is_array(params)) {
		*why = "Invalid Request: params must be an object or an array";
		return NULL;
	}
	return json_string_value(v);
}

static json_t *run_one(struct rpc_msg *, json_t *, const struct rpc_method *, void *, int *);

/*
 * Runs one element; returns its response (new reference) or NULL for none.  A response
 * built while a jansson allocation failed (a member may be missing from it) is replaced by
 * -32603; when even that cannot be built, NULL with msg->is_failed set.
 */
static json_t *
execute_one(struct rpc_msg *msg, json_t *req, const struct rpc_method *table, void *ctx,
    int *status)
{
	json_t *id, *resp;
	int is_notification;
	const char *why;

	rpc_alloc_reset();
	resp = run_one(msg, req, table, ctx, status);
	if (check_request(req, &id, &is_notification, &why) != NULL && is_notification)
		return resp; /* NULL: a notification is never answered */
	if (resp != NULL && !rpc_alloc_failed())
		return resp;
	json_decref(resp);
	rpc_alloc_reset();
	resp = internal_response(id);
	*status = 200;
	if (resp == NULL || rpc_alloc_failed()) {
		json_decref(resp);
		resp = NULL;
		msg->is_failed = 1;
	}
	return resp;
}

/* Runs one element; returns its response (new reference) or NULL for none. */
static json_t *
run_one(struct rpc_msg *msg, json_t *req, const struct rpc_method *table, void *ctx, int *status)
{
	const struct rpc_method *m;
	struct rpc_error err = { 0 };
	const char *name, *why = NULL;
	json_t *id, *params, *result, *resp;
	int is_notification;
	char text[160];

	*status = 200;
	msg->n_calls++;
	name = check_request(req, &id, &is_notification, &why);
	if (name == NULL)
		return error_response(id, RPC_INVALID_REQUEST, "invalid_request", why);
	if (msg->method[0] == '\0')
		snprintf(msg->method, sizeof(msg->method), "%s", name);
	m = find_method(table, name);
	if (m == NULL) {
		if (is_notification)
			return NULL;
		snprintf(text, sizeof(text), "Method not found: %.100s", name);
		return error_response(id, RPC_METHOD_NOT_FOUND, "method_not_found", text);
	}
	params = json_object_get(req, "params");
	result = m->fn(ctx, name, params, &err);
	if (is_notification) {
		json_decref(result);
		rpc_error_clear(&err);
		return NULL;
	}
	if (result != NULL)
		return json_pack("{s:s, s:o, s:O}", "jsonrpc", "2.0", "result", result, "id",
		    id ? id : json_null());
	if (err.reason == NULL)
		rpc_error_internal(&err);
	resp = rpc_error_response(id, &err);
	*status = rpc_http_status(err.code);
	rpc_error_clear(&err);
	return resp;
}

static const char *
method_of(json_t *req)
{
	json_t *v = json_is_object(req) ? json_object_get(req, "method") : NULL;

	return json_is_string(v) ? json_string_value(v) : NULL;
}

int
rpc_needs_worker(const struct rpc_msg *msg, const struct rpc_method *table)
{
	const struct rpc_method *m;
	const char *name;
	json_t *req;
	size_t i;

	if (msg->root == NULL)
		return 0;
	if (!msg->is_batch) {
		name = method_of(msg->root);
		m = name ? find_method(table, name) : NULL;
		return m != NULL && (m->flags & RPC_SLOW);
	}
	json_array_foreach (msg->root, i, req) {
		name = method_of(req);
		m = name ? find_method(table, name) : NULL;
		if (m != NULL && (m->flags & RPC_SLOW))
			return 1;
	}
	return 0;
}

void
rpc_execute(struct rpc_msg *msg, const struct rpc_method *table, void *ctx)
{
	json_t *req, *resp;
	size_t i;
	int status;

	if (msg->root == NULL)
		return;
	if (!msg->is_batch) {
		msg->response = execute_one(msg, msg->root, table, ctx, &status);
		msg->http_status = status;
		return;
	}
	/* A batch always travels with 200; no response at all when every call was a notification. */
	msg->response = json_array();
	json_array_foreach (msg->root, i, req) {
		resp = execute_one(msg, req, table, ctx, &status);
		if (resp != NULL && json_array_append_new(msg->response, resp) == -1)
			msg->is_failed = 1;
	}
	msg->http_status = 200;
	if (msg->is_failed) {
		/* An answer is missing: the batch is answered with the fixed error. */
		json_decref(msg->response);
		msg->response = NULL;
		return;
	}
	if (json_array_size(msg->response) == 0) {
		json_decref(msg->response);
		msg->response = NULL;
	}
}

/* The error response for one element, or NULL for a notification. */
static json_t *
fail_one(json_t *req, const struct rpc_error *err)
{
	json_t *id;
	int is_notification;
	const char *why;

	if (check_request(req, &id, &is_notification, &why) == NULL)
		return rpc_error_response(id, err);
	return is_notification ? NULL : rpc_error_response(id, err);
}

void
rpc_fail_all(struct rpc_msg *msg, const struct rpc_error *err)
{
	json_t *req, *resp;
	size_t i;

	if (msg->root == NULL)
		return;
	if (!msg->is_batch) {
		msg->response = fail_one(msg->root, err);
		msg->http_status = msg->response ? rpc_http_status(err->code) : 200;
		goto out;
	}
	msg->response = json_array();
	json_array_foreach (msg->root, i, req)
		if ((resp = fail_one(req, err)) != NULL &&
		    json_array_append_new(msg->response, resp) == -1)
			msg->is_failed = 1;
	msg->http_status = 200;
	if (json_array_size(msg->response) == 0) {
		json_decref(msg->response);
		msg->response = NULL;
	}
out:
	/* Since rpc_parse, on this thread (the caller's err.data too): an error missing a
	 * member is not sent. */
	if (rpc_alloc_failed() || msg->is_failed) {
		json_decref(msg->response);
		msg->response = NULL;
		msg->is_failed = 1;
	}
}

void
rpc_msg_clear(struct rpc_msg *msg)
{
	json_decref(msg->root);
	json_decref(msg->response);
	memset(msg, 0, sizeof(*msg));
}

void
rpc_error_retry(struct rpc_error *err, int code, const char *reason, int retry_after,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(err, code, reason, fmt, ap);
	va_end(ap);
	err->data = json_pack("{s:i}", "retryAfterSeconds", retry_after);
}

void
rpc_error_internal(struct rpc_error *err)
{
	/* A fault of ours says nothing of itself to the caller; the log has the detail. */
	rpc_error_set(err, RPC_INTERNAL_ERROR, "internal", "Internal error");
}
