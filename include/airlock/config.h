/* config.h: airlockd's settings, from a configuration file, the environment and flags. */
/* config.c allocates nothing: a struct config is the caller's and holds no heap memory. */
#ifndef AIRLOCK_CONFIG_H
#define AIRLOCK_CONFIG_H

#include <limits.h>
#include <stddef.h>

#define CONFIG_MAX_ORIGINS 16

struct config {
	char listen_host[64];
	unsigned short listen_port;
	char tools_dir[PATH_MAX];
	char db[1024];		 /* libpq conninfo or URL; "" means libpq's environment */
	char db_file[PATH_MAX];	 /* a file holding db, read by config_load_secrets */
	int db_password_in_argv; /* --db held a password (now wiped from argv) */
	char admin_key_file[PATH_MAX];
	char trust_proxy[64];  /* peer whose X-Forwarded-For names the client, or "" */
	size_t max_body;       /* bytes of a request body */
	size_t max_depth;      /* JSON nesting */
	size_t max_batch;      /* calls in one batch */
	unsigned conn_timeout; /* seconds a connection may idle */
	unsigned grace;	       /* seconds in-flight requests get at shutdown */
	unsigned max_conns;
	unsigned max_conns_per_client; /* connections from one address at once */
	unsigned http_threads;
	unsigned db_workers;
	unsigned queue_max;		       /* jobs waiting for a worker, in all */
	unsigned queue_per_key;		       /* jobs waiting for a worker, per tenant */
	long long key_ttl;		       /* seconds an idempotency key is remembered */
	unsigned key_waiters;		       /* duplicates waiting on one key, per instance */
	unsigned key_waiters_tenant;	       /* keyed writes in flight per tenant, per instance */
	unsigned sandboxes;		       /* code steps running at once, in all */
	unsigned sandboxes_per_tenant;	       /* code steps running at once, per tenant */
	unsigned warm_max;		       /* sandboxes started ahead, in all (0: none) */
	unsigned warm_per_tenant;	       /* warm sandboxes one tenant may take at once */
	double rate_client, burst_client;      /* per client address, before authentication */
	double rate_token, burst_token;	       /* per token */
	double rate_tenant, burst_tenant;      /* per tenant, unless the tenant sets its own */
	char origins[CONFIG_MAX_ORIGINS][256]; /* Origin values /mcp accepts */
	unsigned n_origins;
	int verbose;
	char config_file[PATH_MAX]; /* the file read first, or "" */
	int check_only;		    /* --check-config: check, then exit */
};

/*
 * Sets the defaults, then reads the configuration file (--config FILE, else
 * $AIRLOCK_CONFIG), then the environment (AIRLOCK_*), then argv; each overrides the one
 * before.  Returns 0; 1 when --help or --version was answered; -1 after a message on
 * stderr for bad usage or a bad value in the environment or flags; -2 after a message
 * naming the file and line when the configuration file is at fault (the caller exits 78).
 */
int config_parse(struct config *cfg, int argc, char **argv) __attribute__((warn_unused_result));

/*
 * Checks and reads the files that hold secrets: the admin key file (when set and present)
 * and the database file (when set, read into cfg->db) must be regular files that neither
 * group nor others may read or write.  Returns 0, or -1 after a message on stderr naming
 * the file (the caller exits 78).
 */
int config_load_secrets(struct config *cfg) __attribute__((warn_unused_result));

#endif
