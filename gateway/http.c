/*
 * http.c: the libmicrohttpd front.  Each request gets one struct request, hung on
 * the connection's context and freed in the completion callback; it owns the
 * body, the parsed JSON-RPC message and the response.  Calls that need the
 * database are handed to the worker pool with the connection suspended, so no
 * HTTP thread ever waits on PostgreSQL; a watcher cancels the statement of a call
 * whose client closed its connection meanwhile.  /mcp adds MCP's rules to /rpc's:
 * Origin, the protocol version and the mirrored Mcp-* headers, HTTP statuses for
 * malformed input and unknown methods.
 */
#include <sys/queue.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "airlock/code.h"
#include "airlock/console.h"
#include "airlock/http.h"
#include "airlock/log.h"
#include "airlock/metrics.h"

enum route { R_NONE, R_RPC, R_MCP, R_HEALTHZ, R_READYZ, R_METRICS, R_CONSOLE };

/* JSON-RPC codes of the 2026-07-28 revision of MCP (its reserved -32020..-32099). */
#define MCP_HEADER_MISMATCH	(-32020)
#define MCP_UNSUPPORTED_VERSION	(-32022)

struct request;
LIST_HEAD(request_list, request);

struct http_server {
	struct MHD_Daemon *mhd;
	struct gateway *gw;
	struct rpc_limits limits;
	atomic_uint inflight;		/* requests begun and not yet completed */
	atomic_uint handed;		/* suspended, their record handed to the audit writer */
	atomic_int draining;		/* SIGTERM: new connections are closed at once */
	char self_origins[2][96];	/* a loopback listener's own origins, else "" */
	pthread_mutex_t watch_lock;	/* guards watched and each one's cancel */
	struct request_list watched;	/* requests handed to a pool, connection suspended */
	pthread_t watcher;
	atomic_int is_stopping;
};

struct request {
	struct http_server *srv;
	struct MHD_Connection *conn;
	enum route route;
	struct timespec start;
	const char *http_method;	/* static string */
	char path[64];
	char client[INET6_ADDRSTRLEN];
	char *body;
	size_t len, cap;
	int status;			/* the HTTP status answered */
	int too_big;
	int in_worker;			/* handed to the pool, connection suspended */
	int worker_done;
	atomic_int holds;		/* what must end before it is resumed: its job, and
					   the audit writer when its record was handed over */
	int is_unrecorded;		/* the handed record could not be written */
	int is_ready;			/* /readyz: the database answered */
	int is_modern;			/* MCP 2026-07-28: the version in params._meta */
	int fd;				/* the connection's socket, for the watcher */
	PGcancel *cancel;		/* the worker's connection's, while its job runs */
	int is_cancel_sent;
	LIST_ENTRY(request) watch;	/* in srv->watched while in_worker */
	int is_short;			/* out of memory for the body: answered as failed */
	struct rpc_msg msg;
	struct request_ctx ctx;
	struct pool_job job;
};


static enum route
route_of(const char *url)
{
	static const struct { const char *path; enum route r; } routes[] = {
		{ "/rpc", R_RPC }, { "/mcp", R_MCP }, { "/healthz", R_HEALTHZ },
		{ "/readyz", R_READYZ }, { "/metrics", R_METRICS },
	};
	size_t i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(url, routes[i].path) == 0)
			return routes[i].r;
	return console_is_path(url) ? R_CONSOLE : R_NONE;
}

