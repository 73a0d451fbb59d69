/* airlockctl audit: seal, verify, export, replay and archive the call record. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sha256.h>

#include "airlock/audit.h"
#include "airlock/call.h"
#include "airlock/cli.h"
#include "airlock/db.h"
#include "airlock/seal.h"
#include "airlock/sql.h"
#include "airlock/tool.h"
#include "airlock/write.h"

#include "cmd_audit.h"

static const char usage[] =
    "usage: airlockctl audit seal\n"
    "       airlockctl audit verify [--tenant T] [--from TS] [--to TS] [--anchor HASH]\n"
    "       airlockctl audit export --format jsonl [--tenant T] [--from TS] [--to TS]\n"
    "       airlockctl audit replay [--tenant T] [--from TS] [--to TS] [--tools DIR] [--json]\n"
    "       airlockctl audit archive --before TS --out FILE\n"
    "\n"
    "  seal     link every committed record not yet sealed into a checkpoint now (airlockd\n"
    "           does so every second); prints the head checkpoint's hash, the anchor to\n"
    "           keep outside the database\n"
    "  verify   recompute every record's digest and every checkpoint link (overall, or the\n"
    "           chain of --tenant; --from/--to select checkpoints by sealing time); with\n"
    "           --anchor, the hash kept from an earlier seal must still be in the chain.\n"
    "           Prints the first broken record and what is wrong: edited, removed,\n"
    "           reordered, inserted, tail removed; and records with a forged seq,\n"
    "           changes attached to another call, un-revoked tokens, tokens minted\n"
    "           without a record\n"
    "  export   one JSON object per line per call, in seq order, streamed (--from/--to\n"
    "           select records by their time)\n"
    "  replay   re-run each recorded tools/call that succeeded, as its tenant, with the\n"
    "           tools in --tools (default ./tools): reads compare their result digest,\n"
    "           writes run as dry-runs and compare after-images; code steps and calls with\n"
    "           sensitive arguments are not replayable.  --json: JSON lines\n"
    "  archive  seal, export the records sealed before TS to FILE (JSON lines, as export),\n"
    "           then remove them and their changes, leaving an archive checkpoint\n"
    "\n"
    "verify, export, replay and archive end with a summary on stderr (records, time, rate);\n"
    "while stderr is a terminal they also keep a progress line there (records done of\n"
    "how many, rate, time left).\n"
    "TS is anything PostgreSQL reads as a timestamptz (2026-01-31T00:00:00Z).\n"
    "options: --db URL (default: $AIRLOCK_DB, else the dev-db operator URL); -h, --help\n"
    "Exit status: 0; 64 bad usage; 65 verify found a break, or replay found a call that\n"
    "differs or is now refused; 69 database unreachable; 73 cannot write FILE.\n";

enum { O_TENANT = 256, O_FROM, O_TO, O_ANCHOR, O_FORMAT, O_TOOLS, O_JSON, O_BEFORE, O_OUT, O_DB };

static const struct option options[] = {
	{ "tenant", required_argument, NULL, O_TENANT },
	{ "from", required_argument, NULL, O_FROM },
	{ "to", required_argument, NULL, O_TO },
	{ "anchor", required_argument, NULL, O_ANCHOR },
	{ "format", required_argument, NULL, O_FORMAT },
	{ "tools", required_argument, NULL, O_TOOLS },
	{ "json", no_argument, NULL, O_JSON },
	{ "before", required_argument, NULL, O_BEFORE },
	{ "out", required_argument, NULL, O_OUT },
	{ "db", required_argument, NULL, O_DB },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

long long
cmd_audit_seal_all(PGconn *conn, int is_verbose)
{
	long long id, n, total = 0;
	char err[512];

	do {
		if (seal_run(conn, 1, &id, &n, err, sizeof(err)) == -1) {
			fprintf(stderr, "%s audit: %s", CLI_PROG, err);
			return -1;
		}
		if (id > 0 && is_verbose)
			printf("checkpoint %lld: %lld records\n", id, n);
		total += n;
	} while (id > 0);
	return total;
}

/* Runs a one-row query; returns a new result with PGRES_TUPLES_OK, or NULL (message
 * printed naming cmd). */
PGresult *
cmd_audit_query(PGconn *conn, const char *sql, int n, const char *const *values)
{
	PGresult *res;

	return sql_query(conn, "audit", sql, n, values, &res) == EX_OK ? res : NULL;
}

/*
 * Streams the rows of sql: calls row(res, arg) once per row, in single-row mode, so a
 * result of any size takes the memory of one row.  Returns 0, or -1 (message printed)
 * when the query failed or row returned -1.
 */
int
cmd_audit_stream(PGconn *conn, const char *sql, int n, const char *const *values,
    int (*row)(const PGresult *, void *), void *arg)
{
	return sql_stream(conn, "audit", sql, n, values, row, arg) == EX_OK ? 0 : -1;
}

/* progress */

/* The records a walk will see, counted only to show a terminal how far it has come:
 * export's filter; verify, whose walk is by checkpoint, gets an estimate from it. */
