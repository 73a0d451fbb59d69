/* sql.h: airlockctl's one statement runner: every statement a command sends, and the one
 * mapping of a failure to an exit code (ctl/sql.c). */
/*
 * Commands reach the database through cli_connect (the connection) and these functions
 * (statements, results); they call no libpq function themselves.  A result a function here
 * returns is the caller's to sql_clear; a connection is the caller's to sql_close.
 * Messages are printed on stderr naming the command's label ("tenant add").
 */
#ifndef AIRLOCK_SQL_H
#define AIRLOCK_SQL_H

#include <signal.h>

#include <libpq-fe.h>

#include "airlock/db.h"

/*
 * Prints why res failed (the server's message, its detail and hint; libpq's when there is
 * no server message) and returns the exit code for it (sysexits): EX_UNAVAILABLE when the
 * database is gone, overloaded or not migrated, EX_NOPERM when the role may not do it,
 * EX_DATAERR when the request itself was refused.  res is borrowed and may be NULL (out of
 * memory, connection lost).
 */
int sql_fail(const char *label, PGconn *conn, const PGresult *res);

/*
 * Runs sql with n text parameters (NULL values are SQL NULLs); with none, sql may hold
 * several statements (the last one's result is returned).  Returns EX_OK with the
 * result in *res (rows or none; the caller sql_clears it), or the exit code of sql_fail
 * after printing, with *res NULL.  With label NULL nothing is printed (a figure only for
 * the eye) and a failure is EX_UNAVAILABLE.
 */
int sql_query(PGconn *conn, const char *label, const char *sql, int n, const char *const *params,
    PGresult **res) __attribute__((warn_unused_result));

/* As sql_query, the result dropped. */
int sql_exec(PGconn *conn, const char *label, const char *sql, int n, const char *const *params);

/* Sends sql and drops its result, whatever it is: ROLLBACK on a failure path. */
void sql_exec_quiet(PGconn *conn, const char *sql);

/*
 * Streams the rows of sql: calls row(res, arg) once per row, in single-row mode, so a
 * result of any size takes the memory of one row.  Returns EX_OK; the exit code of
 * sql_fail when the query failed (printed); or EX_SOFTWARE when row returned -1 (it said
 * why).
 */
int sql_stream(PGconn *conn, const char *label, const char *sql, int n, const char *const *params,
    int (*row)(const PGresult *, void *), void *arg);

/* A result's rows.  Its values are read by column name with db_value, db_text and
 * db_is_null (airlock/db.h), the same accessors airlockd uses. */
int sql_rows(const PGresult *res);
/* The rows an INSERT, UPDATE or DELETE touched. */
long long sql_affected(const PGresult *res);
/* The SQLSTATE of a failed result, or NULL. */
const char *sql_sqlstate(const PGresult *res);

/* Whether conn is still connected, and whether it is inside a transaction (open or
 * failed). */
int sql_is_connected(const PGconn *conn);
int sql_in_transaction(const PGconn *conn);
/* libpq's last message on conn (ends with a newline; "" when none), for a failure of a
 * shared module that uses conn itself. */
const char *sql_conn_error(const PGconn *conn);

/*
 * Waits for notifications on the channels conn LISTENs on (sql_exec "LISTEN x") and calls
 * note(payload, arg) for each, until *stop is set (by a signal) or note returns 1.  Returns
 * EX_OK, or an exit code after printing (EX_OSERR when select fails).
 */
int sql_notifications(PGconn *conn, const char *label, int (*note)(const char *payload, void *arg),
    void *arg, volatile sig_atomic_t *stop);

void sql_clear(PGresult *res);
void sql_close(PGconn *conn);

#endif
