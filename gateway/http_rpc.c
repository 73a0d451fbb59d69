/*
 * http_rpc.c: a POST to /rpc or /mcp: its headers checked before the body is read, the body
 * read under its cap, the client address's rate, the trace id, then the JSON-RPC message run
 * here (cheap methods) or handed to a pool (http_worker.c).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "airlock/console.h"
#include "http_int.h"

const char *
http_header(struct request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static int
is_json_type(const char *ctype)
{
	size_t n = strlen("application/json");

	return ctype != NULL && strncasecmp(ctype, "application/json", n) == 0 &&
	    (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

/* A configured origin, or one of a loopback listener's own (a page it serves itself, or
 * a local client naming it): a DNS-rebound page's origin is neither. */
static int
is_allowed_origin(const struct http_server *srv, const char *origin)
{
	const struct config *cfg = srv->gw->cfg;
	unsigned i;

	for (i = 0; i < cfg->n_origins; i++)
		if (strcmp(cfg->origins[i], origin) == 0)
			return 1;
	for (i = 0; i < 2; i++)
		if (srv->self_origins[i][0] != '\0' && strcmp(srv->self_origins[i], origin) == 0)
			return 1;
	return 0;
}

/*
 * Checks a POST's headers before any of its body is read.  Returns MHD_YES to go
 * on reading, or the result of queueing a refusal (req->status is then set).
 */
enum MHD_Result
http_check_post(struct request *req)
{
	const struct config *cfg = req->srv->gw->cfg;
	const char *cl = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = http_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	const char *v, *errstr;
	long long n;

	if (cl != NULL && te != NULL)
		return http_respond_plain(req, 400, "Content-Length and Transfer-Encoding together",
		    "Connection", "close");
	if (cl != NULL) {
		n = strtonum(cl, 0, LLONG_MAX, &errstr);
		if (errstr != NULL)
			return http_respond_plain(req, 400, "bad Content-Length", "Connection",
			    "close");
		if ((unsigned long long)n > cfg->max_body)
			return http_respond_plain(req, 413, "request body too large", "Connection",
			    "close");
	}
	if (!is_json_type(http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE)))
		return http_respond_plain(req, 415, "Content-Type must be application/json", NULL,
		    NULL);
	/* A page of another origin has no business on /rpc; the console is of this one. */
	if (req->route == R_RPC && (v = http_header(req, "Origin")) != NULL &&
	    !is_allowed_origin(req->srv, v) && !console_is_same_origin(v, http_header(req, "Host")))
		return http_respond_plain(req, 403, "Origin not allowed", NULL, NULL);
	if (req->route == R_MCP) {
		v = http_header(req, "Origin");
		if (v != NULL && !is_allowed_origin(req->srv, v))
			return http_respond_plain(req, 403, "Origin not allowed", NULL, NULL);
	}
	return MHD_YES;
}

enum MHD_Result
http_append_body(struct request *req, const char *data, size_t size)
{
	size_t max = req->srv->gw->cfg->max_body;
	char *p;

	if (req->too_big || size > max - req->len) {
		/* A chunked body over the cap: refuse now, or drop the connection. */
		req->too_big = 1;
		if (req->status == 0 &&
		    http_respond_plain(req, 413, "request body too large", "Connection", "close") ==
			MHD_YES)
			return MHD_YES;
		return MHD_NO;
	}
	if (req->len + size > req->cap) {
		size_t cap = req->cap ? req->cap : 4096;

		while (cap < req->len + size)
			cap *= 2;
		if (cap > max)
			cap = max;
		if ((p = realloc(req->body, cap)) == NULL) {
			/* Answered once the body is in (libmicrohttpd 0.9.75 refuses a response
			 * queued in the middle of it); the rest is discarded. */
			req->is_short = 1;
			return MHD_YES;
		}
		req->body = p;
		req->cap = cap;
	}
	memcpy(req->body + req->len, data, size);
	req->len += size;
	return MHD_YES;
}

/*
 * Takes n units of the client address's rate, all or none.  Returns 0, or -1 with *retry
 * set and each of the n refusals counted.
 */
int
http_take_client(struct request *req, unsigned n, int *retry)
{
	const struct config *cfg = req->srv->gw->cfg;
	char key[96];
	unsigned i;

	snprintf(key, sizeof(key), "client:%s", req->client);
	if (rl_take_n(req->srv->gw->rl, key, cfg->rate_client, cfg->burst_client, n, retry) == 0)
		return 0;
	for (i = 0; i < n; i++)
		audit_refusal(req->srv->gw->audit, req->client, "rate_limited");
	return -1;
}

