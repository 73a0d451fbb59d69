/* http_int.h: what the HTTP front's files share, and nothing outside them sees. */
/*
 * http.c (the daemon, routing, a request's life), http_respond.c (answers),
 * http_rpc.c (a POST's checks, body and JSON-RPC run), http_mcp.c (MCP's own rules),
 * http_worker.c (calls handed to the pools, the watcher of suspended connections).  A struct
 * request is made in http.c's begin and freed in its on_completed; the rest borrow it.
 */
#ifndef AIRLOCK_HTTP_INT_H
#define AIRLOCK_HTTP_INT_H

#include <sys/queue.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <microhttpd.h>

#include "airlock/db.h"
#include "airlock/http.h"

enum route { R_NONE, R_RPC, R_MCP, R_HEALTHZ, R_READYZ, R_METRICS, R_CONSOLE };

/* JSON-RPC codes of the 2026-07-28 revision of MCP (its reserved -32020..-32099). */
#define MCP_HEADER_MISMATCH (-32020)
#define MCP_UNSUPPORTED_VERSION (-32022)

struct request;
LIST_HEAD(request_list, request);

struct http_server {
	struct MHD_Daemon *mhd;
	struct gateway *gw;
	struct rpc_limits limits;
	atomic_uint inflight;	     /* requests begun and not yet completed */
	atomic_uint handed;	     /* suspended, their record handed to the audit writer */
	atomic_int draining;	     /* SIGTERM: new connections are closed at once */
	char self_origins[2][96];    /* a loopback listener's own origins, else "" */
	pthread_mutex_t watch_lock;  /* guards watched and each one's cancel */
	struct request_list watched; /* requests handed to a pool, connection suspended */
	pthread_t watcher;
	atomic_int is_stopping;
};

struct request {
	struct http_server *srv;
	struct MHD_Connection *conn;
	enum route route;
	struct timespec start;
	const char *http_method; /* static string */
	char path[64];
	char client[INET6_ADDRSTRLEN];
	char *body;
	size_t len, cap;
	int status; /* the HTTP status answered */
	int too_big;
	int in_worker; /* handed to the pool, connection suspended */
	int worker_done;
	atomic_int holds;	  /* what must end before it is resumed: its job, and
					   the audit writer when its record was handed over */
	int is_unrecorded;	  /* the handed record could not be written */
	int is_ready;		  /* /readyz: the database answered */
	int is_modern;		  /* MCP 2026-07-28: the version in params._meta */
	int fd;			  /* the connection's socket, for the watcher */
	struct db_cancel *cancel; /* the worker's connection's, while its job runs */
	int is_cancel_sent;
	LIST_ENTRY(request) watch; /* in srv->watched while in_worker */
	int is_short;		   /* out of memory for the body: answered as failed */
	struct rpc_msg msg;
	struct request_ctx ctx;
	struct pool_job job;
};

/* http_respond.c: queueing answers; each sets req->status. */
enum MHD_Result http_respond(struct request *req, int status, const char *ctype, char *body,
    size_t len, const char *hname, const char *hvalue);
enum MHD_Result http_queue_failed(struct MHD_Connection *conn, enum route route, int *status);
enum MHD_Result http_respond_failed(struct request *req);
enum MHD_Result http_respond_plain(struct request *req, int status, const char *text,
    const char *hname, const char *hvalue);
enum MHD_Result http_respond_json(struct request *req, int status, json_t *obj, const char *hname,
    const char *hvalue);
enum MHD_Result http_respond_rpc(struct request *req);

/* http_rpc.c: a POST to /rpc or /mcp, from its headers to its answer. */
const char *http_header(struct request *req, const char *name);
enum MHD_Result http_check_post(struct request *req);
enum MHD_Result http_append_body(struct request *req, const char *data, size_t size);
int http_take_client(struct request *req, unsigned n, int *retry);
enum MHD_Result http_finish_rpc(struct request *req);

/* http_mcp.c: MCP's checks of a request on /mcp and its HTTP statuses. */
int http_check_mcp(struct request *req, struct rpc_error *err);
void http_mcp_status(struct rpc_msg *msg);

/* http_worker.c: a request's calls on a pool, its connection suspended and watched. */
void *http_watcher(void *arg);
void http_fail_unrecorded(struct request *req);
enum MHD_Result http_defer(struct request *req, const char *key);

#endif
