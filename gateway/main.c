/* main.c: airlockd, the gateway daemon: configuration, start-up checks, signals, shutdown. */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "airlock/auth.h"
#include "airlock/code.h"
#include "airlock/config.h"
#include "airlock/doctor.h"
#include "airlock/gateway.h"
#include "airlock/http.h"
#include "airlock/idem.h"
#include "airlock/log.h"
#include "airlock/pool.h"
#include "airlock/write.h"
#include "airlock/seal.h"

#define CATALOG_RETRY_S 2 /* seconds between tries while the database is down */

enum load_status { LOAD_OK, LOAD_DB_DOWN, LOAD_REFUSED };

/*
 * --check-config: what can be checked without starting: the files the settings name (the
 * secrets' modes, the tool catalog's directory) and the listen address.  The manifests
 * themselves need the database: airlockctl tool check.  Returns 0 or EX_CONFIG.
 */
static int
check_config(struct config *cfg)
{
	unsigned char addr[16];
	struct stat st;

	if (config_load_secrets(cfg) == -1)
		return EX_CONFIG;
	if (stat(cfg->tools_dir, &st) == -1) {
		fprintf(stderr, "airlockd: tools %s: %s\n", cfg->tools_dir, strerror(errno));
		return EX_CONFIG;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "airlockd: tools %s: not a directory\n", cfg->tools_dir);
		return EX_CONFIG;
	}
	if (inet_pton(AF_INET, cfg->listen_host, addr) != 1 &&
	    inet_pton(AF_INET6, cfg->listen_host, addr) != 1) {
		fprintf(stderr,
		    "airlockd: listen address %s is not a numeric IPv4 or IPv6 "
		    "address\n",
		    cfg->listen_host);
		return EX_CONFIG;
	}
	printf("airlockd: configuration ok%s%s\n", cfg->config_file[0] ? ": " : "",
	    cfg->config_file);
	return 0;
}

/*
 * Loads and checks the tool catalog (the checks need the database).  Returns LOAD_OK
 * with a new catalog in *out; LOAD_DB_DOWN when the database cannot be reached; or
 * LOAD_REFUSED when a manifest is at fault (logged, naming the file and the fault) or the
 * database fails the self-check (logged, naming each fault).  A database that is down is
 * logged once until a load succeeds, not at every retry.
 */
