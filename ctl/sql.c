/* sql.c: airlockctl's statement runner: every statement a command sends goes through here,
 * and every failure gets its exit code from one mapping (sql_fail). */
#include <sys/select.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "airlock/cli.h"
#include "airlock/sql.h"

int
sql_fail(const char *label, PGconn *conn, const PGresult *res)
{
	const char *state, *msg, *detail, *hint;

	state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	if (PQstatus(conn) != CONNECTION_OK || state == NULL || msg == NULL) {
		/* libpq's own message ends with a newline. */
		fprintf(stderr, "%s %s: the database failed: %s", CLI_PROG, label,
		    PQerrorMessage(conn));
		return EX_UNAVAILABLE;
	}
	/* No such function, schema or table: airlock's own are not there yet. */
	if (strcmp(state, "42883") == 0 || strcmp(state, "3F000") == 0 ||
	    strcmp(state, "42P01") == 0) {
		cli_warnx(label, "the database is not migrated (run %s migrate): %s", CLI_PROG,
		    msg);
		return EX_UNAVAILABLE;
	}
	cli_warnx(label, "%s", msg);
	if ((detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL)) != NULL)
		fprintf(stderr, "  detail: %s\n", detail);
	if ((hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT)) != NULL)
		fprintf(stderr, "  hint: %s\n", hint);
	/* Connection exceptions, the server shutting down, out of resources. */
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
	    strncmp(state, "53", 2) == 0)
		return EX_UNAVAILABLE;
	if (strcmp(state, "42501") == 0)
		return EX_NOPERM;
	return EX_DATAERR;
}

int
sql_query(PGconn *conn, const char *label, const char *sql, int n, const char *const *params,
    PGresult **res)
{
	int ex;

	/* Without parameters, the simple protocol: sql may then hold several statements. */
	*res = n == 0 ? PQexec(conn, sql) : PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	switch (PQresultStatus(*res)) {
	case PGRES_TUPLES_OK:
	case PGRES_COMMAND_OK:
	case PGRES_EMPTY_QUERY: /* nothing to run (a file of comments) */
		return EX_OK;
	default:
		ex = label != NULL ? sql_fail(label, conn, *res) : EX_UNAVAILABLE;
		PQclear(*res);
		*res = NULL;
		return ex;
	}
}

int
sql_exec(PGconn *conn, const char *label, const char *sql, int n, const char *const *params)
{
	PGresult *res;
	int ex;

	if ((ex = sql_query(conn, label, sql, n, params, &res)) == EX_OK)
		PQclear(res);
	return ex;
}

void
sql_exec_quiet(PGconn *conn, const char *sql)
{
	PQclear(PQexec(conn, sql));
}

int
sql_stream(PGconn *conn, const char *label, const char *sql, int n, const char *const *params,
    int (*row)(const PGresult *, void *), void *arg)
{
	PGresult *res;
	int ex = EX_OK;

	if (!PQsendQueryParams(conn, sql, n, NULL, params, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(conn))
		return sql_fail(label, conn, NULL);
	/* Every result is read, even after a failure, so the connection is ready again. */
	while ((res = PQgetResult(conn)) != NULL) {
		switch (PQresultStatus(res)) {
		case PGRES_SINGLE_TUPLE:
			if (ex == EX_OK && row(res, arg) == -1)
				ex = EX_SOFTWARE;
			break;
		case PGRES_TUPLES_OK:
			break;
		default:
			if (ex == EX_OK)
				ex = sql_fail(label, conn, res);
			break;
		}
		PQclear(res);
	}
	return ex;
}

int
sql_rows(const PGresult *res)
{
	return PQntuples(res);
}

long long
sql_affected(const PGresult *res)
{
	return strtoll(PQcmdTuples((PGresult *)(uintptr_t)res), NULL, 10);
}

const char *
sql_sqlstate(const PGresult *res)
{
	return res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
}

int
sql_is_connected(const PGconn *conn)
{
	return PQstatus(conn) == CONNECTION_OK;
}

int
sql_in_transaction(const PGconn *conn)
{
	return PQtransactionStatus(conn) == PQTRANS_INTRANS ||
	    PQtransactionStatus(conn) == PQTRANS_INERROR;
}

const char *
sql_conn_error(const PGconn *conn)
{
	return PQerrorMessage(conn);
}

int
sql_notifications(PGconn *conn, const char *label, int (*note)(const char *payload, void *arg),
    void *arg, volatile sig_atomic_t *stop)
{
	PGnotify *n;
	fd_set fds;
	int fd, is_done = 0;

	while (!*stop && !is_done) {
		fd = PQsocket(conn);
		FD_ZERO(&fds);
		FD_SET(fd, &fds);
		if (select(fd + 1, &fds, NULL, NULL, NULL) == -1) {
			if (errno == EINTR)
				continue;
			cli_warnx(label, "select: %s", strerror(errno));
			return EX_OSERR;
		}
		if (PQconsumeInput(conn) == 0)
			return sql_fail(label, conn, NULL);
		while (!is_done && (n = PQnotifies(conn)) != NULL) {
			is_done = note(n->extra, arg) == 1;
			PQfreemem(n);
		}
	}
	return EX_OK;
}

void
sql_clear(PGresult *res)
{
	PQclear(res);
}

void
sql_close(PGconn *conn)
{
	PQfinish(conn);
}