/*
 * The rate limit per client address, before authentication: one unit per call, so a
 * batch of N calls (each of which may cost a token lookup) costs what N requests would.
 * Returns 0, or -1 with every call of the message answered 429.
 */
static int
limit_client(struct request *req)
{
	struct rpc_error err = { 0 };
	size_t n;
	int retry;

	n = req->msg.is_batch ? json_array_size(req->msg.root) : 1;
	if (http_take_client(req, (unsigned)n, &retry) == 0)
		return 0;
	rpc_error_retry(&err, RPC_TOO_MANY, "rate_limited", retry,
	    "Too many requests from this address; retry in %d s", retry);
	rpc_fail_all(&req->msg, &err);
	rpc_error_clear(&err);
	return -1;
}

/*
 * Whether s is a W3C traceparent (version 00 exactly, or a later version's first four
 * fields): version, trace id and parent id in lowercase hex, neither id all zeros, flags.
 * Copies the trace id into trace (33 bytes) when it is.
 */
static int
parse_traceparent(const char *s, char trace[33])
{
	static const size_t widths[] = { 2, 32, 16, 2 };
	size_t f, i, len;
	const char *p = s;
	int nonzero;

	if (s == NULL)
		return 0;
	len = strlen(s);
	if (len < 55 || strncmp(s, "ff", 2) == 0 || (strncmp(s, "00", 2) == 0 && len != 55) ||
	    (len > 55 && s[55] != '-'))
		return 0;
	for (f = 0; f < 4; f++) {
		nonzero = 0;
		for (i = 0; i < widths[f]; i++, p++) {
			if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
				return 0;
			nonzero |= *p != '0';
		}
		if ((f == 1 || f == 2) && !nonzero)
			return 0;
		if (f < 3 && *p++ != '-')
			return 0;
	}
	memcpy(trace, s + 3, 32);
	trace[32] = '\0';
	return 1;
}

/* The request's trace id: the traceparent header's, else (one request) its _meta's. */
static void
take_trace(struct request *req)
{
	json_t *params;

	if (parse_traceparent(http_header(req, "traceparent"), req->ctx.trace_id))
		return;
	req->ctx.trace_id[0] = '\0';
	if (req->msg.root == NULL || req->msg.is_batch)
		return;
	params = json_object_get(req->msg.root, "params");
	if (!parse_traceparent(json_string_value(json_object_get(json_object_get(params, "_meta"),
				   "traceparent")),
		req->ctx.trace_id))
		req->ctx.trace_id[0] = '\0';
}

enum MHD_Result
http_finish_rpc(struct request *req)
{
	struct http_server *srv = req->srv;
	struct rpc_error err = { 0 };
	const char *auth;
	json_t *resp;
	char key[96];

	rpc_parse(&req->msg, &srv->limits, req->body ? req->body : "", req->len);
	if (req->route == R_MCP && req->msg.is_batch) {
		/* MCP removed batching in 2025-06-18. */
		rpc_error_set(&err, RPC_INVALID_REQUEST, "invalid_request",
		    "Invalid Request: batches are not accepted on /mcp");
		return http_respond_json(req, 400, rpc_error_response(NULL, &err), NULL, NULL);
	}
	take_trace(req);
	if (req->route == R_MCP && req->msg.root == NULL) {
		req->msg.http_status = 400;
		return http_respond_rpc(req);
	}
	if (req->route == R_MCP && http_check_mcp(req, &err) == -1) {
		resp = rpc_error_response(json_object_get(req->msg.root, "id"), &err);
		rpc_error_clear(&err);
		return http_respond_json(req, 400, resp, NULL, NULL);
	}
	if (req->route != R_MCP && req->msg.root != NULL && !req->msg.is_batch)
		req->is_modern = gw_meta_version(json_object_get(req->msg.root, "params")) != NULL;
	if (req->msg.root != NULL && limit_client(req) == -1)
		return http_respond_rpc(req);
	auth = http_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0)
		req->ctx.bearer = auth + 7;
	if (!req->msg.is_batch)
		req->ctx.idem_header = http_header(req, "Idempotency-Key");
	req->ctx.gw = srv->gw;
	req->ctx.client = req->client;
	req->ctx.is_mcp = req->route == R_MCP;
	if (req->msg.root != NULL && rpc_needs_worker(&req->msg, methods_table)) {
		gw_fair_key(srv->gw, req->ctx.bearer, req->client, key, sizeof(key));
		return http_defer(req, key);
	}
	rpc_execute(&req->msg, methods_table, &req->ctx);
	if (req->route == R_MCP)
		http_mcp_status(&req->msg);
	return http_respond_rpc(req);
}
