/* config.h: airlockd's settings, from flags and the environment. */
#ifndef AIRLOCK_CONFIG_H
#define AIRLOCK_CONFIG_H

#include <limits.h>
#include <stddef.h>

#define CONFIG_MAX_ORIGINS 16

struct config {
	char listen_host[64];
	unsigned short listen_port;
	char tools_dir[PATH_MAX];
	char db[1024];			/* libpq conninfo or URL; "" means libpq's environment */
	char admin_key_file[PATH_MAX];
	char trust_proxy[64];		/* peer whose X-Forwarded-For names the client, or "" */
	size_t max_body;		/* bytes of a request body */
	size_t max_depth;		/* JSON nesting */
	size_t max_batch;		/* calls in one batch */
	unsigned conn_timeout;		/* seconds a connection may idle */
	unsigned grace;			/* seconds in-flight requests get at shutdown */
	unsigned max_conns;
	unsigned max_conns_per_client;	/* connections from one address at once */
	unsigned http_threads;
	unsigned db_workers;
	unsigned queue_max;		/* jobs waiting for a worker, in all */
	unsigned queue_per_key;		/* jobs waiting for a worker, per tenant */
	long long key_ttl;		/* seconds an idempotency key is remembered */
	unsigned key_waiters;		/* duplicates waiting on one key, per instance */
	unsigned key_waiters_tenant;	/* keyed writes in flight per tenant, per instance */
	unsigned sandboxes;		/* code steps running at once, in all */
	unsigned sandboxes_per_tenant;	/* code steps running at once, per tenant */
	unsigned warm_max;		/* sandboxes started ahead, in all (0: none) */
	unsigned warm_per_tenant;	/* warm sandboxes one tenant may take at once */
	double rate_client, burst_client;	/* per client address, before authentication */
	double rate_token, burst_token;		/* per token */
	double rate_tenant, burst_tenant;	/* per tenant, unless the tenant sets its own */
	char origins[CONFIG_MAX_ORIGINS][256];	/* Origin values /mcp accepts */
	unsigned n_origins;
	int verbose;
};

/* Sets the defaults, then reads the environment (AIRLOCK_*), then argv.
 * Returns 0; on bad usage prints a message to stderr and returns -1;
 * returns 1 when --help was shown. */
int config_parse(struct config *cfg, int argc, char **argv) __attribute__((warn_unused_result));

#endif
