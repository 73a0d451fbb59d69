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
#include "airlock/tool.h"
#include "airlock/write.h"

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

enum { O_TENANT = 256, O_FROM, O_TO, O_ANCHOR, O_FORMAT, O_TOOLS, O_JSON, O_BEFORE, O_OUT,
    O_DB };

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

struct opts {
	const char *db, *tenant, *from, *to, *anchor, *format, *tools, *before, *out;
	int is_json;
};

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
#define MAX_PROBLEMS 50
#define LATE_WINDOW "10 minutes"	/* as airlock.seal()'s horizon */

/*
 * The canonical forms, as migrations/0007_audit.sql defines them, sent from here so that
 * verify does not depend on functions an owner could replace: only pg_catalog is used,
 * and the session's search_path is pg_catalog while verify runs.
 */
#define UTC_TEXT(x) "pg_catalog.to_char(" x " AT TIME ZONE 'UTC'," \
	" 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define CALL_CANONICAL "pg_catalog.jsonb_build_object('id', c.id::text, 'seq', c.seq," \
	" 'at', " UTC_TEXT("c.at") ", 'tenant', c.tenant, 'token_id', c.token_id," \
	" 'task', c.task, 'method', c.method, 'tool', c.tool, 'arguments', c.arguments," \
	" 'dry_run', c.dry_run, 'idempotency_key', c.idempotency_key," \
	" 'plan_id', c.plan_id::text, 'outcome', c.outcome, 'reason', c.reason," \
	" 'duration_ms', c.duration_ms::numeric, 'result_digest', c.result_digest," \
	" 'client', c.client, 'egress', c.egress)::text"
#define CHANGE_CANONICAL "pg_catalog.jsonb_build_object('id', ch.id," \
	" 'call_id', ch.call_id::text, 'tenant', ch.tenant, 'table_name', ch.table_name," \
	" 'key', ch.key, 'op', ch.op, 'before', ch.before, 'after', ch.after," \
	" 'at', " UTC_TEXT("ch.at") ")::text"
#define SHA256_HEX(x) "pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(" x \
	", 'UTF8')), 'hex')"
#define CHANGES_DIGEST "(SELECT " SHA256_HEX("pg_catalog.string_agg(" \
	SHA256_HEX(CHANGE_CANONICAL) ", '' ORDER BY ch.id)") \
	" FROM airlock.changes ch WHERE ch.call_id = s.call_id HAVING pg_catalog.count(*) > 0)"
#define ENTRY_COLUMNS "s.position, s.call_id::text, s.digest, s.changes_digest," \
	" c.id IS NOT NULL, c.seq, c.digest, " SHA256_HEX(CALL_CANONICAL) ", " CHANGES_DIGEST

static const char walk_sql[] =
    "SELECT k.id, k.kind, k.prev_hash, k.hash, k.count, k.archived::text, " ENTRY_COLUMNS
    " FROM airlock.checkpoints k LEFT JOIN airlock.sealed s ON s.checkpoint_id = k.id"
    " LEFT JOIN airlock.calls c ON c.id = s.call_id"
    " WHERE ($1::timestamptz IS NULL OR k.created_at >= $1)"
    " AND ($2::timestamptz IS NULL OR k.created_at < $2)"
    " ORDER BY k.id, s.position";
static const char walk_tenant_sql[] =
    "SELECT tc.checkpoint_id, 'seal', tc.prev_hash, tc.hash, tc.count, NULL, " ENTRY_COLUMNS
    " FROM airlock.tenant_checkpoints tc"
    " JOIN airlock.checkpoints k ON k.id = tc.checkpoint_id"
    " LEFT JOIN airlock.sealed s ON s.checkpoint_id = tc.checkpoint_id AND s.tenant = tc.tenant"
    " LEFT JOIN airlock.calls c ON c.id = s.call_id"
    " WHERE ($1::timestamptz IS NULL OR k.created_at >= $1)"
    " AND ($2::timestamptz IS NULL OR k.created_at < $2) AND tc.tenant = $3"
    " ORDER BY tc.checkpoint_id, s.position";
/* Where the walk starts: the checkpoint before --from, else what retention left. */
static const char pred_sql[] =
    "SELECT k.id, k.hash FROM airlock.checkpoints k WHERE k.created_at < $1::timestamptz"
    " ORDER BY k.id DESC LIMIT 1";
static const char pred_tenant_sql[] =
    "SELECT tc.checkpoint_id, tc.hash FROM airlock.tenant_checkpoints tc"
    " JOIN airlock.checkpoints k ON k.id = tc.checkpoint_id"
    " WHERE k.created_at < $1::timestamptz AND tc.tenant = $2"
    " ORDER BY tc.checkpoint_id DESC LIMIT 1";
static const char archived_sql[] =
    "SELECT (k.archived->>'through')::bigint, k.archived->>'hash',"
    " k.archived->'tenants'->>$1::text"
    " FROM airlock.checkpoints k WHERE k.kind = 'archive' ORDER BY k.id DESC LIMIT 1";
/* Records sealed nowhere: forged (digest wrong), or older than the sealer's horizon. */
static const char unsealed_sql[] =
    "SELECT c.id::text, c.digest IS NOT DISTINCT FROM " SHA256_HEX(CALL_CANONICAL) ","
    " c.seq <= coalesce((SELECT k.last_seq FROM airlock.checkpoints k WHERE k.kind = 'seal'"
    "  AND k.created_at < pg_catalog.now() - interval '" LATE_WINDOW "'"
    "  ORDER BY k.id DESC LIMIT 1), 0)"
    " FROM airlock.calls c"
    " WHERE NOT EXISTS (SELECT 1 FROM airlock.sealed s WHERE s.call_id = c.id)"
    " AND ($1::text IS NULL OR c.tenant = $1) AND ($2::timestamptz IS NULL OR c.at >= $2)"
    " AND ($3::timestamptz IS NULL OR c.at < $3) ORDER BY c.seq";
/* Forgeries the chain alone does not show.  A seq the identity never gave out: a record
 * placed after every later one (and, sealed, a horizon that would hide them from the
 * sealer). */
