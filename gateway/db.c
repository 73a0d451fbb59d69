/* db.c: a worker's PostgreSQL connection: connect lazily, notice breakage, reconnect. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "airlock/db.h"
#include "airlock/log.h"
#include "airlock/rpc.h"

/* While the database stays down, a line this often says so, with the count. */
#define OUTAGE_REPORT_S 60

/*
 * The process's view of the database: when it is down, every worker, the audit writer and
 * the sealer fail on every attempt, many times a millisecond under load.  The first
 * failure is logged with libpq's reason, the rest only counted; a line every
 * OUTAGE_REPORT_S says it lasts, and the first connection that succeeds says it is back,
 * with how long it was down and how many attempts failed.
 */
static pthread_mutex_t outage_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int is_down;
	unsigned long long failures; /* attempts failed since it went down */
	struct timespec since, reported;
} outage;

static double
seconds_since(const struct timespec *t, const struct timespec *now)
{
	return (double)(now->tv_sec - t->tv_sec) + (double)(now->tv_nsec - t->tv_nsec) / 1e9;
}

/* Counts a failed attempt; what says so (once) is what, with conn's message. */
static void
outage_failed(const char *what, const PGconn *conn)
{
	struct timespec now;
	unsigned long long n = 0;
	double down = 0;
	int is_first = 0;
	char why[512];

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&outage_lock);
	if (!outage.is_down) {
		outage.is_down = 1;
		outage.failures = 1;
		outage.since = outage.reported = now;
		is_first = 1;
	} else {
		outage.failures++;
		if (seconds_since(&outage.reported, &now) >= OUTAGE_REPORT_S) {
			outage.reported = now;
			n = outage.failures;
			down = seconds_since(&outage.since, &now);
		}
	}
	pthread_mutex_unlock(&outage_lock);
	/* libpq's message may name the host; it goes to the log, never to a client. */
	if (is_first) {
		log_seterr(why, sizeof(why), "%s",
		    conn != NULL ? PQerrorMessage(conn) : "out of memory");
		log_warn("%s: %s (repeats are counted, not logged, until it is back)", what, why);
	} else if (n > 0)
		log_json(LOG_LVL_WARN,
		    json_pack("{s:s, s:f, s:I}", "msg", "database still unavailable", "down_s",
			down, "failures", (json_int_t)n));
}

/* A connection succeeded: ends an outage, if there was one, with one line. */
static void
outage_ended(void)
{
	struct timespec now;
	unsigned long long n;
	double down;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&outage_lock);
	if (!outage.is_down) {
		pthread_mutex_unlock(&outage_lock);
		return;
	}
	outage.is_down = 0;
	n = outage.failures;
	down = seconds_since(&outage.since, &now);
	pthread_mutex_unlock(&outage_lock);
	log_json(LOG_LVL_INFO,
	    json_pack("{s:s, s:f, s:I}", "msg", "database back", "down_s", down, "failures",
		(json_int_t)n));
}

void
db_init(struct db *db, const char *conninfo)
{
	memset(db, 0, sizeof(*db));
	db->conninfo = conninfo;
}

int
db_ensure(struct db *db)
{
	PGresult *res;

	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK &&
	    PQtransactionStatus(db->conn) == PQTRANS_IDLE)
		return 0;
	db_close(db);
	db->conn = PQconnectdb(db->conninfo);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		outage_failed("database unavailable", db->conn);
		PQfinish(db->conn);
		db->conn = NULL;
		return -1;
	}
	outage_ended();
	db->generation++;
	/* Results are rendered by type (tool_value_json): fix the formats it reads. */
	res = PQexec(db->conn,
	    "SET datestyle = 'ISO'; SET timezone = 'UTC'; "
	    "SET intervalstyle = 'iso_8601'; SET application_name = 'airlockd'");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_warn("cannot set up the session: %s", PQresultErrorMessage(res));
		PQclear(res);
		db_close(db);
		return -1;
	}
	PQclear(res);
	return 0;
}

int
db_prepare(struct db *db, const char *name, const char *sql, PGresult **res)
{
	size_t i;

	*res = NULL;
	for (i = 0; i < db->n_prepared; i++)
		if (strcmp(db->prepared[i], name) == 0)
			return 0;
	*res = PQprepare(db->conn, name, sql, 0, NULL);
	if (PQresultStatus(*res) != PGRES_COMMAND_OK)
		return -1;
	PQclear(*res);
	*res = NULL;
	if (db->n_prepared == DB_MAX_PREPARED) {
		/* Full: start over with an empty set of statements on this connection. */
		PQclear(PQexec(db->conn, "DEALLOCATE ALL"));
		for (i = 0; i < db->n_prepared; i++)
			free(db->prepared[i]);
		db->n_prepared = 0;
		return db_prepare(db, name, sql, res);
	}
	if ((db->prepared[db->n_prepared] = strdup(name)) != NULL)
		db->n_prepared++;
	return 0;
}

PGresult *
db_exec(struct db *db, const char *name, const char *sql, int n, const char *const *values)
{
	PGresult *res = NULL;
	int attempt;

	/* A connection the server dropped (a restart) looks fine until used: when the first
	 * try finds it gone, one fresh connection gets the statement again. */
	for (attempt = 0; attempt < 2; attempt++) {
		PQclear(res);
		res = NULL;
		if (db->conn == NULL && db_ensure(db) == -1)
			break;
		if (db_prepare(db, name, sql, &res) == 0)
			res = PQexecPrepared(db->conn, name, n, values, NULL, NULL, 0);
		if (res != NULL && PQresultStatus(res) != PGRES_FATAL_ERROR)
			return res;
		if (!db_is_connection_lost(db))
			break;
		db_close(db);
	}
	return res ? res : PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
}

