/* cmd_audit.h: what the files of airlockctl audit (ctl/cmd_audit*.c) share. */
#ifndef AIRLOCK_CMD_AUDIT_H
#define AIRLOCK_CMD_AUDIT_H

#include <libpq-fe.h>

/* The options of every action, as parsed by cmd_audit. */
struct audit_opts {
	const char *db, *tenant, *from, *to, *anchor, *format, *tools, *before, *out;
	int is_json;
};

/* A timestamp as the canonical forms write it (migrations/0007_audit.sql). */
#define UTC_TEXT(x)                                    \
	"pg_catalog.to_char(" x " AT TIME ZONE 'UTC'," \
	" 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/*
 * Long walks (verify, export, archive, replay) show a progress line on stderr while it is
 * a terminal: records done (of how many, when known), the rate, and the time left; it is
 * redrawn at most four times a second.  At the end a one-line summary goes to stderr
 * whether or not it is a terminal, so a script's log says how much was done and how fast,
 * while stdout keeps only the command's own output.
 */
struct progress {
	const char *what;
	int is_tty;
	long long done, total; /* total: -1 when not counted */
	double start, drawn;   /* monotonic seconds */
};

/* Each of these prints its own message on failure, naming "airlockctl audit". */

/* Runs a one-row query; returns a new result, or NULL (message printed). */
PGresult *cmd_audit_query(PGconn *conn, const char *sql, int n, const char *const *values);

/*
 * Seals everything committed (airlock.seal() takes at most 50000 records per checkpoint:
 * it goes on until none is left), printing each checkpoint when is_verbose.  Returns the
 * records sealed, or -1 (message printed).
 */
long long cmd_audit_seal_all(PGconn *conn, int is_verbose);

/*
 * Streams the rows of sql, calling row(res, arg) once per row in single-row mode.  Returns
 * 0, or -1 (message printed) when the query failed or row returned -1.
 */
int cmd_audit_stream(PGconn *conn, const char *sql, int n, const char *const *values,
    int (*row)(const PGresult *, void *), void *arg);

/* The progress line: started (counting the records on conn when given), stepped once per
 * record, cleared before a line of output, ended with a summary on stderr. */
void cmd_audit_progress_start(struct progress *p, const char *what, PGconn *conn,
    const char *const *values);
void cmd_audit_progress_clear(struct progress *p);
void cmd_audit_progress_step(struct progress *p);
void cmd_audit_progress_end(struct progress *p, const char *extra);

/* The actions: each returns a <sysexits.h> code. */
int cmd_audit_seal(const struct audit_opts *o);	   /* cmd_audit_verify.c */
int cmd_audit_verify(const struct audit_opts *o);  /* cmd_audit_verify.c */
int cmd_audit_export(const struct audit_opts *o);  /* cmd_audit_export.c */
int cmd_audit_archive(const struct audit_opts *o); /* cmd_audit_export.c */
int cmd_audit_replay(const struct audit_opts *o);  /* cmd_audit_replay.c */

#endif
