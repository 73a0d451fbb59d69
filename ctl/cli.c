/* Shared pieces of airlockctl's commands: option parsing and the "which database" rule. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/cli.h"
#include "airlock/db.h"
#include "airlock/devdb.h"

void
cli_warnx(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s %s: ", CLI_PROG, cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
	char opts[128];
	int c;

	/* A leading ':' makes getopt tell a missing argument (':') from an unknown option. */
	if (snprintf(opts, sizeof(opts), ":%s", shortopts) >= (int)sizeof(opts)) {
		cli_warnx(argv[0], "option string too long");
		return '?';
	}
	opterr = 0;
	c = getopt_long(argc, argv, opts, longopts, NULL);
	if (c == ':') {
		cli_warnx(argv[0], "option %s needs an argument (see %s %s --help)",
		    argv[optind - 1], CLI_PROG, argv[0]);
		return '?';
	}
	if (c == '?') {
		if (optopt != 0)
			cli_warnx(argv[0], "unknown option -%c (see %s %s --help)", optopt,
			    CLI_PROG, argv[0]);
		else
			cli_warnx(argv[0], "unknown option %s (see %s %s --help)", argv[optind - 1],
			    CLI_PROG, argv[0]);
		return '?';
	}
	return c;
}

int
cli_conninfo(const char *db_opt, char *buf, size_t len)
{
	static int is_warned;
	const char *env;

	if (db_opt != NULL && !is_warned && db_has_password(db_opt)) {
		cli_warnx("--db",
		    "the password is on the command line, where any local user can "
		    "read it: use a libpq passfile (passfile= or PGPASSFILE) or AIRLOCK_DB");
		is_warned = 1;
	}
	if (db_opt == NULL && (env = getenv("AIRLOCK_DB")) != NULL && *env != '\0')
		db_opt = env;
	if (db_opt != NULL)
		return strlcpy(buf, db_opt, len) < len ? 0 : -1;
	if (devdb_url(NULL, DEVDB_OPERATOR, buf, len) == 0)
		return 0;
	/* No dev-db: an empty conninfo lets libpq read PGHOST, PGUSER and the rest. */
	if (len == 0)
		return -1;
	buf[0] = '\0';
	return 0;
}

PGconn *
cli_connect(const char *cmd, const char *db_opt)
{
	char conninfo[4096];
	PGconn *conn = NULL;
	PGresult *res = NULL;

	if (cli_conninfo(db_opt, conninfo, sizeof(conninfo)) == -1) {
		cli_warnx(cmd, "database URL too long");
		return NULL;
	}
	conn = PQconnectdb(conninfo);
	if (conn == NULL) {
		cli_warnx(cmd, "out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		/* libpq's message ends with a newline and may span lines. */
		fprintf(stderr, "%s %s: cannot connect to the database: %s", CLI_PROG, cmd,
		    PQerrorMessage(conn));
		goto fail;
	}
	res = PQexec(conn, "SET client_min_messages = warning");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		fprintf(stderr, "%s %s: %s", CLI_PROG, cmd, PQerrorMessage(conn));
		goto fail;
	}
	PQclear(res);
	return conn;
fail:
	PQclear(res);
	PQfinish(conn);
	return NULL;
}
