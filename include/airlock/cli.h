/* Shared pieces of airlockctl's commands: option parsing, the database rule, the command list. */
/* Owns nothing; the connection cli_connect returns is the caller's to PQfinish. */
#ifndef AIRLOCK_CLI_H
#define AIRLOCK_CLI_H

#include <getopt.h>
#include <stddef.h>

#include <libpq-fe.h>

/*
 * Every command is a function `int cmd_x(int argc, char **argv)` taking its own argument
 * vector (argv[0] is the noun, as typed) and returning a <sysexits.h> code.  ctl/main.c
 * resets getopt (optind = 0) before it calls one.  To add a command: declare it here and add
 * one line to the table in ctl/main.c.
 */
int cmd_devdb(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_tenant(int argc, char **argv);
int cmd_table(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_call(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_tool(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_doctor(int argc, char **argv);

/* The program name used in messages. */
#define CLI_PROG "airlockctl"

/*
 * getopt_long for commands: options may come before or after operands.  Returns the option
 * character (or the long option's val), -1 when options end (operands start at optind), or
 * '?' after printing a message naming the command and the bad option (unknown option or
 * missing argument); the caller then returns EX_USAGE.
 */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/* Prints "airlockctl CMD: message" on stderr. */
void cli_warnx(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The database rule for every command that needs the database: db_opt (the --db value) when
 * not NULL, else $AIRLOCK_DB, else the operator URL of the dev-db when one exists in the
 * default dev-db directory, else "" (libpq's own environment: PGHOST, PGUSER and so on).
 * Writes the conninfo string into buf.  Returns 0, or -1 when it does not fit.  Warns
 * (once) when db_opt, which came from the command line, holds a password.
 */
int cli_conninfo(const char *db_opt, char *buf, size_t len) __attribute__((warn_unused_result));

/*
 * Connects by the rule above, with client_min_messages at warning.  Returns a new
 * connection (the caller PQfinish'es it), or NULL after printing a message naming cmd;
 * the caller then returns EX_UNAVAILABLE.
 */
PGconn *cli_connect(const char *cmd, const char *db_opt);

#endif
