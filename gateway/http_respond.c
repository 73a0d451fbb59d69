/*
 * http_respond.c: the HTTP front's answers: plain text for HTTP-level faults, JSON-RPC
 * answers with what every one carries (trace id, MCP's resultType and server info) and the
 * headers their status asks for, and the fixed answer when memory ran out.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"

/* Queues a response; steals body (malloc'd, may be NULL for an empty body). */
enum MHD_Result
http_respond(struct request *req, int status, const char *ctype, char *body, size_t len,
    const char *hname, const char *hvalue)
{
	struct MHD_Response *resp;
	enum MHD_Result rc;

	resp = MHD_create_response_from_buffer(len, body ? body : (char *)(uintptr_t) "",
	    body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	if (ctype != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (hname != NULL)
		MHD_add_response_header(resp, hname, hvalue);
	req->status = status;
	rc = MHD_queue_response(req->conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return rc;
}

/*
 * The answer when the real one could not be built (out of memory): on /rpc and /mcp the
 * fixed JSON-RPC internal error, elsewhere 503.  Nothing here allocates.  Returns the
 * HTTP status in *status.
 */
enum MHD_Result
http_queue_failed(struct MHD_Connection *conn, enum route route, int *status)
{
	struct MHD_Response *resp;
	enum MHD_Result rc;
	int is_rpc = route == R_RPC || route == R_MCP;
	const char *body = is_rpc ? rpc_internal_error_text : "unavailable\n";

	resp = MHD_create_response_from_buffer(strlen(body), (char *)(uintptr_t)body,
	    MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    is_rpc ? "application/json" : "text/plain; charset=utf-8");
	if (!is_rpc)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	*status = is_rpc ? 200 : 503;
	rc = MHD_queue_response(conn, (unsigned)*status, resp);
	MHD_destroy_response(resp);
	return rc;
}

enum MHD_Result
http_respond_failed(struct request *req)
{
	return http_queue_failed(req->conn, req->route, &req->status);
}

/* An HTTP-level fault: a plain-text answer. */
enum MHD_Result
http_respond_plain(struct request *req, int status, const char *text, const char *hname,
    const char *hvalue)
{
	char *body;

	if (asprintf(&body, "%s\n", text) == -1)
		return http_respond(req, status, NULL, NULL, 0, hname, hvalue);
	return http_respond(req, status, "text/plain; charset=utf-8", body, strlen(body), hname,
	    hvalue);
}

/* Queues a JSON answer; steals obj. */
enum MHD_Result
http_respond_json(struct request *req, int status, json_t *obj, const char *hname,
    const char *hvalue)
{
	char *body;

	/* jansson 2.14 can leave a key out of the text when an allocation fails and still
	 * return it: the flag says so. */
	rpc_alloc_reset();
	body = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (body == NULL || rpc_alloc_failed()) {
		free(body);
		return http_respond_failed(req);
	}
	return http_respond(req, status, "application/json", body, strlen(body), hname, hvalue);
}

/* Sets key to value (stolen) in the _meta of a response's result, if it has one. */
static void
set_result_meta(json_t *resp, const char *key, json_t *value)
{
	json_t *result = json_object_get(resp, "result"), *meta;

	if (!json_is_object(result)) {
		json_decref(value);
		return;
	}
	if (!json_is_object(meta = json_object_get(result, "_meta"))) {
		json_object_set_new(result, "_meta", json_object());
		meta = json_object_get(result, "_meta");
	}
	json_object_set_new(meta, key, value);
}

/* What every answer of the request carries beside its method's result: the trace id it
 * came with; and for the stateless revision of MCP, resultType and the server's name. */
static void
decorate(struct request *req, json_t *resp)
{
	json_t *result;

	if (req->ctx.trace_id[0] != '\0')
		set_result_meta(resp, "airlock/traceId", json_string(req->ctx.trace_id));
	if (req->is_modern && json_is_object(result = json_object_get(resp, "result"))) {
		if (json_object_get(result, "resultType") == NULL)
			json_object_set_new(result, "resultType", json_string("complete"));
		set_result_meta(resp, "io.modelcontextprotocol/serverInfo", gw_server_info());
	}
}

/* RFC 6750: no error code when no credentials came; invalid_token for the others
 * (unknown, malformed, expired or revoked). */
static const char *
www_authenticate(json_t *resp)
{
	const char *reason = json_string_value(
	    json_object_get(json_object_get(json_object_get(resp, "error"), "data"), "reason"));

	return reason != NULL && strcmp(reason, "token_missing") == 0
	    ? "Bearer realm=\"airlock\""
	    : "Bearer realm=\"airlock\", error=\"invalid_token\"";
}

/* Sends what rpc_execute (or rpc_parse, or rpc_fail_all) left in req->msg. */
enum MHD_Result
http_respond_rpc(struct request *req)
{
	struct rpc_msg *msg = &req->msg;
	json_t *resp = msg->response;
	json_t *retry;
	char seconds[24];
	size_t i;

	if (resp == NULL && msg->is_failed)
		return http_respond_failed(req);
	if (resp == NULL)
		return http_respond(req, MHD_HTTP_ACCEPTED, NULL, NULL, 0, NULL, NULL);
	msg->response = NULL;
	if (json_is_array(resp)) {
		for (i = 0; i < json_array_size(resp); i++)
			decorate(req, json_array_get(resp, i));
	} else
		decorate(req, resp);
	switch (msg->http_status) {
	case 401:
		return http_respond_json(req, 401, resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		    www_authenticate(resp));
	case 429:
	case 503:
		retry = json_object_get(json_object_get(json_object_get(resp, "error"), "data"),
		    "retryAfterSeconds");
		snprintf(seconds, sizeof(seconds), "%lld",
		    json_is_integer(retry) ? (long long)json_integer_value(retry) : 1LL);
		return http_respond_json(req, msg->http_status, resp, MHD_HTTP_HEADER_RETRY_AFTER,
		    seconds);
	default:
		return http_respond_json(req, msg->http_status, resp, NULL, NULL);
	}
}