static enum load_status
load_catalog(const struct config *cfg, struct catalog **out)
{
	static int is_down_logged;
	enum load_status st = LOAD_OK;
	char err[1024];
	PGconn *conn;

	*out = NULL;
	conn = PQconnectdb(cfg->db);
	if (PQstatus(conn) != CONNECTION_OK) {
		log_seterr(err, sizeof(err), "%s", PQerrorMessage(conn));
		log_msg(is_down_logged ? LOG_LVL_DEBUG : LOG_LVL_WARN,
		    "cannot check the tool "
		    "catalog yet: database unavailable: %s (retried every %d s)",
		    err, CATALOG_RETRY_S);
		is_down_logged = 1;
		st = LOAD_DB_DOWN;
	} else if (doc_gate(conn, err, sizeof(err)) == -1) {
		/* The containment self-check (airlockctl doctor's database checks). */
		log_error("refusing to serve: self-check failed: %s", err);
		st = PQstatus(conn) == CONNECTION_OK ? LOAD_REFUSED : LOAD_DB_DOWN;
	} else if ((*out = tool_load(cfg->tools_dir, conn, err, sizeof(err))) == NULL) {
		log_error("tool catalog refused: %s", err);
		st = PQstatus(conn) == CONNECTION_OK ? LOAD_REFUSED : LOAD_DB_DOWN;
	} else {
		is_down_logged = 0;
		log_json(LOG_LVL_INFO,
		    json_pack("{s:s, s:s, s:I}", "msg", "tool catalog loaded", "dir",
			cfg->tools_dir, "tools", (json_int_t)(*out)->n));
	}
	PQfinish(conn);
	return st;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct gateway gw;
	struct http_server *srv;
	struct catalog *cat;
	struct seal *sealer;
	struct timespec retry = { CATALOG_RETRY_S, 0 };
	enum load_status st;
	sigset_t mask;
	int rc, sig, has_catalog;

	rpc_alloc_init(); /* before any JSON is made */
	rc = config_parse(&cfg, argc, argv);
	if (rc > 0)
		return 0;
	if (rc < 0)
		return rc == -2 || cfg.check_only ? EX_CONFIG : EX_USAGE;
	if (cfg.check_only)
		return check_config(&cfg);
	if (cfg.verbose)
		log_set_level(LOG_LVL_DEBUG);
	if (config_load_secrets(&cfg) == -1)
		return EX_CONFIG;
	if (cfg.db_password_in_argv)
		log_warn(
		    "the database password is on the command line (--db), where any local "
		    "user can read it; it was wiped from this process's arguments once read, but "
		    "use a libpq passfile (passfile= or PGPASSFILE), AIRLOCK_DB or --db-file");
	signal(SIGPIPE, SIG_IGN);
	/* Block the signals before any thread starts, so every thread inherits the mask and
	 * only this one takes them, with sigtimedwait. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);

	idem_configure(cfg.key_ttl, cfg.key_waiters, cfg.key_waiters_tenant);
	memset(&gw, 0, sizeof(gw));
	gw.cfg = &cfg;
	pthread_mutex_init(&gw.lock, NULL);
	pthread_rwlock_init(&gw.pools_lock, NULL);
	/* A faulty manifest stops the start; a database that is down only delays the catalog
	 * (no tool is served and /readyz says 503 until it is checked). */
	if ((st = load_catalog(&cfg, &cat)) == LOAD_REFUSED)
		return EX_CONFIG;
	has_catalog = st == LOAD_OK;
	if (has_catalog)
		gw_catalog_set(&gw, cat);
	gw.rl = rl_create();
	gw.audit = audit_start(cfg.db);
	gw.pool = pool_create(cfg.db_workers, cfg.db, cfg.queue_max, cfg.queue_per_key);
	/* Code steps: at most cfg.sandboxes at once; a token may queue as many as a tenant
	 * may run (the per-tenant cap itself is checked when a step starts). */
	gw.sandbox_pool =
	    pool_create(cfg.sandboxes, cfg.db, cfg.sandboxes * 4, cfg.sandboxes_per_tenant);
	if (gw.rl == NULL || gw.audit == NULL || gw.pool == NULL || gw.sandbox_pool == NULL) {
		log_error("cannot start the database workers");
		return EX_OSERR;
	}
	/* Revocations and tenants' changes drop the principals kept in memory at once. */
	if (auth_watch_start(cfg.db) == -1)
		log_warn("revocations reach this instance within %d ms only", AUTH_CACHE_TTL_MS);
	/* The audit sealer; without it, airlockctl audit seal still seals. */
	if ((sealer = seal_start(cfg.db)) == NULL)
		log_warn("cannot start the audit sealer");
	if ((srv = http_start(&gw)) == NULL) {
		pool_destroy(gw.pool);
		pool_destroy(gw.sandbox_pool);
		return EX_UNAVAILABLE;
	}
	/* Warm sandboxes for the code tools that ask for them; calls start cold without. */
	(void)code_warm_start(&gw);
	log_json(LOG_LVL_INFO,
	    json_pack("{s:s, s:s, s:i, s:i, s:i}", "msg", "listening", "host", cfg.listen_host,
		"port", cfg.listen_port, "http_threads", cfg.http_threads, "db_workers",
		cfg.db_workers));
	for (;;) {
		sig = sigtimedwait(&mask, NULL, has_catalog ? NULL : &retry);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig != SIGHUP && (sig != -1 || has_catalog))
			continue;
		/* SIGHUP, or a retry while the database was down.  A bad reload keeps the
		 * catalog in use. */
		if (load_catalog(&cfg, &cat) == LOAD_OK) {
			gw_catalog_set(&gw, cat);
			has_catalog = 1;
		} else if (has_catalog)
			log_warn("reload failed: keeping the current tool catalog");
	}
	http_stop(srv, cfg.grace * 1000);
	code_warm_stop();
	seal_stop(sealer);
	audit_stop(gw.audit);
	auth_watch_stop();
	rl_free(gw.rl);
	gw_catalog_set(&gw, NULL);
	log_info("stopped");
	return 0;
}
