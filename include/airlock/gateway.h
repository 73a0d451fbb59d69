/* gateway.h: the daemon's shared state and what a method sees of its request. */
#ifndef AIRLOCK_GATEWAY_H
#define AIRLOCK_GATEWAY_H

#include "airlock/config.h"
#include "airlock/db.h"
#include "airlock/pool.h"
#include "airlock/rpc.h"

struct gateway {
	const struct config *cfg;
	struct pool *pool;
};

/* Per request; lives in http.c's request struct and dies with it. */
struct request_ctx {
	struct gateway *gw;
	struct db *db;			/* the worker's connection; NULL when run inline */
	const char *bearer;		/* the Authorization: Bearer value, or NULL */
	const char *client;		/* the client's address, numeric */
	const char *idem_header;	/* Idempotency-Key header (single requests only), or NULL */
	int is_mcp;
};

/* The methods airlockd serves on /rpc and /mcp. */
extern const struct rpc_method methods_table[];

#endif