static const char progress_count_sql[] =
    "SELECT pg_catalog.count(*) AS records FROM airlock.calls c"
    " LEFT JOIN airlock.sealed s ON s.call_id = c.id"
    " WHERE ($1::text IS NULL OR c.tenant = $1) AND ($2::timestamptz IS NULL OR c.at >= $2)"
    " AND ($3::timestamptz IS NULL OR c.at < $3)"
    " AND ($4::bigint IS NULL OR s.checkpoint_id <= $4)";

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Starts p; when stderr is a terminal and conn is given, counts the records (values: the
 * four parameters of progress_count_sql) so the line can show a total and a time left. */
void
cmd_audit_progress_start(struct progress *p, const char *what, PGconn *conn,
    const char *const *values)
{
	PGresult *res;

	memset(p, 0, sizeof(*p));
	p->what = what;
	p->is_tty = isatty(STDERR_FILENO);
	p->total = -1;
	p->start = now_seconds();
	if (p->is_tty && conn != NULL) {
		/* Only a figure for the eye: on a failure the count stays unknown. */
		if (sql_query(conn, NULL, progress_count_sql, 4, values, &res) == EX_OK &&
		    sql_rows(res) == 1)
			p->total = strtoll(db_text(res, 0, "records"), NULL, 10);
		sql_clear(res);
	}
}

static double
progress_rate(const struct progress *p, double now)
{
	double elapsed = now - p->start;

	return (double)p->done / (elapsed > 0.001 ? elapsed : 0.001);
}

/* Clears the progress line, so that a line of output can be printed in its place. */
void
cmd_audit_progress_clear(struct progress *p)
{
	if (p->is_tty && p->drawn > 0)
		fputs("\r\033[K", stderr);
}

static void
progress_draw(struct progress *p, double now)
{
	double rate = progress_rate(p, now);
	long long left;

	fprintf(stderr, "\r\033[K%s: %lld", p->what, p->done);
	if (p->total >= p->done && p->total > 0)
		fprintf(stderr, "/%lld records (%d%%)", p->total, (int)(p->done * 100 / p->total));
	else
		fputs(" records", stderr);
	fprintf(stderr, ", %.0f/s", rate);
	if (p->total >= p->done && p->total > 0) {
		left = (long long)((double)(p->total - p->done) / (rate > 0 ? rate : 1) + 0.5);
		fprintf(stderr, ", %lld s left", left);
	}
	fflush(stderr);
	p->drawn = now;
}

/* One more record done. */
void
cmd_audit_progress_step(struct progress *p)
{
	double now;

	p->done++;
	if (!p->is_tty)
		return;
	now = now_seconds();
	if (p->drawn == 0 || now - p->drawn >= 0.25)
		progress_draw(p, now);
}

/* Ends the line and prints the summary: "airlockctl audit WHAT: N records in T s (R/s)",
 * and extra (may be NULL) after it. */
void
cmd_audit_progress_end(struct progress *p, const char *extra)
{
	double now = now_seconds();

	cmd_audit_progress_clear(p);
	fprintf(stderr, "%s audit %s: %lld record%s in %.1f s (%.0f/s)%s%s\n", CLI_PROG, p->what,
	    p->done, p->done == 1 ? "" : "s", now - p->start, progress_rate(p, now),
	    extra ? "; " : "", extra ? extra : "");
	fflush(stderr);
}

int
cmd_audit(int argc, char **argv)
{
	struct audit_opts o;
	const char *action;
	int opt;

	memset(&o, 0, sizeof(o));
	while ((opt = cli_getopt(argc, argv, "h", options)) != -1) {
		switch (opt) {
		case 'h':
			fputs(usage, stdout);
			return EX_OK;
		case O_TENANT:
			o.tenant = optarg;
			break;
		case O_FROM:
			o.from = optarg;
			break;
		case O_TO:
			o.to = optarg;
			break;
		case O_ANCHOR:
			o.anchor = optarg;
			break;
		case O_FORMAT:
			o.format = optarg;
			break;
		case O_TOOLS:
			o.tools = optarg;
			break;
		case O_JSON:
			o.is_json = 1;
			break;
		case O_BEFORE:
			o.before = optarg;
			break;
		case O_OUT:
			o.out = optarg;
			break;
		case O_DB:
			o.db = optarg;
			break;
		default:
			return EX_USAGE;
		}
	}
	if (optind + 1 != argc) {
		fputs(usage, stderr);
		return EX_USAGE;
	}
	action = argv[optind];
	if (strcmp(action, "seal") == 0)
		return cmd_audit_seal(&o);
	if (strcmp(action, "verify") == 0)
		return cmd_audit_verify(&o);
	if (strcmp(action, "export") == 0)
		return cmd_audit_export(&o);
	if (strcmp(action, "replay") == 0)
		return cmd_audit_replay(&o);
	if (strcmp(action, "archive") == 0)
		return cmd_audit_archive(&o);
	cli_warnx("audit", "unknown action %s (see --help)", action);
	return EX_USAGE;
}