/* Queues a response; steals body (malloc'd, may be NULL for an empty body). */
static enum MHD_Result
respond(struct request *req, int status, const char *ctype, char *body, size_t len,
    const char *hname, const char *hvalue)
{
	struct MHD_Response *resp;
	enum MHD_Result rc;

	resp = MHD_create_response_from_buffer(len, body ? body : (char *)(uintptr_t)"",
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
static enum MHD_Result
queue_failed(struct MHD_Connection *conn, enum route route, int *status)
{
	struct MHD_Response *resp;
	enum MHD_Result rc;
	int is_rpc = route == R_RPC || route == R_MCP;
	const char *body = is_rpc ? rpc_internal_error_text : "unavailable\n";

	resp = MHD_create_response_from_buffer(strlen(body), (char *)(uintptr_t)body,
	    MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, is_rpc ?
	    "application/json" : "text/plain; charset=utf-8");
	if (!is_rpc)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	*status = is_rpc ? 200 : 503;
	rc = MHD_queue_response(conn, (unsigned)*status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result
respond_failed(struct request *req)
{
	return queue_failed(req->conn, req->route, &req->status);
}

/* An HTTP-level fault: a plain-text answer. */
static enum MHD_Result
respond_plain(struct request *req, int status, const char *text, const char *hname,
    const char *hvalue)
{
	char *body;

	if (asprintf(&body, "%s\n", text) == -1)
		return respond(req, status, NULL, NULL, 0, hname, hvalue);
	return respond(req, status, "text/plain; charset=utf-8", body, strlen(body), hname, hvalue);
}

/* Queues a JSON answer; steals obj. */
static enum MHD_Result
respond_json(struct request *req, int status, json_t *obj, const char *hname,
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
		return respond_failed(req);
	}
	return respond(req, status, "application/json", body, strlen(body), hname, hvalue);
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
	const char *reason = json_string_value(json_object_get(json_object_get(json_object_get(
	    resp, "error"), "data"), "reason"));

	return reason != NULL && strcmp(reason, "token_missing") == 0 ? "Bearer realm=\"airlock\"" :
	    "Bearer realm=\"airlock\", error=\"invalid_token\"";
}

/* Sends what rpc_execute (or rpc_parse, or rpc_fail_all) left in req->msg. */
static enum MHD_Result
respond_rpc(struct request *req)
{
	struct rpc_msg *msg = &req->msg;
	json_t *resp = msg->response;
	json_t *retry;
	char seconds[24];
	size_t i;

	if (resp == NULL && msg->is_failed)
		return respond_failed(req);
	if (resp == NULL)
		return respond(req, MHD_HTTP_ACCEPTED, NULL, NULL, 0, NULL, NULL);
	msg->response = NULL;
	if (json_is_array(resp)) {
		for (i = 0; i < json_array_size(resp); i++)
			decorate(req, json_array_get(resp, i));
	} else
		decorate(req, resp);
	switch (msg->http_status) {
	case 401:
		return respond_json(req, 401, resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		    www_authenticate(resp));
	case 429:
	case 503:
		retry = json_object_get(json_object_get(json_object_get(resp, "error"), "data"),
		    "retryAfterSeconds");
		snprintf(seconds, sizeof(seconds), "%lld",
		    json_is_integer(retry) ? (long long)json_integer_value(retry) : 1LL);
		return respond_json(req, msg->http_status, resp, MHD_HTTP_HEADER_RETRY_AFTER,
		    seconds);
	default:
		return respond_json(req, msg->http_status, resp, NULL, NULL);
	}
}

static const char *
header(struct request *req, const char *name)
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

static int
is_known_mcp_version(const char *v)
{
	size_t i;

	for (i = 0; gw_mcp_versions[i] != NULL; i++)
		if (strcmp(v, gw_mcp_versions[i]) == 0)
			return 1;
	return 0;
}

/*
 * Checks a POST's headers before any of its body is read.  Returns MHD_YES to go
 * on reading, or the result of queueing a refusal (req->status is then set).
 */
static enum MHD_Result
check_post(struct request *req)
{
	const struct config *cfg = req->srv->gw->cfg;
	const char *cl = header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	const char *v, *errstr;
	long long n;

	if (cl != NULL && te != NULL)
		return respond_plain(req, 400, "Content-Length and Transfer-Encoding together",
		    "Connection", "close");
	if (cl != NULL) {
		n = strtonum(cl, 0, LLONG_MAX, &errstr);
		if (errstr != NULL)
			return respond_plain(req, 400, "bad Content-Length", "Connection", "close");
		if ((unsigned long long)n > cfg->max_body)
			return respond_plain(req, 413, "request body too large", "Connection",
			    "close");
	}
	if (!is_json_type(header(req, MHD_HTTP_HEADER_CONTENT_TYPE)))
		return respond_plain(req, 415, "Content-Type must be application/json", NULL, NULL);
	/* A page of another origin has no business on /rpc; the console is of this one. */
	if (req->route == R_RPC && (v = header(req, "Origin")) != NULL &&
	    !is_allowed_origin(req->srv, v) && !console_is_same_origin(v, header(req, "Host")))
		return respond_plain(req, 403, "Origin not allowed", NULL, NULL);
	if (req->route == R_MCP) {
		v = header(req, "Origin");
		if (v != NULL && !is_allowed_origin(req->srv, v))
			return respond_plain(req, 403, "Origin not allowed", NULL, NULL);
	}
	return MHD_YES;
}

static enum MHD_Result
append_body(struct request *req, const char *data, size_t size)
{
	size_t max = req->srv->gw->cfg->max_body;
	char *p;

	if (req->too_big || size > max - req->len) {
		/* A chunked body over the cap: refuse now, or drop the connection. */
		req->too_big = 1;
		if (req->status == 0 &&
		    respond_plain(req, 413, "request body too large", "Connection", "close") == MHD_YES)
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

/* Stops watching req (idempotent); its cancel object goes with it. */
static void
unwatch(struct request *req)
{
	pthread_mutex_lock(&req->srv->watch_lock);
	if (req->fd >= 0) {
		LIST_REMOVE(req, watch);
		req->fd = -1;
	}
	if (req->cancel != NULL)
		PQfreeCancel(req->cancel);
	req->cancel = NULL;
	pthread_mutex_unlock(&req->srv->watch_lock);
}

/* Watches req's connection while its calls run on a pool.  Returns 0, or -1 when its
 * socket is unknown (then it is not watched). */
static int
watch(struct request *req)
{
	const union MHD_ConnectionInfo *ci;

	req->fd = -1;
	ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci == NULL)
		return -1;
	pthread_mutex_lock(&req->srv->watch_lock);
	req->fd = ci->connect_fd;
	LIST_INSERT_HEAD(&req->srv->watched, req, watch);
	pthread_mutex_unlock(&req->srv->watch_lock);
	return 0;
}

/*
 * The watcher: libmicrohttpd does not poll a suspended connection, so a client that
 * leaves while its call runs would go unnoticed until the call ends.  Every 50 ms the
 * watched sockets are polled for the peer's close (POLLRDHUP, or an error); a call whose
 * client left has its statement cancelled (PQcancel on the worker's connection) and is
 * recorded as cancelled.  A sandboxed program runs on to its limits.
 */
static void *
watcher(void *arg)
{
	struct http_server *srv = arg;
	struct timespec step = { 0, 50 * 1000 * 1000 };
	struct pollfd *fds = NULL, *grown;
	struct request *req;
	size_t n, cap = 0, i;
	char errbuf[256];

	while (!atomic_load(&srv->is_stopping)) {
		nanosleep(&step, NULL);
		pthread_mutex_lock(&srv->watch_lock);
		n = 0;
		LIST_FOREACH(req, &srv->watched, watch)
			n++;
		if (n > cap) {
			if ((grown = realloc(fds, n * sizeof(*fds))) == NULL) {
				pthread_mutex_unlock(&srv->watch_lock);
				continue;
			}
			fds = grown;
			cap = n;
		}
		i = 0;
		LIST_FOREACH(req, &srv->watched, watch) {
			fds[i].fd = req->is_cancel_sent ? -1 : req->fd;
			fds[i].events = POLLRDHUP;
			fds[i++].revents = 0;
		}
		/* Under the lock, without waiting: a request leaves the list, and its socket
		 * may close, only under it. */
		if (n > 0 && poll(fds, (nfds_t)n, 0) > 0) {
			i = 0;
			LIST_FOREACH(req, &srv->watched, watch) {
				if (fds[i++].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
					req->is_cancel_sent = 1;
					atomic_store(&req->ctx.is_cancelled, 1);
					if (req->cancel != NULL)
						(void)PQcancel(req->cancel, errbuf, sizeof(errbuf));
				}
			}
		}
		pthread_mutex_unlock(&srv->watch_lock);
	}
	free(fds);
	return NULL;
}

/* One of req's holds ends; the last resumes its connection. */
static void
release(struct request *req)
{
	if (atomic_fetch_sub(&req->holds, 1) == 1) {
		req->worker_done = 1;
		MHD_resume_connection(req->conn);
	}
}

/* On the audit writer's thread: the record req's worker handed over is durable (rc 0), or
 * could not be written, and then the answer is not sent (on_request replaces it). */
static void
recorded(void *arg, int rc)
{
	struct request *req = arg;

	if (rc == -1)
		req->is_unrecorded = 1;
	atomic_fetch_sub(&req->srv->handed, 1);
	release(req);
}

/* Runs on a database worker: the request's calls, then wakes its connection, or leaves that
 * to the audit writer once the record it was handed is durable: the worker never waits for
 * a flush. */
static void
run_job(struct pool_job *job, struct db *db)
{
	struct request *req = (struct request *)((char *)job - offsetof(struct request, job));
	PGresult *res;
	int is_up;

	atomic_store(&req->holds, 2);

	if (req->route == R_READYZ) {
		struct catalog_ref *ref = gw_catalog_get(req->srv->gw);

		/* Ready: the database answers and the tool catalog has been checked. */
		req->is_ready = 0;
		if (ref != NULL && db_ensure(db) == 0) {
			res = PQexec(db->conn, "SELECT 1");
			req->is_ready = PQresultStatus(res) == PGRES_TUPLES_OK;
			PQclear(res);
		}
		gw_catalog_put(req->srv->gw, ref);
	} else {
		req->ctx.db = db;
		/* The watcher may cancel this connection's statement while the job runs.  A
		 * worker connects on its first job: connected here, the job has its cancel
		 * object from the start (a failure is the methods' to report). */
		is_up = db->conn != NULL || db_ensure(db) == 0;
		pthread_mutex_lock(&req->srv->watch_lock);
		req->cancel = is_up ? PQgetCancel(db->conn) : NULL;
		pthread_mutex_unlock(&req->srv->watch_lock);
		/* A batch's calls wait for their records one by one, as calls run inline do. */
		if (!req->msg.is_batch) {
			req->ctx.on_recorded = recorded;
			req->ctx.recorded_arg = req;
			/* Counted before it can be handed: recorded() may run before rpc_execute
			 * returns. */
			atomic_fetch_add(&req->srv->handed, 1);
		}
		rpc_execute(&req->msg, methods_table, &req->ctx);
		if (!req->msg.is_batch && !req->ctx.is_record_handed)
			atomic_fetch_sub(&req->srv->handed, 1);
		req->ctx.db = NULL;
		req->ctx.on_recorded = NULL;
	}
	unwatch(req);
	if (!req->ctx.is_record_handed)
		atomic_fetch_sub(&req->holds, 1);	/* no record on its way */
	release(req);
}

/* The record of req's call could not be written: whatever was to be answered is replaced
 * by the refusal a call gets when its record fails (no data without its record). */
static void
fail_unrecorded(struct request *req)
{
	struct rpc_error err = { 0 };

	rpc_error_set(&err, RPC_UNAVAILABLE, "backend_unavailable",
	    "The call could not be recorded, so it was not answered; retry shortly");
	err.data = json_pack("{s:i}", "retryAfterSeconds", 1);
	json_decref(req->msg.response);
	req->msg.response = NULL;
	rpc_fail_all(&req->msg, &err);
	rpc_error_clear(&err);
}

/* Hands req to the pool with its connection suspended; answers 429/503 when full. */
static enum MHD_Result
defer(struct request *req, const char *key)
{
	struct gateway *gw = req->srv->gw;
	struct rpc_error err = { 0 };
	struct pool *pool;
	int rc = -1;

	req->job.run = run_job;
	strlcpy(req->job.key, key, sizeof(req->job.key));
	/* The pools go away when the daemon stops: they are used under the read lock only. */
	pthread_rwlock_rdlock(&gw->pools_lock);
	pool = req->route == R_READYZ ? gw->pool : gw_pool_for(gw, &req->msg);
	if (pool != NULL) {
		req->ctx.is_sandbox = pool == gw->sandbox_pool;
		req->in_worker = 1;
		if (req->route != R_READYZ)
			(void)watch(req);
		MHD_suspend_connection(req->conn);
		if ((rc = pool_submit(pool, &req->job)) != 0) {
			unwatch(req);
			MHD_resume_connection(req->conn);
			req->in_worker = 0;
		}
	}
	pthread_rwlock_unlock(&gw->pools_lock);
	if (rc == 0)
		return MHD_YES;
	if (req->route == R_READYZ)
		return respond_plain(req, 503, pool ? "busy" : "stopping",
		    MHD_HTTP_HEADER_RETRY_AFTER, "1");
	if (rc == -2)
		rpc_error_set(&err, RPC_INTERNAL_ERROR, "internal", "Internal error");
	else if (pool == NULL)
		rpc_error_set(&err, RPC_UNAVAILABLE, "backend_unavailable",
		    "The gateway is stopping; retry on another instance");
	else
		rpc_error_set(&err, RPC_TOO_MANY, "concurrency_limited",
		    "Too many calls waiting; retry shortly");
	if (rc != -2)
		err.data = json_pack("{s:i}", "retryAfterSeconds", 1);
	rpc_fail_all(&req->msg, &err);
	rpc_error_clear(&err);
	return respond_rpc(req);
}

/*
 * Takes n units of the client address's rate, all or none.  Returns 0, or -1 with *retry
 * set and each of the n refusals counted.
 */
static int
take_client(struct request *req, unsigned n, int *retry)
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
	if (take_client(req, (unsigned)n, &retry) == 0)
		return 0;
	rpc_error_set(&err, RPC_TOO_MANY, "rate_limited",
	    "Too many requests from this address; retry in %d s", retry);
	err.data = json_pack("{s:i}", "retryAfterSeconds", retry);
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

/* The value of a Base64 (RFC 4648) text, NUL-terminated, into out.  Returns its length,
 * or -1 when text is not Base64 or the value does not fit.  (None of the libraries
 * Airlock links offers a decoder.) */
static long
base64_decode(const char *text, size_t len, char *out, size_t cap)
{
	static const char digits[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned long acc = 0;
	size_t i, n = 0, bits = 0, pad = 0;
	const char *d;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i++) {
		if (text[i] == '=') {
			if (++pad > 2 || i < len - 2)
				return -1;
			continue;
		}
		if (pad > 0 || text[i] == '\0' || (d = strchr(digits, text[i])) == NULL)
			return -1;
		acc = (acc << 6) | (unsigned long)(d - digits);
		if ((bits += 6) >= 8) {
			bits -= 8;
			if (n + 1 >= cap)
				return -1;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[n] = '\0';
	return (long)n;
}

/* Whether the Mcp-Name header value h names the same as the body's value v (h decoded
 * first when in the =?base64?...?= form). */
static int
is_same_name(const char *h, const char *v)
{
	char buf[1024];
	size_t len = strlen(h);
	long n;

	if (len >= 11 && strncmp(h, "=?base64?", 9) == 0 && strcmp(h + len - 2, "?=") == 0) {
		n = base64_decode(h + 9, len - 11, buf, sizeof(buf));
		return n >= 0 && (size_t)n == strlen(v) && memcmp(buf, v, (size_t)n) == 0;
	}
	return strcmp(h, v) == 0;
}

/* Fills err with MCP's UnsupportedProtocolVersion for asked. */
static void
unsupported_version(struct rpc_error *err, const char *asked)
{
	json_t *versions = json_array();
	size_t i;

	for (i = 0; gw_mcp_versions[i] != NULL; i++)
		json_array_append_new(versions, json_string(gw_mcp_versions[i]));
	rpc_error_set(err, MCP_UNSUPPORTED_VERSION, "unsupported_version",
	    "Unsupported protocol version '%.40s'", asked);
	err->data = json_pack("{s:o, s:s}", "supported", versions, "requested", asked);
}

/*
 * MCP's checks of a single request on /mcp, before it runs: the protocol version (the
 * MCP-Protocol-Version header and _meta's, known and equal), and the headers that mirror
 * the body (Mcp-Method, Mcp-Name), which the stateless revision requires and which must
 * match the body whenever present.  Returns 0, or -1 with err: -32022 for a version not
 * spoken here, -32020 for a header missing or not matching, -32602 for a stateless
 * request without its required _meta.  Sets req->is_modern.
 */
static int
check_mcp(struct request *req, struct rpc_error *err)
{
	json_t *root = req->msg.root, *params, *meta;
	const char *hv, *bv, *method, *mh, *nh, *name;
	int needs_name;

	method = json_string_value(json_object_get(root, "method"));
	if (!json_is_object(root) || method == NULL)
		return 0;	/* an invalid request: rpc_execute says so */
	params = json_object_get(root, "params");
	meta = json_object_get(params, "_meta");
	hv = header(req, "MCP-Protocol-Version");
	bv = gw_meta_version(params);
	if (hv != NULL && !is_known_mcp_version(hv)) {
		unsupported_version(err, hv);
		return -1;
	}
	if (bv != NULL && !is_known_mcp_version(bv)) {
		unsupported_version(err, bv);
		return -1;
	}
	if (hv != NULL && bv != NULL && strcmp(hv, bv) != 0) {
		rpc_error_set(err, MCP_HEADER_MISMATCH, "header_mismatch", "Header mismatch: "
		    "MCP-Protocol-Version '%s' differs from _meta's '%s'", hv, bv);
		return -1;
	}
	req->is_modern = (hv != NULL && strcmp(hv, GW_MCP_MODERN) == 0) ||
	    (bv != NULL && strcmp(bv, GW_MCP_MODERN) == 0);
	mh = header(req, "Mcp-Method");
	nh = header(req, "Mcp-Name");
	name = json_string_value(json_object_get(params, "name"));
	if (name == NULL)
		name = json_string_value(json_object_get(params, "uri"));
	needs_name = strcmp(method, "tools/call") == 0 || strcmp(method, "resources/read") == 0 ||
	    strcmp(method, "prompts/get") == 0;
	if (req->is_modern) {
		if (hv == NULL || mh == NULL || (needs_name && nh == NULL)) {
			rpc_error_set(err, MCP_HEADER_MISMATCH, "header_mismatch", "Header mismatch: "
			    "the %s header is required", hv == NULL ? "MCP-Protocol-Version" :
			    mh == NULL ? "Mcp-Method" : "Mcp-Name");
			return -1;
		}
		if (bv == NULL || !json_is_object(json_object_get(meta,
		    "io.modelcontextprotocol/clientCapabilities"))) {
			rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params", "A %s request "
			    "carries _meta io.modelcontextprotocol/protocolVersion and "
			    "io.modelcontextprotocol/clientCapabilities", GW_MCP_MODERN);
			return -1;
		}
	}
	if (mh != NULL && strcmp(mh, method) != 0) {
		rpc_error_set(err, MCP_HEADER_MISMATCH, "header_mismatch", "Header mismatch: "
		    "Mcp-Method '%.64s' differs from the body's '%.64s'", mh, method);
		return -1;
	}
	if (nh != NULL && (name == NULL || !is_same_name(nh, name))) {
		rpc_error_set(err, MCP_HEADER_MISMATCH, "header_mismatch", "Header mismatch: "
		    "Mcp-Name differs from the body's name");
		return -1;
	}
	return 0;
}

/* The HTTP status of a single request's answer on /mcp: malformed input is 400 and a
 * method not served 404, as MCP's Streamable HTTP transport says; the rest as on /rpc. */
static void
mcp_status(struct rpc_msg *msg)
{
	json_t *e = json_object_get(msg->response, "error");
	const char *reason;

	if (e == NULL || msg->is_batch)
		return;
	reason = json_string_value(json_object_get(json_object_get(e, "data"), "reason"));
	switch (json_integer_value(json_object_get(e, "code"))) {
	case RPC_PARSE_ERROR:
	case RPC_INVALID_REQUEST:
	case MCP_HEADER_MISMATCH:
	case MCP_UNSUPPORTED_VERSION:
		msg->http_status = 400;
		break;
	case RPC_METHOD_NOT_FOUND:
		msg->http_status = 404;
		break;
	case RPC_INVALID_PARAMS:
		/* Malformed params; an unknown tool or a missing key is an answer, not a fault. */
		if (reason != NULL && strcmp(reason, "invalid_params") == 0)
			msg->http_status = 400;
		break;
	default:
		break;
	}
}

/* The request's trace id: the traceparent header's, else (one request) its _meta's. */
static void
take_trace(struct request *req)
{
	json_t *params;

	if (parse_traceparent(header(req, "traceparent"), req->ctx.trace_id))
		return;
	req->ctx.trace_id[0] = '\0';
	if (req->msg.root == NULL || req->msg.is_batch)
		return;
	params = json_object_get(req->msg.root, "params");
	if (!parse_traceparent(json_string_value(json_object_get(json_object_get(params, "_meta"),
	    "traceparent")), req->ctx.trace_id))
		req->ctx.trace_id[0] = '\0';
}

static enum MHD_Result
finish_rpc(struct request *req)
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
		return respond_json(req, 400, rpc_error_response(NULL, &err), NULL, NULL);
	}
	take_trace(req);
	if (req->route == R_MCP && req->msg.root == NULL) {
		req->msg.http_status = 400;
		return respond_rpc(req);
	}
	if (req->route == R_MCP && check_mcp(req, &err) == -1) {
		resp = rpc_error_response(json_object_get(req->msg.root, "id"), &err);
		rpc_error_clear(&err);
		return respond_json(req, 400, resp, NULL, NULL);
	}
	if (req->route != R_MCP && req->msg.root != NULL && !req->msg.is_batch)
		req->is_modern = gw_meta_version(json_object_get(req->msg.root, "params")) != NULL;
	if (req->msg.root != NULL && limit_client(req) == -1)
		return respond_rpc(req);
	auth = header(req, MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0)
		req->ctx.bearer = auth + 7;
	if (!req->msg.is_batch)
		req->ctx.idem_header = header(req, "Idempotency-Key");
	req->ctx.gw = srv->gw;
	req->ctx.client = req->client;
	req->ctx.is_mcp = req->route == R_MCP;
	if (req->msg.root != NULL && rpc_needs_worker(&req->msg, methods_table)) {
		gw_fair_key(srv->gw, req->ctx.bearer, req->client, key, sizeof(key));
		return defer(req, key);
	}
	rpc_execute(&req->msg, methods_table, &req->ctx);
	if (req->route == R_MCP)
		mcp_status(&req->msg);
	return respond_rpc(req);
}

static enum MHD_Result
metrics(struct request *req)
{
	const union MHD_DaemonInfo *info;
	unsigned conns = 0;
	size_t len;
	char *body, *warm, *both;

	/* Summed over the HTTP threads; a connection counts from its accept. */
	info = MHD_get_daemon_info(req->srv->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	if (info != NULL)
		conns = info->num_connections;
	body = metrics_render(req->srv->gw, atomic_load(&req->srv->inflight), conns, &len);
	if (body == NULL)
		return respond_failed(req);
	/* The warm pools' size, hits and misses. */
	if ((warm = code_warm_metrics()) != NULL) {
		if (asprintf(&both, "%s%s", body, warm) != -1) {
			free(body);
			body = both;
			len = strlen(body);
		}
		free(warm);
	}
	return respond(req, 200, "text/plain; version=0.0.4", body, len, NULL, NULL);
}

/* MHD_get_connection_values' iterator: keeps the last X-Forwarded-For line in *cls. */
static enum MHD_Result
last_xff(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	if (key != NULL && value != NULL && strcasecmp(key, "X-Forwarded-For") == 0)
		*(const char **)cls = value;
	return MHD_YES;
}

/*
 * Behind the trusted proxy, the client is the last address of X-Forwarded-For, across
 * every line of that header: the proxy appends its peer to the last line (or adds a line),
 * and every earlier line and entry is the client's own word.  libmicrohttpd keeps each
 * line apart and its lookup returns the first, so the lines are walked.  Anything that is
 * not a numeric address leaves the proxy's.
 */
static void
forwarded_client(struct request *req)
{
	const char *trusted = req->srv->gw->cfg->trust_proxy, *xff = NULL, *last;
	char addr[INET6_ADDRSTRLEN];
	unsigned char buf[sizeof(struct in6_addr)];
	size_t n;

	if (trusted[0] == '\0' || strcmp(req->client, trusted) != 0)
		return;
	(void)MHD_get_connection_values(req->conn, MHD_HEADER_KIND, last_xff, &xff);
	if (xff == NULL)
		return;
	last = strrchr(xff, ',');
	last = last ? last + 1 : xff;
	last += strspn(last, " \t");
	n = strcspn(last, " \t");
	if (n == 0 || n >= sizeof(addr))
		return;
	memcpy(addr, last, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, buf) == 1 || inet_pton(AF_INET6, addr, buf) == 1)
		strlcpy(req->client, addr, sizeof(req->client));
}

/* The console's page and files (console.c), with their security headers. */
static enum MHD_Result
console(struct request *req)
{
	struct MHD_Response *resp;
	enum MHD_Result rc;
	unsigned status;

	if ((resp = console_response(req->path, &status)) == NULL)
		return MHD_NO;
	req->status = (int)status;
	rc = MHD_queue_response(req->conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

/* Stands for a request whose state could not be allocated (never written). */
static struct request unallocated;

/* The first call for a request: route, method and header checks. */
static enum MHD_Result
begin(struct http_server *srv, struct MHD_Connection *conn, const char *url,
    const char *method, void **con_cls)
{
	const union MHD_ConnectionInfo *ci;
	struct request *req;
	int is_post, is_get, status;

	if ((req = calloc(1, sizeof(*req))) == NULL) {
		/* Out of memory: answered at once; the rest of the request is discarded. */
		*con_cls = &unallocated;
		return queue_failed(conn, route_of(url), &status);
	}
	*con_cls = req;
	atomic_fetch_add(&srv->inflight, 1);
	req->srv = srv;
	req->conn = conn;
	req->fd = -1;
	clock_gettime(CLOCK_MONOTONIC, &req->start);
	strlcpy(req->path, url, sizeof(req->path));
	req->route = route_of(url);
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || getnameinfo(ci->client_addr, ci->client_addr->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in), req->client,
	    sizeof(req->client), NULL, 0, NI_NUMERICHOST) != 0)
		strlcpy(req->client, "unknown", sizeof(req->client));
	forwarded_client(req);
	is_post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	is_get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	req->http_method = is_post ? "POST" : is_get ? "GET" : "other";

	switch (req->route) {
	case R_NONE:
		return respond_plain(req, 404, "not found", NULL, NULL);
	case R_RPC:
	case R_MCP:
		if (!is_post)
			return respond_plain(req, 405, "method not allowed", MHD_HTTP_HEADER_ALLOW,
			    "POST");
		return check_post(req);
	case R_HEALTHZ:
	case R_READYZ:
	case R_METRICS:
	case R_CONSOLE:
		if (!is_get)
			return respond_plain(req, 405, "method not allowed", MHD_HTTP_HEADER_ALLOW,
			    "GET, HEAD");
		return MHD_YES;
	}
	return MHD_NO;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct request *req = *con_cls;
	char seconds[24];
	int retry;

	(void)version;
	if (req == NULL)
		return begin(srv, conn, url, method, con_cls);
	if (req == &unallocated) {
		*upload_data_size = 0;	/* already answered: discard */
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t size = *upload_data_size;

		*upload_data_size = 0;
		if (req->status != 0 || req->is_short)
			return MHD_YES;	/* already answered, or failed: discard */
		return append_body(req, upload_data, size);
	}
	if (req->status != 0)
		return MHD_YES;
	if (req->is_short)
		return respond_failed(req);
	if (req->in_worker) {
		if (!req->worker_done)
			return MHD_YES;	/* a spurious wake-up */
		req->in_worker = 0;
		if (req->route == R_READYZ)
			goto ready;
		if (req->is_unrecorded)
			fail_unrecorded(req);
		if (req->route == R_MCP)
			mcp_status(&req->msg);
		return respond_rpc(req);
	}
	switch (req->route) {
	case R_HEALTHZ:
		return respond_json(req, 200, json_pack("{s:s}", "status", "ok"), NULL, NULL);
	case R_READYZ:
		/* Asked on a connection kept open from before SIGTERM: not ready, so a load
		 * balancer stops sending here while in-flight requests finish. */
		if (atomic_load(&req->srv->draining))
			return respond_json(req, 503, json_pack("{s:s, s:s}", "status",
			    "unavailable", "reason", "stopping"), MHD_HTTP_HEADER_RETRY_AFTER, "1");
		/* It asks the database, so it costs the client address a unit of its rate;
		 * /healthz and /metrics answer from memory and stay free. */
		if (take_client(req, 1, &retry) == -1) {
			snprintf(seconds, sizeof(seconds), "%d", retry);
			return respond_json(req, 429, json_pack("{s:s, s:s}", "status",
			    "unavailable", "reason", "rate_limited"), MHD_HTTP_HEADER_RETRY_AFTER,
			    seconds);
		}
		return defer(req, "readyz");
	case R_METRICS:
		return metrics(req);
	case R_CONSOLE:
		return console(req);
	default:
		return finish_rpc(req);
	}
ready:
	if (req->is_ready)
		return respond_json(req, 200, json_pack("{s:s}", "status", "ready"), NULL, NULL);
	return respond_json(req, 503, json_pack("{s:s, s:s}", "status", "unavailable", "reason",
	    "backend_unavailable"), MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_server *srv = cls;
	struct request *req = *con_cls;
	struct timespec now;
	double ms;
	json_t *line;

	(void)conn;
	if (req == NULL || req == &unallocated)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (double)(now.tv_sec - req->start.tv_sec) * 1e3 +
	    (double)(now.tv_nsec - req->start.tv_nsec) / 1e6;
	metrics_http_answered(req->status);
	line = json_pack("{s:s, s:s, s:s, s:i, s:f, s:s}", "msg", "request",
	    "method", req->http_method, "path", req->path, "status", req->status,
	    "ms", ms, "client", req->client);
	if (req->msg.method[0] != '\0') {
		json_object_set_new(line, "rpc", json_string(req->msg.method));
		json_object_set_new(line, "calls", json_integer(req->msg.n_calls));
	}
	if (req->ctx.trace_id[0] != '\0')
		json_object_set_new(line, "trace_id", json_string(req->ctx.trace_id));
	if (atomic_load(&req->ctx.is_cancelled))
		json_object_set_new(line, "cancelled", json_true());
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		json_object_set_new(line, "aborted", json_integer(toe));
	log_json(LOG_LVL_INFO, line);
	rpc_msg_clear(&req->msg);
	free(req->body);
	free(req);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->inflight, 1);
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_json(LOG_LVL_WARN, json_pack("{s:s, s:s}", "msg", "http", "detail", buf));
}

/*
 * Stopping to accept is done here and not with MHD_quiesce_daemon: in 0.9.75 with epoll
 * that call races the polling thread removing the listen socket itself and aborts the
 * process ("Failed to remove listen FD from epoll set").  A connection accepted while
 * draining is closed before a byte is read.
 */
static enum MHD_Result
on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct http_server *srv = cls;

	(void)addr;
	(void)addrlen;
	return atomic_load(&srv->draining) ? MHD_NO : MHD_YES;
}

struct http_server *
http_start(struct gateway *gw)
{
	const struct config *cfg = gw->cfg;
	struct http_server *srv;
	struct sockaddr_in6 sa6;
	struct sockaddr_in sa4;
	struct sockaddr *sa;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return NULL;
	srv->gw = gw;
	LIST_INIT(&srv->watched);
	pthread_mutex_init(&srv->watch_lock, NULL);
	srv->limits.max_depth = cfg->max_depth;
	srv->limits.max_batch = cfg->max_batch;
	memset(&sa4, 0, sizeof(sa4));
	memset(&sa6, 0, sizeof(sa6));
	if (inet_pton(AF_INET, cfg->listen_host, &sa4.sin_addr) == 1) {
		sa4.sin_family = AF_INET;
		sa4.sin_port = htons(cfg->listen_port);
		sa = (struct sockaddr *)&sa4;
	} else if (inet_pton(AF_INET6, cfg->listen_host, &sa6.sin6_addr) == 1) {
		sa6.sin6_family = AF_INET6;
		sa6.sin6_port = htons(cfg->listen_port);
		sa = (struct sockaddr *)&sa6;
	} else {
		log_error("listen address %s is not a numeric IPv4 or IPv6 address",
		    cfg->listen_host);
		free(srv);
		return NULL;
	}
	/* On loopback, the listener's own origins are allowed on /mcp: a local client or a
	 * page served from that very address.  Behind any other address only the configured
	 * ones are (a public name is the proxy's to know). */
	if (sa == (struct sockaddr *)&sa4 ? (ntohl(sa4.sin_addr.s_addr) >> 24) == 127 :
	    IN6_IS_ADDR_LOOPBACK(&sa6.sin6_addr)) {
		snprintf(srv->self_origins[0], sizeof(srv->self_origins[0]),
		    sa == (struct sockaddr *)&sa4 ? "http://%s:%u" : "http://[%s]:%u",
		    cfg->listen_host, cfg->listen_port);
		snprintf(srv->self_origins[1], sizeof(srv->self_origins[1]), "http://localhost:%u",
		    cfg->listen_port);
	}
	srv->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
	    (sa == (struct sockaddr *)&sa6 ? MHD_USE_IPv6 : 0),
	    cfg->listen_port, on_accept, srv, on_request, srv,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
	    MHD_OPTION_SOCK_ADDR, sa,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->http_threads,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->conn_timeout,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_conns,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)cfg->max_conns_per_client,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
	    /* Each connection's buffer for its request head and body pieces (bodies are
	     * copied out as they come, answers are separate): libmicrohttpd's 32 KiB
	     * default, wiped for every request, was a third of the process's memory with
	     * 256 connections open.  A head longer than this is answered 431. */
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16 * 1024,
	    MHD_OPTION_END);
	if (srv->mhd == NULL) {
		log_error("cannot listen on %s:%u: %s", cfg->listen_host, cfg->listen_port,
		    strerror(errno));
		free(srv);
		return NULL;
	}
	if ((errno = pthread_create(&srv->watcher, NULL, watcher, srv)) != 0) {
		log_error("cannot start the connection watcher: %s", strerror(errno));
		MHD_stop_daemon(srv->mhd);
		free(srv);
		return NULL;
	}
	return srv;
}

