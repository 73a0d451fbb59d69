/*
 * http_worker.c: calls that need the database, handed to a pool with their connection
 * suspended, so no HTTP thread waits on PostgreSQL; the job that runs them on a worker; the
 * audit writer's word that their record is durable; and the watcher that cancels the
 * statement of a call whose client left meanwhile.
 */
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"

/* Stops watching req (idempotent); its cancel object goes with it. */
static void
unwatch(struct request *req)
{
	pthread_mutex_lock(&req->srv->watch_lock);
	if (req->fd >= 0) {
		LIST_REMOVE(req, watch);
		req->fd = -1;
	}
	db_cancel_free(req->cancel);
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
 * client left has its statement cancelled (db_cancel_send on the worker's connection) and is
 * recorded as cancelled.  A sandboxed program runs on to its limits.
 */
void *
http_watcher(void *arg)
{
	struct http_server *srv = arg;
	struct timespec step = { 0, 50 * 1000 * 1000 };
	struct pollfd *fds = NULL, *grown;
	struct request *req;
	size_t n, cap = 0, i;

	while (!atomic_load(&srv->is_stopping)) {
		nanosleep(&step, NULL);
		pthread_mutex_lock(&srv->watch_lock);
		n = 0;
		LIST_FOREACH (req, &srv->watched, watch)
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
		LIST_FOREACH (req, &srv->watched, watch) {
			fds[i].fd = req->is_cancel_sent ? -1 : req->fd;
			fds[i].events = POLLRDHUP;
			fds[i++].revents = 0;
		}
		/* Under the lock, without waiting: a request leaves the list, and its socket
		 * may close, only under it. */
		if (n > 0 && poll(fds, (nfds_t)n, 0) > 0) {
			i = 0;
			LIST_FOREACH (req, &srv->watched, watch) {
				if (fds[i++].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
					req->is_cancel_sent = 1;
					atomic_store(&req->ctx.is_cancelled, 1);
					if (req->cancel != NULL)
						(void)db_cancel_send(req->cancel);
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
	struct db_cancel *cancel;

	atomic_store(&req->holds, 2);

	if (req->route == R_READYZ) {
		struct catalog_ref *ref = gw_catalog_get(req->srv->gw);

		/* Ready: the database answers and the tool catalog has been checked. */
		req->is_ready = 0;
		if (ref != NULL)
			req->is_ready = db_ping(db);
		gw_catalog_put(req->srv->gw, ref);
	} else {
		req->ctx.db = db;
		/* The watcher may cancel this connection's statement while the job runs.  A
		 * worker connects on its first job: connected here, the job has its cancel
		 * object from the start (a failure is the methods' to report). */
		cancel = db_cancel_new(db);
		pthread_mutex_lock(&req->srv->watch_lock);
		req->cancel = cancel;
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
		atomic_fetch_sub(&req->holds, 1); /* no record on its way */
	release(req);
}

/* The record of req's call could not be written: whatever was to be answered is replaced
 * by the refusal a call gets when its record fails (no data without its record). */
void
http_fail_unrecorded(struct request *req)
{
	struct rpc_error err = { 0 };

	audit_unrecorded(&err);
	json_decref(req->msg.response);
	req->msg.response = NULL;
	rpc_fail_all(&req->msg, &err);
	rpc_error_clear(&err);
}

/* Hands req to the pool with its connection suspended; answers 429/503 when full. */
enum MHD_Result
http_defer(struct request *req, const char *key)
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
		return http_respond_plain(req, 503, pool ? "busy" : "stopping",
		    MHD_HTTP_HEADER_RETRY_AFTER, "1");
	if (rc == -2)
		rpc_error_internal(&err);
	else if (pool == NULL)
		rpc_error_retry(&err, RPC_UNAVAILABLE, "backend_unavailable", 1,
		    "The gateway is stopping; retry on another instance");
	else
		rpc_error_retry(&err, RPC_TOO_MANY, "concurrency_limited", 1,
		    "Too many calls waiting; retry shortly");
	rpc_fail_all(&req->msg, &err);
	rpc_error_clear(&err);
	return http_respond_rpc(req);
}
