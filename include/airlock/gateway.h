/* gateway.h: the daemon's shared state and what a method sees of its request. */
/*
 * struct gateway is airlockd's for its lifetime; a catalog reference from gw_catalog_get is
 * the caller's until gw_catalog_put.
 */
#ifndef AIRLOCK_GATEWAY_H
#define AIRLOCK_GATEWAY_H

#include <pthread.h>
#include <stdatomic.h>

#include "airlock/audit.h"
#include "airlock/config.h"
#include "airlock/db.h"
#include "airlock/metrics.h"
#include "airlock/pool.h"
#include "airlock/ratelimit.h"
#include "airlock/rpc.h"
#include "airlock/tool.h"

#define GW_TENANT_CACHE 4096

/* A catalog in use: calls hold a reference, so a reload never frees one under them. */
struct catalog_ref {
	struct catalog *cat;
	unsigned refs;
};

struct gateway {
	const struct config *cfg;
	pthread_rwlock_t pools_lock; /* the pools below, NULL once stopping */
	struct pool *pool;	     /* database workers */
	struct pool *sandbox_pool;   /* code tools: their sandboxes run here */
	struct audit *audit;
	struct rl *rl;
	pthread_mutex_t lock; /* guards catalog and tenant_of */
	struct catalog_ref *catalog;
	struct {
		char token_id[16];
		char tenant[64];
	} tenant_of[GW_TENANT_CACHE]; /* direct-mapped by token id */
};

/* Returns the current catalog with a reference taken (release with gw_catalog_put). */
struct catalog_ref *gw_catalog_get(struct gateway *gw);
void gw_catalog_put(struct gateway *gw, struct catalog_ref *ref);

/* The pool a parsed message's calls run on: a single tools/call of a code tool goes to
 * the sandbox pool, everything else to the database workers. */
struct pool *gw_pool_for(struct gateway *gw, const struct rpc_msg *msg);

/* The fairness key a request's calls queue under: "tenant:NAME" when this instance has
 * seen the bearer token's tenant, else "token:ID", else (no readable token)
 * "client:ADDRESS". */
void gw_fair_key(struct gateway *gw, const char *bearer, const char *client, char *key, size_t len);

/* Remembers the tenant of token id (for gw_fair_key). */
void gw_note_tenant(struct gateway *gw, const char *token_id, const char *tenant);

/* Makes cat (stolen) the current catalog; the old one goes when its last call ends. */
void gw_catalog_set(struct gateway *gw, struct catalog *cat);

/* Fills g with the gauges /metrics shows of the daemon's state: each worker pool's
 * workers, busy workers and waiting calls, and the sealer's health.  The request counts
 * (in_flight, connections) are the HTTP layer's and left as they are. */
void gw_gauges(struct gateway *gw, struct metrics_gauges *g);

/* Per request; lives in http.c's request struct and dies with it. */
struct request_ctx {
	struct gateway *gw;
	struct db *db;		 /* the worker's connection; NULL when run inline */
	const char *bearer;	 /* the Authorization: Bearer value, or NULL */
	const char *client;	 /* the client's address, numeric */
	const char *idem_header; /* Idempotency-Key header (single requests only), or NULL */
	int is_mcp;
	int is_sandbox;		 /* running on the sandbox pool (code tools run only there) */
	char trace_id[33];	 /* the W3C trace id the request carried, or "" */
	atomic_int is_cancelled; /* the client closed its connection while the call ran */
	/* Set by the HTTP layer for a single request on a worker: the call's record is handed
	 * to the audit writer (audit_submit) instead of waited for, and on_recorded(
	 * recorded_arg, rc) lets the answer go once the record is durable. */
	void (*on_recorded)(void *arg, int rc);
	void *recorded_arg;
	int is_record_handed; /* set when it was */
};

/* MCP revisions: the stateless one, then those that begin with initialize, newest first. */
#define GW_MCP_MODERN "2026-07-28"
extern const char *const gw_mcp_versions[];    /* every one spoken here, NULL-terminated */
extern const char *const *const gw_mcp_legacy; /* those initialize offers, NULL-terminated */

/* The protocol version a request's params._meta names (borrowed), or NULL: a request of
 * the stateless revision carries it; initialize-era requests do not. */
const char *gw_meta_version(json_t *params);

/* {name, version} of this server, for a result's _meta.  Returns a new reference. */
json_t *gw_server_info(void);

/* The methods airlockd serves on /rpc and /mcp. */
extern const struct rpc_method methods_table[];

#endif
