/* db.h: one PostgreSQL connection per database worker, reconnected when it breaks. */
/*
 * A struct db owns its connection until db_close; a PGresult db_exec returns is the
 * caller's to PQclear.
 */
#ifndef AIRLOCK_DB_H
#define AIRLOCK_DB_H

#include <libpq-fe.h>

#define DB_MAX_PREPARED 256

struct db {
	PGconn *conn;			 /* NULL or a connection in CONNECTION_OK */
	const char *conninfo;		 /* borrowed */
	unsigned generation;		 /* bumped on every new connection */
	char *prepared[DB_MAX_PREPARED]; /* statement names prepared on this connection */
	size_t n_prepared;
};

/* Sets up db for conninfo (borrowed); does not connect yet. */
void db_init(struct db *db, const char *conninfo);

/* Returns 0 with db->conn usable, reconnecting when the old one broke; -1 when the
 * database cannot be reached (the reason is logged). */
int db_ensure(struct db *db) __attribute__((warn_unused_result));

/*
 * Prepares sql as name on this connection unless it already is (names must change
 * when their text does).  Returns 0, or -1 with the result of the failed PREPARE in
 * *res (the caller PQclears it; NULL when the connection is gone).
 */
int db_prepare(struct db *db, const char *name, const char *sql, PGresult **res)
    __attribute__((warn_unused_result));

/* Prepares (once) and runs a statement with text parameters.  Returns a new
 * PGresult, never NULL unless out of memory; check its status. */
PGresult *db_exec(struct db *db, const char *name, const char *sql, int n,
    const char *const *values);

/* One statement of a pipeline: prepared (name) or not (sql only). */
struct db_query {
	const char *name; /* a statement prepared with db_prepare, or NULL */
	const char *sql;  /* used when name is NULL */
	int n;
	const char *const *values;
	PGresult *res; /* out: the statement's result (the caller PQclears) */
};

/*
 * Sends the statements in one pipeline ending in one Sync, so they run in one implicit
 * transaction that an error rolls back (and cannot leave open), then collects each
 * result.  Returns 0 when every result came back (check their statuses: after a
 * failure the rest are PGRES_PIPELINE_ABORTED), or -1 when the connection broke
 * (every res NULL, the connection closed).
 */
int db_pipeline(struct db *db, struct db_query *q, size_t n) __attribute__((warn_unused_result));

/*
 * A result's value at row in the column named column (as PQfnumber reads it: folded to
 * lower case unless double-quoted), so a reordered SELECT list cannot shift what a caller
 * reads.  db_value returns the text (borrowed from res), or NULL for an SQL NULL, a row out
 * of range or a column res does not have; db_text returns "" where db_value returns NULL, as
 * PQgetvalue does for an SQL NULL; db_is_null says whether db_value returns NULL (1 or 0).
 * A missing column is a programmer's error: it is logged (once per name, at error level).
 */
const char *db_value(const PGresult *res, int row, const char *column);
const char *db_text(const PGresult *res, int row, const char *column);
int db_is_null(const PGresult *res, int row, const char *column);

/* Sets err to 503 backend_unavailable with retryAfterSeconds: the database cannot serve. */
struct rpc_error;
void db_unavailable(struct rpc_error *err);

/* Whether res failed because the connection is gone (so the caller answers 503). */
int db_is_connection_lost(const struct db *db);

void db_close(struct db *db);

/* Whether the database answers a trivial statement on db's connection (connecting first
 * when it has none): 1 or 0.  For /readyz, which issues no SQL of its own. */
int db_ping(struct db *db);

/*
 * A handle to cancel the statement running on a connection from another thread (a client
 * left while its call runs).  db_cancel_new connects db first when it has no connection and
 * returns NULL when it cannot (or out of memory): there is then nothing to cancel.
 * db_cancel_send asks the server to cancel whatever runs now (best effort; 0 or -1) and may
 * be called from any thread while db's owner keeps using db; db_cancel_free frees it
 * (NULL is fine).  The handle outlives a reconnect harmlessly: it then cancels nothing.
 */
struct db_cancel;
struct db_cancel *db_cancel_new(struct db *db);
int db_cancel_send(struct db_cancel *c);
void db_cancel_free(struct db_cancel *c);

/* Whether a libpq URL or conninfo string sets a password (password=, or user:pass@):
 * for the warnings about one given on a command line.  Unparseable text: 0. */
int db_has_password(const char *conninfo);

/*
 * Runs a sweep: sql (a constant), which answers one row whose column "swept" counts what it
 * removed.  Returns that count, or -1 (logged as a failure to sweep what).
 */
long long db_sweep(struct db *db, const char *sql, const char *what);

#endif