static void
wait_inflight(struct http_server *srv, unsigned ms)
{
	struct timespec step = { 0, 10 * 1000 * 1000 }, start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (atomic_load(&srv->inflight) > 0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >=
		    (long)ms)
			break;
		nanosleep(&step, NULL);
	}
}

void
http_stop(struct http_server *srv, unsigned grace_ms)
{
	struct pool *db_pool, *sandbox_pool;

	atomic_store(&srv->draining, 1);
	log_info("stopping: no new connections; finishing in-flight requests");
	wait_inflight(srv, grace_ms);
	/* Every queued call runs and resumes its connection before the daemon stops:
	 * libmicrohttpd 0.9.75 aborts in MHD_stop_daemon while one is suspended. */
	pthread_rwlock_wrlock(&srv->gw->pools_lock);
	db_pool = srv->gw->pool;
	sandbox_pool = srv->gw->sandbox_pool;
	srv->gw->pool = srv->gw->sandbox_pool = NULL;
	pthread_rwlock_unlock(&srv->gw->pools_lock);
	pool_destroy(db_pool);
	pool_destroy(sandbox_pool);
	/* The workers handed their last records to the audit writer: those connections are
	 * resumed once the records are durable (or failed), however long that takes. */
	while (atomic_load(&srv->handed) > 0)
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	log_info("stopping: workers stopped; a request still arriving is answered 503");
	wait_inflight(srv, 2000);
	atomic_store(&srv->is_stopping, 1);
	pthread_join(srv->watcher, NULL);
	MHD_stop_daemon(srv->mhd);
	pthread_mutex_destroy(&srv->watch_lock);
	free(srv);
}
