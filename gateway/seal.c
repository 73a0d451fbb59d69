/*
 * seal.c: the sealer.  The work is one call of airlock.seal_round() (migrations/0011), which
 * takes an advisory lock so that one sealer at a time, across every airlockd and
 * airlockctl, links the committed records not yet sealed into a checkpoint.  airlockd runs
 * it from a thread every second; airlockctl audit seal runs it once.  Advisory locks are not
 * permission-checked: any session (a leaked gateway credential's too) can hold that lock and
 * stop sealing.  That cannot be prevented, only seen: when airlockd's rounds have not run
 * for SEAL_STALL_MS, it says so in the log, once, and in /metrics, until they run again.
 */
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "airlock/db.h"
#include "airlock/idem.h"
#include "airlock/log.h"
#include "airlock/write.h"
#include "airlock/seal.h"

#define KEY_SWEEP_S 60
#define WARN_EVERY_S 60 /* a failing sealer says so once a minute, not every second */

struct seal {
	time_t last_sweep; /* when expired idempotency keys were last swept */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stopping;
	pthread_t thread;
	struct db db;
};

static const char seal_sql[] =
    "SELECT checkpoint_id, records, blocked_by FROM airlock.seal_round($1::boolean)";

/* The daemon's sealer, for /metrics: when its last round ran (CLOCK_MONOTONIC ms; 0 before
 * the sealer starts), and whether the log has said it is stalled. */
static atomic_llong last_round_ms;
static atomic_int is_stalled_now;

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
seal_health(double *lag_seconds, int *is_stalled)
{
	long long last = atomic_load(&last_round_ms);

	long long lag = last > 0 ? now_ms() - last : 0;

	/* From the clock, not the last round's verdict: a round that hangs is a stall too. */
	*lag_seconds = (double)lag / 1000.0;
	*is_stalled = lag >= SEAL_STALL_MS;
}

int
seal_run(PGconn *conn, int is_full, long long *checkpoint, long long *records, char *err,
    size_t errlen)
{
	const char *values[1] = { is_full ? "true" : "false" };
	PGresult *res;
	int rc = -1;

	*checkpoint = *records = 0;
	res = PQexecParams(conn, seal_sql, 1, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s",
		    conn != NULL && PQstatus(conn) == CONNECTION_OK ? PQresultErrorMessage(res)
								    : "database unavailable");
		goto out;
	}
	if (PQntuples(res) == 1 && !db_is_null(res, 0, "blocked_by")) {
		snprintf(err, errlen, "the sealer's lock is held by another session (pid %s)",
		    db_text(res, 0, "blocked_by"));
		goto out;
	}
	if (PQntuples(res) == 1) {
		*checkpoint = strtoll(db_text(res, 0, "checkpoint_id"), NULL, 10);
		*records = strtoll(db_text(res, 0, "records"), NULL, 10);
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* Raises the alarm once the last round that ran is SEAL_STALL_MS old, and lowers it
 * when one runs again; each said once in the log. */
static void
watch(const char *why)
{
	long long lag = now_ms() - atomic_load(&last_round_ms);

	if (why == NULL) {
		if (atomic_exchange(&is_stalled_now, 0))
			log_warn("audit sealer: sealing again (alarm cleared)");
		return;
	}
	if (lag >= SEAL_STALL_MS && !atomic_exchange(&is_stalled_now, 1))
		log_error("audit sealer: ALARM: no sealing round for %lld s: %s", lag / 1000, why);
}

/* One round; failures are logged at most once a minute. */
static void
seal_once(struct seal *s, time_t *last_warn)
{
	long long id, n;
	char err[512];
	time_t now = time(NULL);

	if (db_ensure(&s->db) == -1) {
		watch("the database is unreachable");
		return;
	}
	if (seal_run(s->db.conn, 0, &id, &n, err, sizeof(err)) == -1) {
		err[strcspn(err, "\n")] = '\0';
		watch(err);
		if (now - *last_warn >= WARN_EVERY_S) {
			log_warn("audit sealer: %s", err);
			*last_warn = now;
		}
		return;
	}
	atomic_store(&last_round_ms, now_ms());
	watch(NULL);
	if (id > 0)
		log_msg(LOG_LVL_DEBUG, "audit sealer: checkpoint %lld, %lld records", id, n);
	/* The same background round sweeps expired idempotency keys and plans, once a minute. */
	if (now - s->last_sweep >= KEY_SWEEP_S) {
		s->last_sweep = now;
		if ((n = idem_sweep(&s->db)) > 0)
			log_msg(LOG_LVL_DEBUG, "swept %lld expired idempotency keys", n);
		if ((n = write_sweep_plans(&s->db)) > 0)
			log_msg(LOG_LVL_DEBUG, "swept %lld expired plans", n);
	}
}

static void *
sealer(void *arg)
{
	struct seal *s = arg;
	struct timespec deadline;
	time_t last_warn = 0;
	sigset_t all;
	int stopping;

	/* Signals belong to the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		pthread_mutex_lock(&s->lock);
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += SEAL_INTERVAL_MS / 1000;
		deadline.tv_nsec += (long)(SEAL_INTERVAL_MS % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		while (!s->stopping &&
		    pthread_cond_timedwait(&s->wake, &s->lock, &deadline) != ETIMEDOUT)
			;
		stopping = s->stopping;
		pthread_mutex_unlock(&s->lock);
		/* The last round runs after stopping was asked, so what was just committed is
		 * sealed before the daemon exits. */
		seal_once(s, &last_warn);
		if (stopping)
			break;
	}
	return NULL;
}

struct seal *
seal_start(const char *conninfo)
{
	struct seal *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	db_init(&s->db, conninfo);
	atomic_store(&last_round_ms, now_ms());
	if (pthread_create(&s->thread, NULL, sealer, s) != 0) {
		pthread_cond_destroy(&s->wake);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return NULL;
	}
	return s;
}

void
seal_stop(struct seal *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	db_close(&s->db);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
