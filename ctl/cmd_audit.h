/* cmd_audit.h: what the files of airlockctl audit (ctl/cmd_audit*.c) share. */
#ifndef AIRLOCK_CMD_AUDIT_H
#define AIRLOCK_CMD_AUDIT_H

#include <libpq-fe.h>

struct opts {
	const char *db, *tenant, *from, *to, *anchor, *format, *tools, *before, *out;
	int is_json;
};

#define UTC_TEXT(x) "pg_catalog.to_char(" x " AT TIME ZONE 'UTC'," \
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
	long long done, total;		/* total: -1 when not counted */
	double start, drawn;		/* monotonic seconds */
};

PGresult *query(PGconn *conn, const char *sql, int n, const char *const *values);
const char *value_or_null(const PGresult *res, int row, int col);
int stream(PGconn *conn, const char *sql, int n, const char *const *values,
    int (*row)(const PGresult *, void *), void *arg);
void progress_start(struct progress *p, const char *what, PGconn *conn, const char *const *values);
void progress_clear(struct progress *p);
void progress_step(struct progress *p);
void progress_end(struct progress *p, const char *extra);

int do_seal(const struct opts *o);
int do_verify(const struct opts *o);
int do_export(const struct opts *o);
int do_archive(const struct opts *o);
int do_replay(const struct opts *o);

#endif