/* Names of columns asked for and missing, each logged once (a few are enough: any is a
 * bug to fix). */
#define MISSING_KEPT 16
static pthread_mutex_t missing_lock = PTHREAD_MUTEX_INITIALIZER;
static char missing[MISSING_KEPT][64];
static size_t n_missing;

/* The number of the column named column in res, or -1 (logged the first time) when res has
 * none so named. */
static int
column_number(const PGresult *res, const char *column)
{
	size_t i;
	int col, is_new = 1;

	if (res == NULL)
		return -1;
	if (column != NULL && (col = PQfnumber(res, column)) >= 0)
		return col;
	if (column == NULL)
		column = "(null)";
	pthread_mutex_lock(&missing_lock);
	for (i = 0; i < n_missing && is_new; i++)
		is_new = strcmp(missing[i], column) != 0;
	if (is_new && n_missing < MISSING_KEPT)
		strlcpy(missing[n_missing++], column, sizeof(missing[0]));
	pthread_mutex_unlock(&missing_lock);
	if (is_new)
		log_error("a result has no column named %s (%d columns)", column, PQnfields(res));
	return -1;
}

const char *
db_value(const PGresult *res, int row, const char *column)
{
	int col = column_number(res, column);

	return col == -1 || PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

const char *
db_text(const PGresult *res, int row, const char *column)
{
	const char *v = db_value(res, row, column);

	return v != NULL ? v : "";
}

int
db_is_null(const PGresult *res, int row, const char *column)
{
	return db_value(res, row, column) == NULL;
}

int
db_is_connection_lost(const struct db *db)
{
	return db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK;
}

void
db_close(struct db *db)
{
	size_t i;

	if (db->conn != NULL)
		PQfinish(db->conn);
	db->conn = NULL;
	for (i = 0; i < db->n_prepared; i++)
		free(db->prepared[i]);
	db->n_prepared = 0;
}

int
db_ping(struct db *db)
{
	PGresult *res;
	int is_up;

	if (db_ensure(db) == -1)
		return 0;
	res = PQexec(db->conn, "SELECT 1");
	is_up = PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	return is_up;
}

/* libpq's cancel object, under a name of this module's. */
struct db_cancel {
	PGcancel *pg;
};

struct db_cancel *
db_cancel_new(struct db *db)
{
	struct db_cancel *c;

	if (db->conn == NULL && db_ensure(db) == -1)
		return NULL;
	if ((c = malloc(sizeof(*c))) == NULL)
		return NULL;
	if ((c->pg = PQgetCancel(db->conn)) == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

int
db_cancel_send(struct db_cancel *c)
{
	char errbuf[256];

	return PQcancel(c->pg, errbuf, sizeof(errbuf)) == 1 ? 0 : -1;
}

void
db_cancel_free(struct db_cancel *c)
{
	if (c == NULL)
		return;
	PQfreeCancel(c->pg);
	free(c);
}

int
db_pipeline(struct db *db, struct db_query *q, size_t n)
{
	PGresult *res;
	size_t i;
	int ok;

	for (i = 0; i < n; i++)
		q[i].res = NULL;
	if (PQenterPipelineMode(db->conn) != 1)
		goto lost;
	for (i = 0; i < n; i++) {
		ok = q[i].name != NULL
		    ? PQsendQueryPrepared(db->conn, q[i].name, q[i].n, q[i].values, NULL, NULL, 0)
		    : PQsendQueryParams(db->conn, q[i].sql, q[i].n, NULL, q[i].values, NULL, NULL,
			  0);
		if (!ok)
			goto lost;
	}
	if (PQpipelineSync(db->conn) != 1)
		goto lost;
	for (i = 0; i < n; i++) {
		if ((q[i].res = PQgetResult(db->conn)) == NULL)
			goto lost;
		/* Each statement's results end with a NULL. */
		while ((res = PQgetResult(db->conn)) != NULL)
			PQclear(res);
	}
	res = PQgetResult(db->conn);
	ok = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
	PQclear(res);
	if (!ok || PQexitPipelineMode(db->conn) != 1)
		goto lost;
	return 0;
lost:
	outage_failed("database connection lost", db->conn);
	for (i = 0; i < n; i++) {
		PQclear(q[i].res);
		q[i].res = NULL;
	}
	db_close(db);
	return -1;
}

void
db_unavailable(struct rpc_error *err)
{
	rpc_error_retry(err, RPC_UNAVAILABLE, "backend_unavailable", 1,
	    "The database is unavailable; retry shortly");
}

int
db_has_password(const char *conninfo)
{
	PQconninfoOption *opts, *o;
	int found = 0;

	if ((opts = PQconninfoParse(conninfo, NULL)) == NULL)
		return 0; /* not parseable: libpq says why when it connects */
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0')
			found = 1;
	PQconninfoFree(opts);
	return found;
}

long long
db_sweep(struct db *db, const char *sql, const char *what)
{
	PGresult *res;
	long long n = -1;

	if (db_ensure(db) == -1)
		return -1;
	res = PQexec(db->conn, sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		n = strtoll(db_text(res, 0, "swept"), NULL, 10);
	else
		log_warn("sweeping %s: %s", what, PQresultErrorMessage(res));
	PQclear(res);
	return n;
}