#define SEQ_ISSUED "coalesce(pg_catalog.pg_sequence_last_value(" \
	"pg_catalog.pg_get_serial_sequence('airlock.calls', 'seq')::pg_catalog.regclass), 0)"
static const char forged_seq_sql[] =
    "SELECT c.id::text, c.seq, " SEQ_ISSUED " FROM airlock.calls c"
    " WHERE c.seq > " SEQ_ISSUED " AND ($1::text IS NULL OR c.tenant = $1) ORDER BY c.seq";
/* Changes the database lets in only with their call's record, in its transaction, for a
 * write: one added to a record after it was sealed, one on a record that is no write, one
 * added to a record not yet sealed by another transaction than the record's. */
static const char forged_changes_sql[] =
    "SELECT * FROM (SELECT ch.id AS change_id, c.id::text, s.checkpoint_id, c.method, c.outcome,"
    "  s.call_id IS NOT NULL AND ch.at > k.created_at AS is_late,"
    "  c.method IN ('tools/call', 'airlock/calls.revert') AND c.outcome = 'ok' AS is_write,"
    "  s.call_id IS NOT NULL OR ch.xmin = c.xmin AS is_same"
    "  FROM airlock.changes ch JOIN airlock.calls c ON c.id = ch.call_id"
    "  LEFT JOIN airlock.sealed s ON s.call_id = c.id"
    "  LEFT JOIN airlock.checkpoints k ON k.id = s.checkpoint_id"
    "  WHERE ($1::text IS NULL OR c.tenant = $1)) x"
    " WHERE x.is_late OR NOT x.is_write OR NOT x.is_same ORDER BY x.change_id";
/* A token whose revocation is recorded but whose revoked_at is empty. */
static const char unrevoked_sql[] =
    "SELECT t.id, r.id::text FROM airlock.tokens t"
    " JOIN LATERAL (SELECT c.id FROM airlock.calls c WHERE c.method = 'airlock/tokens.revoke'"
    "  AND c.outcome = 'ok' AND c.arguments ->> 'token_id' = t.id ORDER BY c.seq LIMIT 1) r"
    "  ON true"
    " WHERE t.revoked_at IS NULL AND ($1::text IS NULL OR t.tenant = $1) ORDER BY t.id";
/* A token minted since tokens name their mint's record (migration 11), after what retention
 * removed, whose mint left no record. */
static const char unminted_sql[] =
    "SELECT t.id FROM airlock.tokens t"
    " WHERE ($1::text IS NULL OR t.tenant = $1)"
    " AND t.created_at > coalesce((SELECT m.applied_at"
    "  FROM airlock.schema_migrations m WHERE m.version = 11), '-infinity')"
    " AND t.created_at > coalesce((SELECT pg_catalog.max((k.archived ->>"
    "  'sealed_before')::timestamptz) FROM airlock.checkpoints k WHERE k.kind = 'archive'),"
    "  '-infinity')"
    " AND NOT EXISTS (SELECT 1 FROM airlock.calls c WHERE c.id = t.mint_call"
    "  AND c.method = 'airlock/tokens.mint' AND c.outcome = 'ok'"
    "  AND c.tenant IS NOT DISTINCT FROM t.tenant)"
    " ORDER BY t.created_at, t.id";
static const char anchor_sql[] =
    "SELECT EXISTS (SELECT 1 FROM airlock.checkpoints k WHERE k.hash = $1"
    "  OR (k.kind = 'archive' AND k.archived->>'hash' = $1))";
static const char anchor_tenant_sql[] =
    "SELECT EXISTS (SELECT 1 FROM airlock.tenant_checkpoints tc WHERE tc.tenant = $2"
    "  AND tc.hash = $1) OR EXISTS (SELECT 1 FROM airlock.checkpoints k"
    "  WHERE k.kind = 'archive' AND k.archived->'tenants'->>$2 = $1)";
static const char head_sql[] =
    "SELECT id, hash FROM airlock.checkpoints ORDER BY id DESC LIMIT 1";

/* One line per call, stable field names; $4: only records sealed up to that checkpoint. */
static const char export_sql[] =
    "SELECT pg_catalog.jsonb_build_object('id', c.id::text, 'seq', c.seq,"
    " 'at', " UTC_TEXT("c.at") ", 'tenant', c.tenant, 'token_id', c.token_id,"
    " 'task', c.task, 'method', c.method, 'tool', c.tool, 'arguments', c.arguments,"
    " 'dry_run', c.dry_run, 'idempotency_key', c.idempotency_key,"
    " 'plan_id', c.plan_id::text, 'outcome', c.outcome, 'reason', c.reason,"
    " 'duration_ms', c.duration_ms::numeric, 'result_digest', c.result_digest,"
    " 'client', c.client, 'egress', c.egress, 'digest', c.digest,"
    " 'checkpoint', s.checkpoint_id, 'changes', coalesce((SELECT pg_catalog.jsonb_agg("
    "  pg_catalog.jsonb_build_object('id', ch.id, 'table', ch.table_name, 'key', ch.key,"
    "  'op', ch.op, 'before', ch.before, 'after', ch.after, 'at', " UTC_TEXT("ch.at") ","
    "  'digest', ch.digest) ORDER BY ch.id) FROM airlock.changes ch WHERE ch.call_id = c.id),"
    "  '[]'::jsonb))::text"
    " FROM airlock.calls c LEFT JOIN airlock.sealed s ON s.call_id = c.id"
    " WHERE ($1::text IS NULL OR c.tenant = $1) AND ($2::timestamptz IS NULL OR c.at >= $2)"
    " AND ($3::timestamptz IS NULL OR c.at < $3)"
    " AND ($4::bigint IS NULL OR s.checkpoint_id <= $4) ORDER BY c.seq";

/* Runs a one-row query; returns a new result with PGRES_TUPLES_OK, or NULL (message
 * printed naming cmd). */
static PGresult *
query(PGconn *conn, const char *sql, int n, const char *const *values)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, values, NULL, NULL, 0);

	if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)
		return res;
	fprintf(stderr, "%s audit: %s", CLI_PROG, PQresultErrorMessage(res));
	PQclear(res);
	return NULL;
}

