/*
 * http.c: the libmicrohttpd front: the daemon (its options, start and drain), routing, and
 * one request's life.  Each request gets one struct request (http_int.h), hung on the
 * connection's context and freed in the completion callback; it owns the body, the parsed
 * JSON-RPC message and the response.  Its siblings: http_rpc.c runs a POST to /rpc or
 * /mcp, http_mcp.c holds MCP's rules, http_worker.c hands calls that need the database to
 * a pool with the connection suspended (so no HTTP thread waits on PostgreSQL) and
 * cancels the statement of a client that left, http_respond.c queues the answers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <microhttpd.h>

#include "airlock/code.h"
#include "airlock/console.h"
#include "airlock/db.h"
#include "airlock/http.h"
#include "airlock/log.h"
#include "airlock/metrics.h"
#include "http_int.h"

static enum route
route_of(const char *url)
{
	static const struct {
		const char *path;
		enum route r;
	} routes[] = {
		{ "/rpc", R_RPC },
		{ "/mcp", R_MCP },
		{ "/healthz", R_HEALTHZ },
		{ "/readyz", R_READYZ },
		{ "/metrics", R_METRICS },
	};
	size_t i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(url, routes[i].path) == 0)
			return routes[i].r;
	return console_is_path(url) ? R_CONSOLE : R_NONE;
}

static enum MHD_Result
metrics(struct request *req)
{
	const union MHD_DaemonInfo *info;
	struct metrics_gauges g = { 0 };
	size_t len;
	char *body, *warm, *both;

	/* Summed over the HTTP threads; a connection counts from its accept. */
	info = MHD_get_daemon_info(req->srv->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	if (info != NULL)
		g.connections = info->num_connections;
	g.in_flight = atomic_load(&req->srv->inflight);
	gw_gauges(req->srv->gw, &g);
	body = metrics_render(&g, &len);
	if (body == NULL)
		return http_respond_failed(req);
	/* The warm pools' size, hits and misses. */
	if ((warm = code_warm_metrics()) != NULL) {
		if (asprintf(&both, "%s%s", body, warm) != -1) {
			free(body);
			body = both;
			len = strlen(body);
		}
		free(warm);
	}
	return http_respond(req, 200, "text/plain; version=0.0.4", body, len, NULL, NULL);
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
begin(struct http_server *srv, struct MHD_Connection *conn, const char *url, const char *method,
    void **con_cls)
{
	const union MHD_ConnectionInfo *ci;
	struct request *req;
	int is_post, is_get, status;

	if ((req = calloc(1, sizeof(*req))) == NULL) {
		/* Out of memory: answered at once; the rest of the request is discarded. */
		*con_cls = &unallocated;
		return http_queue_failed(conn, route_of(url), &status);
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
	if (ci == NULL ||
	    getnameinfo(ci->client_addr,
		ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						       : sizeof(struct sockaddr_in),
		req->client, sizeof(req->client), NULL, 0, NI_NUMERICHOST) != 0)
		strlcpy(req->client, "unknown", sizeof(req->client));
	forwarded_client(req);
	is_post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	is_get =
	    strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	req->http_method = is_post ? "POST" : is_get ? "GET" : "other";

	switch (req->route) {
	case R_NONE:
		return http_respond_plain(req, 404, "not found", NULL, NULL);
	case R_RPC:
	case R_MCP:
		if (!is_post)
			return http_respond_plain(req, 405, "method not allowed",
			    MHD_HTTP_HEADER_ALLOW, "POST");
		return http_check_post(req);
	case R_HEALTHZ:
	case R_READYZ:
	case R_METRICS:
	case R_CONSOLE:
		if (!is_get)
			return http_respond_plain(req, 405, "method not allowed",
			    MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
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
		*upload_data_size = 0; /* already answered: discard */
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t size = *upload_data_size;

		*upload_data_size = 0;
		if (req->status != 0 || req->is_short)
			return MHD_YES; /* already answered, or failed: discard */
		return http_append_body(req, upload_data, size);
	}
	if (req->status != 0)
		return MHD_YES;
	if (req->is_short)
		return http_respond_failed(req);
	if (req->in_worker) {
		if (!req->worker_done)
			return MHD_YES; /* a spurious wake-up */
		req->in_worker = 0;
		if (req->route == R_READYZ)
			goto ready;
		if (req->is_unrecorded)
			http_fail_unrecorded(req);
		if (req->route == R_MCP)
			http_mcp_status(&req->msg);
		return http_respond_rpc(req);
	}
	switch (req->route) {
	case R_HEALTHZ:
		return http_respond_json(req, 200, json_pack("{s:s}", "status", "ok"), NULL, NULL);
	case R_READYZ:
		/* Asked on a connection kept open from before SIGTERM: not ready, so a load
		 * balancer stops sending here while in-flight requests finish. */
		if (atomic_load(&req->srv->draining))
			return http_respond_json(req, 503,
			    json_pack("{s:s, s:s}", "status", "unavailable", "reason", "stopping"),
			    MHD_HTTP_HEADER_RETRY_AFTER, "1");
		/* It asks the database, so it costs the client address a unit of its rate;
		 * /healthz and /metrics answer from memory and stay free. */
		if (http_take_client(req, 1, &retry) == -1) {
			snprintf(seconds, sizeof(seconds), "%d", retry);
			return http_respond_json(req, 429,
			    json_pack("{s:s, s:s}", "status", "unavailable", "reason",
				"rate_limited"),
			    MHD_HTTP_HEADER_RETRY_AFTER, seconds);
		}
		return http_defer(req, "readyz");
	case R_METRICS:
		return metrics(req);
	case R_CONSOLE:
		return console(req);
	default:
		return http_finish_rpc(req);
	}
ready:
	if (req->is_ready)
		return http_respond_json(req, 200, json_pack("{s:s}", "status", "ready"), NULL,
		    NULL);
	return http_respond_json(req, 503,
	    json_pack("{s:s, s:s}", "status", "unavailable", "reason", "backend_unavailable"),
	    MHD_HTTP_HEADER_RETRY_AFTER, "1");
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
	line = json_pack("{s:s, s:s, s:s, s:i, s:f, s:s}", "msg", "request", "method",
	    req->http_method, "path", req->path, "status", req->status, "ms", ms, "client",
	    req->client);
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
	if (sa == (struct sockaddr *)&sa4 ? (ntohl(sa4.sin_addr.s_addr) >> 24) == 127
					  : IN6_IS_ADDR_LOOPBACK(&sa6.sin6_addr)) {
		snprintf(srv->self_origins[0], sizeof(srv->self_origins[0]),
		    sa == (struct sockaddr *)&sa4 ? "http://%s:%u" : "http://[%s]:%u",
		    cfg->listen_host, cfg->listen_port);
		snprintf(srv->self_origins[1], sizeof(srv->self_origins[1]), "http://localhost:%u",
		    cfg->listen_port);
	}
	srv->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
		MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
		(sa == (struct sockaddr *)&sa6 ? MHD_USE_IPv6 : 0),
	    cfg->listen_port, on_accept, srv, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER,
	    on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_THREAD_POOL_SIZE,
	    (unsigned int)cfg->http_threads, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)cfg->conn_timeout, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned int)cfg->max_conns, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned int)cfg->max_conns_per_client, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
	    /* Each connection's buffer for its request head and body pieces (bodies are
	     * copied out as they come, answers are separate): libmicrohttpd's 32 KiB
	     * default, wiped for every request, was a third of the process's memory with
	     * 256 connections open.  A head longer than this is answered 431. */
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16 * 1024, MHD_OPTION_END);
	if (srv->mhd == NULL) {
		log_error("cannot listen on %s:%u: %s", cfg->listen_host, cfg->listen_port,
		    strerror(errno));
		free(srv);
		return NULL;
	}
	if ((errno = pthread_create(&srv->watcher, NULL, http_watcher, srv)) != 0) {
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
