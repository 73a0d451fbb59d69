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

static volatile sig_atomic_t got_stop;

static void
on_signal(int sig)
{
	(void)sig;
	got_stop = 1;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct gateway gw;
	struct http_server *srv;
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
	gw.pool = pool_create(cfg.db_workers, cfg.db, cfg.queue_max, cfg.queue_per_key);
	if (gw.pool == NULL) {
		log_error("cannot start the database workers");
		return EX_OSERR;
	}
	/* Block the stop signals in every thread but this one, which waits for them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, &old);
	if ((srv = http_start(&gw)) == NULL) {
		pool_destroy(gw.pool);
		return EX_UNAVAILABLE;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	log_json(LOG_LVL_INFO, json_pack("{s:s, s:s, s:i, s:i, s:i}", "msg", "listening",
	    "host", cfg.listen_host, "port", cfg.listen_port, "http_threads", cfg.http_threads,
	    "db_workers", cfg.db_workers));
	while (!got_stop)
		sigsuspend(&old);
	log_info("stopping: finishing in-flight requests");
	http_stop(srv, 10000);
	log_info("stopped");
	return 0;
}
