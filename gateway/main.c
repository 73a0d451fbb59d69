/* main.c: airlockd, the gateway daemon: configuration, start-up checks, signals, shutdown. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "airlock/config.h"
#include "airlock/gateway.h"
#include "airlock/http.h"
#include "airlock/log.h"
#include "airlock/pool.h"

static volatile sig_atomic_t got_stop, got_reload;

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		got_reload = 1;
	else
		got_stop = 1;
}

/* Loads and checks the tool catalog.  Returns a new catalog, or NULL (logged). */
static struct catalog *
load_catalog(const struct config *cfg)
{
	struct catalog *cat = NULL;
	char err[1024];
	PGconn *conn;

	conn = PQconnectdb(cfg->db);
	if (PQstatus(conn) != CONNECTION_OK) {
		log_error("cannot check the tool catalog: database unavailable: %s",
		    PQerrorMessage(conn));
		goto out;
	}
	if ((cat = tool_load(cfg->tools_dir, conn, err, sizeof(err))) == NULL)
		log_error("tool catalog refused: %s", err);
	else
		log_json(LOG_LVL_INFO, json_pack("{s:s, s:s, s:I}", "msg", "tool catalog loaded",
		    "dir", cfg->tools_dir, "tools", (json_int_t)cat->n));
out:
	PQfinish(conn);
	return cat;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct gateway gw;
	struct http_server *srv;
	struct catalog *cat;
	struct sigaction sa;
	sigset_t mask, old;
	int rc;

	if ((rc = config_parse(&cfg, argc, argv)) != 0)
		return rc > 0 ? 0 : EX_USAGE;
	if (cfg.verbose)
		log_set_level(LOG_LVL_DEBUG);
	signal(SIGPIPE, SIG_IGN);

	memset(&gw, 0, sizeof(gw));
	gw.cfg = &cfg;
	pthread_mutex_init(&gw.lock, NULL);
	if ((cat = load_catalog(&cfg)) == NULL)
		return EX_CONFIG;
	gw_catalog_set(&gw, cat);
	gw.rl = rl_create();
	gw.audit = audit_start(cfg.db);
	gw.pool = pool_create(cfg.db_workers, cfg.db, cfg.queue_max, cfg.queue_per_key);
	if (gw.rl == NULL || gw.audit == NULL || gw.pool == NULL) {
		log_error("cannot start the database workers");
		return EX_OSERR;
	}
	/* Block the stop signals in every thread but this one, which waits for them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, &old);
	if ((srv = http_start(&gw)) == NULL) {
		pool_destroy(gw.pool);
		return EX_UNAVAILABLE;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	log_json(LOG_LVL_INFO, json_pack("{s:s, s:s, s:i, s:i, s:i}", "msg", "listening",
	    "host", cfg.listen_host, "port", cfg.listen_port, "http_threads", cfg.http_threads,
	    "db_workers", cfg.db_workers));
	while (!got_stop) {
		sigsuspend(&old);
		if (got_reload) {
			/* A bad reload keeps the catalog in use. */
			got_reload = 0;
			if ((cat = load_catalog(&cfg)) != NULL)
				gw_catalog_set(&gw, cat);
			else
				log_warn("reload failed: keeping the current tool catalog");
		}
	}
	log_info("stopping: finishing in-flight requests");
	http_stop(srv, 10000);
	audit_stop(gw.audit);
	rl_free(gw.rl);
	gw_catalog_set(&gw, NULL);
	log_info("stopped");
	return 0;
}