static const char *
value_or_null(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/*
 * Streams the rows of sql: calls row(res, arg) once per row, in single-row mode, so a
 * result of any size takes the memory of one row.  Returns 0, or -1 (message printed)
 * when the query failed or row returned -1.
 */
static int
stream(PGconn *conn, const char *sql, int n, const char *const *values,
    int (*row)(const PGresult *, void *), void *arg)
{
	PGresult *res;
	int rc = 0;

	if (!PQsendQueryParams(conn, sql, n, NULL, values, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(conn)) {
		fprintf(stderr, "%s audit: %s", CLI_PROG, PQerrorMessage(conn));
		return -1;
	}
	while ((res = PQgetResult(conn)) != NULL) {
		switch (PQresultStatus(res)) {
		case PGRES_SINGLE_TUPLE:
			if (rc == 0 && row(res, arg) == -1)
				rc = -1;
			break;
		case PGRES_TUPLES_OK:
			break;
		default:
			if (rc == 0)
				fprintf(stderr, "%s audit: %s", CLI_PROG, PQresultErrorMessage(res));
			rc = -1;
			break;
		}
		PQclear(res);
	}
	return rc;
}

/* progress */

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

/* The records a walk will see, counted only to show a terminal how far it has come:
 * export's filter; verify, whose walk is by checkpoint, gets an estimate from it. */
static const char progress_count_sql[] =
    "SELECT pg_catalog.count(*) FROM airlock.calls c"
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
static void
progress_start(struct progress *p, const char *what, PGconn *conn, const char *const *values)
{
	PGresult *res;

	memset(p, 0, sizeof(*p));
	p->what = what;
	p->is_tty = isatty(STDERR_FILENO);
	p->total = -1;
	p->start = now_seconds();
	if (p->is_tty && conn != NULL) {
		res = PQexecParams(conn, progress_count_sql, 4, NULL, values, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			p->total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
	}
}

static double
progress_rate(const struct progress *p, double now)
{
	double elapsed = now - p->start;

	return (double)p->done / (elapsed > 0.001 ? elapsed : 0.001);
}

/* Clears the progress line, so that a line of output can be printed in its place. */
static void
progress_clear(struct progress *p)
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
static void
progress_step(struct progress *p)
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
static void
progress_end(struct progress *p, const char *extra)
{
	double now = now_seconds();

	progress_clear(p);
	fprintf(stderr, "%s audit %s: %lld record%s in %.1f s (%.0f/s)%s%s\n", CLI_PROG, p->what,
	    p->done, p->done == 1 ? "" : "s", now - p->start, progress_rate(p, now),
	    extra ? "; " : "", extra ? extra : "");
	fflush(stderr);
}

/* seal */

static int
do_seal(const struct opts *o)
{
	long long id, n, total = 0;
	char err[512];
	PGresult *res = NULL;
	PGconn *conn;
	int rc = EX_UNAVAILABLE;

	if ((conn = cli_connect("audit", o->db)) == NULL)
		return EX_UNAVAILABLE;
	/* airlock.seal() seals at most 50000 records per checkpoint: go on until none is left. */
	do {
		if (seal_run(conn, 1, &id, &n, err, sizeof(err)) == -1) {
			fprintf(stderr, "%s audit: %s", CLI_PROG, err);
			goto fail;
		}
		if (id > 0)
			printf("checkpoint %lld: %lld records\n", id, n);
		total += n;
	} while (id > 0);
	if (total == 0)
		printf("nothing to seal\n");
	if ((res = query(conn, head_sql, 0, NULL)) == NULL)
		goto fail;
	if (PQntuples(res) == 1)
		printf("head %s %s\n", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
	rc = EX_OK;
fail:
	PQclear(res);
	PQfinish(conn);
	return rc;
}

/* verify */

struct verify {
	struct progress pr;
	int is_tenant;
	int problems;
	long long checkpoints, records, pending;
	/* The checkpoint being walked. */
	int in_group;
	long long id;
	char hash[65];
	long long count, seen, last_seq;
	char last_id[AUDIT_ID_LEN + 1];	/* the record holding last_seq */
	int group_problems;
	SHA256_CTX ctx;
	/* What the next checkpoint must be: its id (0: any) and its prev_hash. */
	long long next_id;
	char next_prev[65];
};

static void problem(struct verify *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints one break: the first one is what verify is about; a few more help. */
static void
problem(struct verify *v, const char *fmt, ...)
{
	va_list ap;

	progress_clear(&v->pr);
	v->problems++;
	v->group_problems++;
	if (v->problems > MAX_PROBLEMS)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Ends the checkpoint being walked: its entry count and its hash. */
static void
end_group(struct verify *v)
{
	char hex[65];

	if (!v->in_group)
		return;
	v->in_group = 0;
	SHA256End(&v->ctx, hex);
	if (v->group_problems > 0)
		return;
	if (v->seen != v->count)
		problem(v, "checkpoint %lld: %s (it sealed %lld records, %lld are left)", v->id,
		    v->seen < v->count ? "removed" : "inserted", v->count, v->seen);
	else if (strcmp(hex, v->hash) != 0)
		problem(v, "checkpoint %lld: edited (its hash does not match its entries)", v->id);
}

static int
verify_row(const PGresult *res, void *arg)
{
	struct verify *v = arg;
	const char *prev = PQgetvalue(res, 0, 2), *call_id, *sealed_d, *sealed_cd, *now_cd;

	if (!PQgetisnull(res, 0, 6))
		progress_step(&v->pr);
	long long id = strtoll(PQgetvalue(res, 0, 0), NULL, 10), pos, seq;
	char hex[65];

	if (!v->in_group || id != v->id) {
		end_group(v);
		v->in_group = 1;
		v->id = id;
		v->checkpoints++;
		v->group_problems = 0;
		v->seen = 0;
		v->last_seq = -1;
		v->count = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
		strlcpy(v->hash, PQgetvalue(res, 0, 3), sizeof(v->hash));
		if (v->next_id > 0 && id != v->next_id)
			problem(v, "checkpoint %lld: removed (checkpoint %lld is missing)", id,
			    v->next_id);
		else if (v->next_prev[0] != '\0' && strcmp(prev, v->next_prev) != 0)
			problem(v, "checkpoint %lld: edited or reordered (it does not link to the "
			    "checkpoint before it)", id);
		v->next_id = v->is_tenant ? 0 : id + 1;
		strlcpy(v->next_prev, v->hash, sizeof(v->next_prev));
		SHA256Init(&v->ctx);
		SHA256Update(&v->ctx, (const uint8_t *)prev, strlen(prev));
		if (strcmp(PQgetvalue(res, 0, 1), "archive") == 0) {
			const char *info = PQgetvalue(res, 0, 5);

			SHA256Update(&v->ctx, (const uint8_t *)info, strlen(info));
			return 0;
		}
	}
	if (PQgetisnull(res, 0, 6))
		return 0;
	pos = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
	call_id = PQgetvalue(res, 0, 7);
	sealed_d = PQgetvalue(res, 0, 8);
	sealed_cd = value_or_null(res, 0, 9);
	now_cd = value_or_null(res, 0, 14);
	v->records++;
	if (!v->is_tenant && pos != v->seen) {
		problem(v, "checkpoint %lld position %lld: removed (a sealed entry is missing "
		    "before record %s)", v->id, v->seen, call_id);
		v->seen = pos;
	}
	v->seen++;
	SHA256Update(&v->ctx, (const uint8_t *)sealed_d, strlen(sealed_d));
	if (sealed_cd != NULL)
		SHA256Update(&v->ctx, (const uint8_t *)sealed_cd, strlen(sealed_cd));
	if (strcmp(PQgetvalue(res, 0, 10), "t") != 0) {
		problem(v, "record %s: removed (sealed in checkpoint %lld at position %lld, "
		    "missing from airlock.calls)", call_id, v->id, pos);
		return 0;
	}
	seq = strtoll(PQgetvalue(res, 0, 11), NULL, 10);
	strlcpy(hex, PQgetvalue(res, 0, 13), sizeof(hex));
	if (strcmp(hex, PQgetvalue(res, 0, 12)) != 0)
		problem(v, "record %s: edited (its fields no longer match its digest)", call_id);
	else if (strcmp(hex, sealed_d) != 0)
		problem(v, "record %s: edited (its digest differs from the one sealed in "
		    "checkpoint %lld)", call_id, v->id);
	else if ((sealed_cd == NULL) != (now_cd == NULL) ||
	    (sealed_cd != NULL && strcmp(sealed_cd, now_cd) != 0))
		problem(v, "record %s: edited (its changes differ from those sealed in "
		    "checkpoint %lld)", call_id, v->id);
	else if (seq <= v->last_seq)
		problem(v, "record %s: reordered (sealed in checkpoint %lld before record %s, "
		    "which was inserted earlier)", v->last_id, v->id, call_id);
	if (seq > v->last_seq) {
		v->last_seq = seq;
		strlcpy(v->last_id, call_id, sizeof(v->last_id));
	}
	return 0;
}

static int
unsealed_row(const PGresult *res, void *arg)
{
	struct verify *v = arg;

	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
		problem(v, "record %s: inserted (sealed nowhere, and its digest does not match "
		    "its fields: forged)", PQgetvalue(res, 0, 0));
	else if (strcmp(PQgetvalue(res, 0, 2), "t") == 0)
		problem(v, "record %s: inserted (sealed nowhere, though later records were "
		    "sealed more than " LATE_WINDOW " ago)", PQgetvalue(res, 0, 0));
	else
		v->pending++;		/* committed since the last seal */
	return 0;
}

static int
forged_seq_row(const PGresult *res, void *arg)
{
	problem(arg, "record %s: forged seq (%s was never issued: the sequence has given out "
	    "up to %s)", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
	return 0;
}

static int
forged_change_row(const PGresult *res, void *arg)
{
	const char *change = PQgetvalue(res, 0, 0), *call = PQgetvalue(res, 0, 1);

	if (strcmp(PQgetvalue(res, 0, 5), "t") == 0)
		problem(arg, "change %s: attached to record %s after it was sealed in checkpoint %s",
		    change, call, PQgetvalue(res, 0, 2));
	if (strcmp(PQgetvalue(res, 0, 6), "t") != 0)
		problem(arg, "change %s: attached to record %s, which is not a write (%s, %s)",
		    change, call, PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4));
	if (strcmp(PQgetvalue(res, 0, 7), "t") != 0)
		problem(arg, "change %s: attached to record %s by another transaction than the "
		    "record's", change, call);
	return 0;
}

static int
unrevoked_row(const PGresult *res, void *arg)
{
	problem(arg, "token %s: un-revoked (revoked by call %s, its revoked_at is empty now)",
	    PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
	return 0;
}

static int
unminted_row(const PGresult *res, void *arg)
{
	problem(arg, "token %s: minted without a tokens.mint call record", PQgetvalue(res, 0, 0));
	return 0;
}

/* Sets where the walk starts: after the checkpoint before --from, else after what
 * retention removed, else at checkpoint 1 with a zero prev_hash.  Returns 0 or -1. */
static int
verify_start(PGconn *conn, const struct opts *o, struct verify *v)
{
	const char *pv[2] = { o->from, o->tenant }, *av[1] = { o->tenant };
	PGresult *res = NULL;

	v->next_id = v->is_tenant ? 0 : 1;
	strlcpy(v->next_prev, ZERO_HASH, sizeof(v->next_prev));
	if (o->from != NULL) {
		res = query(conn, v->is_tenant ? pred_tenant_sql : pred_sql, v->is_tenant ? 2 : 1,
		    pv);
		if (res == NULL)
			return -1;
		if (PQntuples(res) == 1) {
			if (!v->is_tenant)
				v->next_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10) + 1;
			strlcpy(v->next_prev, PQgetvalue(res, 0, 1), sizeof(v->next_prev));
			PQclear(res);
			return 0;
		}
		PQclear(res);
	}
	if ((res = query(conn, archived_sql, 1, av)) == NULL)
		return -1;
	if (PQntuples(res) == 1) {
		if (!v->is_tenant) {
			v->next_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10) + 1;
			strlcpy(v->next_prev, PQgetvalue(res, 0, 1), sizeof(v->next_prev));
		} else if (!PQgetisnull(res, 0, 2))
			strlcpy(v->next_prev, PQgetvalue(res, 0, 2), sizeof(v->next_prev));
	}
	PQclear(res);
	return 0;
}

static int
do_verify(const struct opts *o)
{
	struct verify v;
	const char *wv[3] = { o->from, o->to, o->tenant }, *uv[3] = { o->tenant, o->from, o->to };
	const char *anv[2] = { o->anchor, o->tenant };
	const char *cv[4] = { o->tenant, o->from, o->to, NULL };
	char extra[64];
	PGresult *res = NULL;
	PGconn *conn;
	int rc = EX_UNAVAILABLE;

	memset(&v, 0, sizeof(v));
	v.is_tenant = o->tenant != NULL;
	if ((conn = cli_connect("audit", o->db)) == NULL)
		return EX_UNAVAILABLE;
	progress_start(&v.pr, "verify", conn, cv);
	/* One snapshot for the whole walk; nothing but pg_catalog on the search path, so no
	 * function or operator of the database's owners takes part. */
	if ((res = query(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL)) == NULL)
		goto fail;
	PQclear(res);
	if ((res = query(conn, "SET LOCAL search_path = pg_catalog, pg_temp", 0, NULL)) == NULL)
		goto fail;
	PQclear(res);
	res = NULL;
	if (verify_start(conn, o, &v) == -1)
		goto fail;
	if (stream(conn, v.is_tenant ? walk_tenant_sql : walk_sql, v.is_tenant ? 3 : 2, wv,
	    verify_row, &v) == -1)
		goto fail;
	end_group(&v);
	if (stream(conn, unsealed_sql, 3, uv, unsealed_row, &v) == -1 ||
	    stream(conn, forged_seq_sql, 1, uv, forged_seq_row, &v) == -1 ||
	    stream(conn, forged_changes_sql, 1, uv, forged_change_row, &v) == -1 ||
	    stream(conn, unrevoked_sql, 1, uv, unrevoked_row, &v) == -1 ||
	    stream(conn, unminted_sql, 1, uv, unminted_row, &v) == -1)
		goto fail;
	if (o->anchor != NULL) {
		if ((res = query(conn, v.is_tenant ? anchor_tenant_sql : anchor_sql,
		    v.is_tenant ? 2 : 1, anv)) == NULL)
			goto fail;
		if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
			problem(&v, "anchor %s: tail removed (the chain, which ends at %s, no longer "
			    "holds the anchor)", o->anchor, v.checkpoints > 0 ? v.next_prev :
			    "no checkpoint");
	}
	if (v.problems > MAX_PROBLEMS)
		printf("... and %d more\n", v.problems - MAX_PROBLEMS);
	if (v.problems > 0) {
		fprintf(stderr, "%s audit: verify: BROKEN (%d problems)\n", CLI_PROG, v.problems);
		rc = EX_DATAERR;
	} else {
		printf("intact: %lld checkpoints, %lld records sealed, %lld not sealed yet%s%s\n",
		    v.checkpoints, v.records, v.pending, v.checkpoints > 0 ? "; head " : "",
		    v.checkpoints > 0 ? v.next_prev : "");
		rc = EX_OK;
	}
	snprintf(extra, sizeof(extra), "%lld checkpoints, %d problems", v.checkpoints,
	    v.problems);
	progress_end(&v.pr, extra);
fail:
	PQclear(res);
	PQfinish(conn);
	return rc;
}

/* export and archive */

struct export {
	struct progress pr;
	FILE *out;
	long long lines;
	SHA256_CTX ctx;
	int is_write_error;
};

static int
export_row(const PGresult *res, void *arg)
{
	struct export *e = arg;
	const char *line = PQgetvalue(res, 0, 0);
	size_t len = strlen(line);

	SHA256Update(&e->ctx, (const uint8_t *)line, len);
	SHA256Update(&e->ctx, (const uint8_t *)"\n", 1);
	if (fwrite(line, 1, len, e->out) != len || fputc('\n', e->out) == EOF) {
		e->is_write_error = 1;
		return -1;
	}
	e->lines++;
	progress_step(&e->pr);
	return 0;
}

static int
do_export(const struct opts *o)
{
	const char *values[4] = { o->tenant, o->from, o->to, NULL };
	struct export e;
	PGconn *conn;
	int rc = EX_OK;

	if (o->format == NULL || strcmp(o->format, "jsonl") != 0) {
		cli_warnx("audit", "export needs --format jsonl");
		return EX_USAGE;
	}
	memset(&e, 0, sizeof(e));
	e.out = stdout;
	SHA256Init(&e.ctx);
	if ((conn = cli_connect("audit", o->db)) == NULL)
		return EX_UNAVAILABLE;
	progress_start(&e.pr, "export", conn, values);
	if (stream(conn, export_sql, 4, values, export_row, &e) == -1)
		rc = e.is_write_error ? EX_IOERR : EX_UNAVAILABLE;
	if (fflush(stdout) == EOF)
		rc = EX_IOERR;
	progress_end(&e.pr, rc == EX_OK ? NULL : "stopped by an error");
	PQfinish(conn);
	return rc;
}

static int
do_archive(const struct opts *o)
{
	static const char through_sql[] =
	    "SELECT max(id) FROM airlock.checkpoints WHERE kind = 'seal'"
	    " AND created_at < $1::timestamptz";
	static const char archive_sql[] = "SELECT airlock.archive($1::bigint, $2::bigint, $3)";
	const char *tv[1] = { o->before }, *values[4] = { NULL, NULL, NULL, NULL }, *av[3];
	char through[24], lines[24], hex[65], tmp[4096], err[512];
	struct export e;
	long long id, n;
	PGresult *res = NULL;
	PGconn *conn;
	int rc = EX_UNAVAILABLE;

	if (o->before == NULL || o->out == NULL) {
		cli_warnx("audit", "archive needs --before TS and --out FILE");
		return EX_USAGE;
	}
	memset(&e, 0, sizeof(e));
	if ((conn = cli_connect("audit", o->db)) == NULL)
		return EX_UNAVAILABLE;
	/* What is committed is sealed first, so that what is archived is in the chain. */
	do {
		if (seal_run(conn, 1, &id, &n, err, sizeof(err)) == -1) {
			fprintf(stderr, "%s audit: %s", CLI_PROG, err);
			goto fail;
		}
	} while (id > 0);
	if ((res = query(conn, through_sql, 1, tv)) == NULL)
		goto fail;
	if (PQgetisnull(res, 0, 0)) {
		printf("nothing sealed before %s\n", o->before);
		rc = EX_OK;
		goto fail;
	}
	strlcpy(through, PQgetvalue(res, 0, 0), sizeof(through));
	PQclear(res);
	res = NULL;
	/* The file is written whole under a temporary name and renamed once the removal has
	 * committed, so FILE exists only for records that are gone from the database. */
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.partial", o->out) >= sizeof(tmp)) {
		cli_warnx("audit", "path too long");
		rc = EX_USAGE;
		goto fail;
	}
	if ((e.out = fopen(tmp, "w")) == NULL) {
		cli_warnx("audit", "cannot write %s: %s", tmp, strerror(errno));
		rc = EX_CANTCREAT;
		goto fail;
	}
	SHA256Init(&e.ctx);
	values[3] = through;
	progress_start(&e.pr, "archive", conn, values);
	if (stream(conn, export_sql, 4, values, export_row, &e) == -1 || fflush(e.out) == EOF ||
	    fsync(fileno(e.out)) == -1) {
		progress_end(&e.pr, "stopped by an error; nothing removed");
		if (e.is_write_error)
			cli_warnx("audit", "cannot write %s: %s", tmp, strerror(errno));
		rc = e.is_write_error ? EX_CANTCREAT : EX_UNAVAILABLE;
		goto fail;
	}
	SHA256End(&e.ctx, hex);
	snprintf(lines, sizeof(lines), "%lld", e.lines);
	av[0] = through;
	av[1] = lines;
	av[2] = hex;
	if ((res = query(conn, archive_sql, 3, av)) == NULL)
		goto fail;
	if (rename(tmp, o->out) == -1) {
		cli_warnx("audit", "records removed, but cannot rename %s to %s: %s", tmp, o->out,
		    strerror(errno));
		rc = EX_CANTCREAT;
		goto fail;
	}
	progress_end(&e.pr, NULL);
	printf("archived %lld records sealed up to checkpoint %s to %s (sha256 %s); "
	    "archive checkpoint %s\n", e.lines, through, o->out, hex, PQgetvalue(res, 0, 0));
	rc = EX_OK;
fail:
	if (e.out != NULL) {
		fclose(e.out);
		if (rc != EX_OK)
			unlink(tmp);
	}
	PQclear(res);
	PQfinish(conn);
	return rc;
}

/* replay */

enum verdict { V_MATCH, V_DIFFERS, V_REFUSED, V_NOT_REPLAYABLE, V_COUNT };
static const char *const verdict_names[V_COUNT] = { "match", "differs", "refused",
    "not_replayable" };
static const char *const verdict_titles[V_COUNT] = { "match", "differs", "now refused",
    "not replayable" };

struct replay {
	const struct opts *o;
	struct db db;
	struct catalog *cat;
	struct progress pr;
	long long counts[V_COUNT];
	int is_unavailable;
};

static const char replay_list_sql[] =
    "SELECT c.id::text, c.tenant, t.role, c.tool, c.arguments::text, c.result_digest,"
    " " UTC_TEXT("c.at")
    " FROM airlock.calls c LEFT JOIN airlock.tenants t ON t.name = c.tenant"
    " WHERE c.method = 'tools/call' AND c.outcome = 'ok'"
    " AND ($1::text IS NULL OR c.tenant = $1) AND ($2::timestamptz IS NULL OR c.at >= $2)"
    " AND ($3::timestamptz IS NULL OR c.at < $3) ORDER BY c.seq";
static const char replay_count_sql[] =
    "SELECT count(*) FROM airlock.calls c WHERE c.method = 'tools/call' AND c.outcome = 'ok'"
    " AND ($1::text IS NULL OR c.tenant = $1) AND ($2::timestamptz IS NULL OR c.at >= $2)"
    " AND ($3::timestamptz IS NULL OR c.at < $3)";
/*
 * A write's after-images now ($1, a dry-run's captured changes) against the recorded
 * ones (call $2), in capture order.  Left out of the comparison: columns a re-run cannot
 * reproduce, those filled from a sequence (identity, serial) or of a date/time type, and
 * an inserted row's key.  Returns the counts and the first difference, if any.
 */
static const char compare_sql[] =
    "WITH vol AS (SELECT format('%I.%I', n.nspname, r.relname) AS t,"
    "  array_agg(a.attname::text) AS cols"
    "  FROM pg_attribute a JOIN pg_class r ON r.oid = a.attrelid"
    "  JOIN pg_namespace n ON n.oid = r.relnamespace"
    "  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
    "  WHERE a.attnum > 0 AND NOT a.attisdropped AND (a.attidentity <> ''"
    "   OR a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype,"
    "    'time'::regtype, 'timetz'::regtype)"
    "   OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%')"
    "  GROUP BY 1),"
    " now_ AS (SELECT e.o, jsonb_build_object('table', e.c->>'table_name', 'op', e.c->>'op',"
    "   'key', CASE WHEN e.c->>'op' = 'insert' THEN NULL ELSE e.c->'key' END,"
    "   'after', (e.c->'after') - coalesce(v.cols, '{}'::text[])) AS v"
    "  FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(c, o)"
    "  LEFT JOIN vol v ON v.t = e.c->>'table_name'),"
    " was AS (SELECT row_number() OVER (ORDER BY ch.id) AS o,"
    "   jsonb_build_object('table', ch.table_name, 'op', ch.op,"
    "   'key', CASE WHEN ch.op = 'insert' THEN NULL ELSE ch.key END,"
    "   'after', ch.after - coalesce(v.cols, '{}'::text[])) AS v"
    "  FROM airlock.changes ch LEFT JOIN vol v ON v.t = ch.table_name"
    "  WHERE ch.call_id = $2::uuid)"
    " SELECT (SELECT count(*) FROM was), (SELECT count(*) FROM now_), d.o, d.wv::text, d.nv::text"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT coalesce(w.o, n.o) AS o, w.v AS wv,"
    "  n.v AS nv FROM was w FULL JOIN now_ n ON n.o = w.o WHERE w.v IS DISTINCT FROM n.v"
    "  ORDER BY 1 LIMIT 1) d ON true";

/* Column col of res's first row as JSON (a new reference): null when NULL or not JSON. */
static json_t *
json_or_null(const PGresult *res, int col)
{
	json_t *v = NULL;

	if (!PQgetisnull(res, 0, col))
		v = json_loads(PQgetvalue(res, 0, col), JSON_DECODE_ANY, NULL);
	return v != NULL ? v : json_null();
}

static void
no_finish(struct audit_record *rec, json_t *result, void *arg)
{
	(void)rec; (void)result; (void)arg;
}

/* Replays a read; returns its verdict with the difference in detail. */
static enum verdict
replay_read(struct replay *r, const struct tool *t, const char *role, json_t *args,
    const char *recorded, json_t **detail)
{
	struct rpc_error err;
	char id[AUDIT_ID_LEN + 1], hex[65];
	json_t *rows = NULL, *view;
	int truncated;

	memset(&err, 0, sizeof(err));
	audit_new_id(id);
	if (call_read(&r->db, t, r->cat->version, role, id, args, NULL, &rows, &truncated,
	    &err) == -1) {
		if (strcmp(err.reason, "backend_unavailable") == 0)
			r->is_unavailable = 1;
		*detail = json_pack("{s:s, s:s}", "reason", err.reason, "message", err.message);
		rpc_error_clear(&err);
		return V_REFUSED;
	}
	view = json_pack("{s:O, s:I, s:b, s:b}", "rows", rows, "row_count",
	    (json_int_t)json_array_size(rows), "truncated", truncated, "dry_run", 0);
	audit_digest(view, hex);
	json_decref(view);
	if (recorded != NULL && strcmp(hex, recorded) == 0) {
		json_decref(rows);
		return V_MATCH;
	}
	/* Only the digest of the recorded rows is kept: the difference is said by digests
	 * and by what the rows are now. */
	*detail = json_pack("{s:s?, s:s, s:I, s:o}", "recorded_digest", recorded, "digest", hex,
	    "row_count", (json_int_t)json_array_size(rows), "rows", rows);
	return V_DIFFERS;
}

/* Replays a write as a dry-run; returns its verdict with the difference in detail. */
static enum verdict
replay_write(struct replay *r, const struct tool *t, const char *role, const char *tenant,
    const char *call_id, json_t *args, json_t **detail)
{
	struct audit_record rec;
	struct write_stmt st;
	struct rpc_error err;
	enum verdict verdict = V_REFUSED;
	char name[96], fp[65], **values = NULL;
	const char *cv[2];
	PGresult *res = NULL;
	json_t *sc = NULL;
	int is_replay, is_recorded;

	memset(&err, 0, sizeof(err));
	audit_record_init(&rec, "tools/call", "airlockctl");
	strlcpy(rec.tenant, tenant, sizeof(rec.tenant));
	strlcpy(rec.tool, t->name, sizeof(rec.tool));
	rec.is_dry_run = 1;
	snprintf(name, sizeof(name), "t%lu_%s", r->cat->version, t->name);
	if (db_ensure(&r->db) == -1 || db_prepare(&r->db, name, t->sql, &res) == -1) {
		if (res == NULL)
			r->is_unavailable = 1;
		*detail = json_pack("{s:s}", "reason", res == NULL ? "backend_unavailable" :
		    "statement_refused");
		goto out;
	}
	if (write_stmt_tool(&st, t, name, args, &values) == -1) {
		*detail = json_pack("{s:s}", "reason", "internal");
		goto out;
	}
	write_fingerprint(t->name, args, fp);
	sc = write_run(&r->db, &st, role, tenant, t->name, fp, NULL, NULL, 1, &rec, no_finish,
	    NULL, &is_replay, &is_recorded, &err);
	if (sc == NULL) {
		if (err.reason != NULL && strcmp(err.reason, "backend_unavailable") == 0)
			r->is_unavailable = 1;
		*detail = json_pack("{s:s, s:s}", "reason", err.reason ? err.reason : "internal",
		    "message", err.message);
		rpc_error_clear(&err);
		goto out;
	}
	cv[0] = rec.changes != NULL ? rec.changes : "[]";
	cv[1] = call_id;
	res = PQexecParams(r->db.conn, compare_sql, 2, NULL, cv, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		r->is_unavailable = PQstatus(r->db.conn) != CONNECTION_OK;
		*detail = json_pack("{s:s, s:s}", "reason", "internal", "message",
		    PQresultErrorMessage(res));
		goto out;
	}
	if (PQgetisnull(res, 0, 2)) {
		verdict = V_MATCH;
		goto out;
	}
	verdict = V_DIFFERS;
	*detail = json_pack("{s:I, s:I, s:I, s:o, s:o}",
	    "recorded_changes", (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10),
	    "changes", (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10),
	    "at_change", (json_int_t)strtoll(PQgetvalue(res, 0, 2), NULL, 10),
	    "recorded", json_or_null(res, 3), "now", json_or_null(res, 4));
out:
	PQclear(res);
	json_decref(sc);
	write_unbind(t, values);
	audit_record_clear(&rec);
	return verdict;
}

/* The verdict for one record; *detail gets a new reference or stays NULL. */
static enum verdict
replay_one(struct replay *r, const PGresult *res, json_t **detail)
{
	const char *call_id = PQgetvalue(res, 0, 0), *tenant = value_or_null(res, 0, 1);
	const char *role = value_or_null(res, 0, 2), *name = value_or_null(res, 0, 3);
	const char *k, *bad = NULL;
	const struct tool *t;
	enum verdict verdict;
	json_t *args = NULL, *checked = NULL, *props, *val;
	char msg[256];

	if (name == NULL || (t = tool_find(r->cat, name)) == NULL) {
		*detail = json_pack("{s:s}", "reason", "tool_not_found");
		return V_REFUSED;
	}
	if (t->kind == TOOL_CODE) {
		*detail = json_pack("{s:s}", "reason", "code step");
		return V_NOT_REPLAYABLE;
	}
	args = PQgetisnull(res, 0, 4) ? json_object() :
	    json_loads(PQgetvalue(res, 0, 4), JSON_DECODE_ANY, NULL);
	props = json_object_get(t->schema, "properties");
	/* Arguments past the record's cap were kept as a digest and a prefix only. */
	if (json_is_string(json_object_get(args, "hmac_sha256")) &&
	    json_is_integer(json_object_get(args, "bytes"))) {
		*detail = json_pack("{s:s}", "reason", "arguments kept as a digest");
		json_decref(args);
		return V_NOT_REPLAYABLE;
	}
	/* A sensitive argument was recorded as its digest: the value to run it with is gone. */
	json_object_foreach(args, k, val) {
		if (json_is_true(json_object_get(json_object_get(props, k), "sensitive")) ||
		    (json_is_object(val) && json_object_size(val) == 1 &&
		    (json_is_string(json_object_get(val, "hmac_sha256")) ||
		    json_is_string(json_object_get(val, "sha256"))))) {
			*detail = json_pack("{s:s, s:s}", "reason", "sensitive argument",
			    "argument", k);
			json_decref(args);
			return V_NOT_REPLAYABLE;
		}
	}
	if (tenant == NULL || role == NULL) {
		json_decref(args);
		*detail = json_pack("{s:s}", "reason", "tenant_not_found");
		return V_REFUSED;
	}
	if ((checked = tool_check_args(t, args, &bad, msg, sizeof(msg))) == NULL) {
		json_decref(args);
		*detail = json_pack("{s:s, s:s}", "reason", "invalid_arguments", "message", msg);
		return V_REFUSED;
	}
	if (t->kind == TOOL_READ)
		verdict = replay_read(r, t, role, checked, value_or_null(res, 0, 5), detail);
	else
		verdict = replay_write(r, t, role, tenant, call_id, checked, detail);
	json_decref(args);
	json_decref(checked);
	return verdict;
}

static int
replay_row(const PGresult *res, void *arg)
{
	struct replay *r = arg;
	enum verdict verdict;
	json_t *detail = NULL, *line;
	char *text, *dtext;

	verdict = replay_one(r, res, &detail);
	if (r->is_unavailable) {
		json_decref(detail);
		cli_warnx("audit", "replay: the database became unavailable");
		return -1;
	}
	r->counts[verdict]++;
	if (r->o->is_json) {
		line = json_pack("{s:s, s:s?, s:s?, s:s, s:s, s:o}", "call_id", PQgetvalue(res, 0, 0),
		    "tenant", value_or_null(res, 0, 1), "tool", value_or_null(res, 0, 3),
		    "at", PQgetvalue(res, 0, 6), "status", verdict_names[verdict],
		    "detail", detail ? detail : json_null());
		if ((text = json_dumps(line, JSON_COMPACT)) != NULL)
			printf("%s\n", text);
		free(text);
		json_decref(line);
	} else {
		if (verdict != V_MATCH) {
			dtext = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
			progress_clear(&r->pr);
			printf("%s  %s  %s  %s\n", PQgetvalue(res, 0, 0), value_or_null(res, 0, 3) ?
			    PQgetvalue(res, 0, 3) : "-", verdict_titles[verdict], dtext ? dtext : "");
			fflush(stdout);
			free(dtext);
		}
		json_decref(detail);
	}
	progress_step(&r->pr);
	return 0;
}

static int
do_replay(const struct opts *o)
{
	const char *values[3] = { o->tenant, o->from, o->to };
	char conninfo[4096], err[1024];
	struct replay r;
	PGresult *res = NULL;
	PGconn *list = NULL;
	json_t *summary;
	char *text;
	int i, rc = EX_UNAVAILABLE;

	memset(&r, 0, sizeof(r));
	r.o = o;
	if (cli_conninfo(o->db, conninfo, sizeof(conninfo)) == -1) {
		cli_warnx("audit", "database URL too long");
		return EX_USAGE;
	}
	/* Two connections: one streams the records, the other runs them. */
	db_init(&r.db, conninfo);
	if ((list = cli_connect("audit", o->db)) == NULL || db_ensure(&r.db) == -1) {
		if (list != NULL)
			cli_warnx("audit", "cannot connect to the database");
		goto fail;
	}
	if ((r.cat = tool_load(o->tools ? o->tools : "tools", r.db.conn, err, sizeof(err))) ==
	    NULL) {
		cli_warnx("audit", "tool catalog refused: %s", err);
		rc = EX_CONFIG;
		goto fail;
	}
	progress_start(&r.pr, "replay", NULL, NULL);
	if (r.pr.is_tty) {
		if ((res = query(list, replay_count_sql, 3, values)) == NULL)
			goto fail;
		r.pr.total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
		res = NULL;
	}
	if (stream(list, replay_list_sql, 3, values, replay_row, &r) == -1)
		goto fail;
	progress_end(&r.pr, NULL);
	if (o->is_json) {
		summary = json_object();
		for (i = 0; i < V_COUNT; i++)
			json_object_set_new(summary, verdict_names[i], json_integer(r.counts[i]));
		summary = json_pack("{s:o}", "summary", summary);
		if ((text = json_dumps(summary, JSON_COMPACT)) != NULL)
			printf("%s\n", text);
		free(text);
		json_decref(summary);
	} else {
		printf("\n%-16s %10s\n", "replayed", "calls");
		for (i = 0; i < V_COUNT; i++)
			printf("%-16s %10lld\n", verdict_titles[i], r.counts[i]);
		printf("%-16s %10lld\n", "total", r.pr.done);
	}
	rc = r.counts[V_DIFFERS] > 0 || r.counts[V_REFUSED] > 0 ? EX_DATAERR : EX_OK;
fail:
	PQclear(res);
	tool_catalog_free(r.cat);
	db_close(&r.db);
	PQfinish(list);
	return rc;
}

int
cmd_audit(int argc, char **argv)
{
	struct opts o;
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
		return do_seal(&o);
	if (strcmp(action, "verify") == 0)
		return do_verify(&o);
	if (strcmp(action, "export") == 0)
		return do_export(&o);
	if (strcmp(action, "replay") == 0)
		return do_replay(&o);
	if (strcmp(action, "archive") == 0)
		return do_archive(&o);
	cli_warnx("audit", "unknown action %s (see --help)", action);
	return EX_USAGE;
}
