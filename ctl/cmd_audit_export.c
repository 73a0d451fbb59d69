/* cmd_audit_export.c: airlockctl audit export and archive: the record as JSON lines. */
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

/* One line per call, stable field names; $4: only records sealed up to that checkpoint. */
static const char export_sql[] =
    "SELECT pg_catalog.jsonb_build_object('id', c.id::text, 'seq', c.seq,"
    " 'at', " UTC_TEXT(
	"c.at") ", 'tenant', c.tenant, 'token_id', c.token_id,"
		" 'task', c.task, 'method', c.method, 'tool', c.tool, 'arguments', c.arguments,"
		" 'dry_run', c.dry_run, 'idempotency_key', c.idempotency_key,"
		" 'plan_id', c.plan_id::text, 'outcome', c.outcome, 'reason', c.reason,"
		" 'duration_ms', c.duration_ms::numeric, 'result_digest', c.result_digest,"
		" 'client', c.client, 'egress', c.egress, 'trace_id', c.trace_id, 'digest', c.digest,"
		" 'checkpoint', s.checkpoint_id, 'changes', coalesce((SELECT pg_catalog.jsonb_agg("
		"  pg_catalog.jsonb_build_object('id', ch.id, 'table', ch.table_name, 'key', ch.key,"
		"  'op', ch.op, 'before', ch.before, 'after', ch.after, 'at', " UTC_TEXT(
		    "ch.at") ","
			     "  'digest', ch.digest) ORDER BY ch.id) FROM airlock.changes ch WHERE ch.call_id = c.id),"
			     "  '[]'::jsonb))::text AS line"
			     " FROM airlock.calls c LEFT JOIN airlock.sealed s ON s.call_id = c.id"
			     " WHERE ($1::text IS NULL OR c.tenant = $1) AND ($2::timestamptz IS NULL OR c.at >= $2)"
			     " AND ($3::timestamptz IS NULL OR c.at < $3)"
			     " AND ($4::bigint IS NULL OR s.checkpoint_id <= $4) ORDER BY c.seq";

/* export and archive */

struct export
{
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
	const char *line = db_text(res, 0, "line");
	size_t len = strlen(line);

	SHA256Update(&e->ctx, (const uint8_t *)line, len);
	SHA256Update(&e->ctx, (const uint8_t *)"\n", 1);
	if (fwrite(line, 1, len, e->out) != len || fputc('\n', e->out) == EOF) {
		e->is_write_error = 1;
		return -1;
	}
	e->lines++;
	cmd_audit_progress_step(&e->pr);
	return 0;
}

int
cmd_audit_export(const struct audit_opts *o)
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
	cmd_audit_progress_start(&e.pr, "export", conn, values);
	if (cmd_audit_stream(conn, export_sql, 4, values, export_row, &e) == -1)
		rc = e.is_write_error ? EX_IOERR : EX_UNAVAILABLE;
	if (fflush(stdout) == EOF)
		rc = EX_IOERR;
	cmd_audit_progress_end(&e.pr, rc == EX_OK ? NULL : "stopped by an error");
	sql_close(conn);
	return rc;
}

int
cmd_audit_archive(const struct audit_opts *o)
{
	static const char through_sql[] =
	    "SELECT max(id) AS through FROM airlock.checkpoints WHERE kind = 'seal'"
	    " AND created_at < $1::timestamptz";
	static const char archive_sql[] =
	    "SELECT airlock.archive($1::bigint, $2::bigint, $3) AS checkpoint_id";
	const char *tv[1] = { o->before }, *values[4] = { NULL, NULL, NULL, NULL }, *av[3];
	char through[24], lines[24], hex[65], tmp[4096];
	struct export e;
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
	if (cmd_audit_seal_all(conn, 0) == -1)
		goto fail;
	if ((res = cmd_audit_query(conn, through_sql, 1, tv)) == NULL)
		goto fail;
	if (db_is_null(res, 0, "through")) {
		printf("nothing sealed before %s\n", o->before);
		rc = EX_OK;
		goto fail;
	}
	strlcpy(through, db_text(res, 0, "through"), sizeof(through));
	sql_clear(res);
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
	cmd_audit_progress_start(&e.pr, "archive", conn, values);
	if (cmd_audit_stream(conn, export_sql, 4, values, export_row, &e) == -1 ||
	    fflush(e.out) == EOF || fsync(fileno(e.out)) == -1) {
		cmd_audit_progress_end(&e.pr, "stopped by an error; nothing removed");
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
	if ((res = cmd_audit_query(conn, archive_sql, 3, av)) == NULL)
		goto fail;
	if (rename(tmp, o->out) == -1) {
		cli_warnx("audit", "records removed, but cannot rename %s to %s: %s", tmp, o->out,
		    strerror(errno));
		rc = EX_CANTCREAT;
		goto fail;
	}
	cmd_audit_progress_end(&e.pr, NULL);
	printf("archived %lld records sealed up to checkpoint %s to %s (sha256 %s); "
	       "archive checkpoint %s\n",
	    e.lines, through, o->out, hex, db_text(res, 0, "checkpoint_id"));
	rc = EX_OK;
fail:
	if (e.out != NULL) {
		fclose(e.out);
		if (rc != EX_OK)
			unlink(tmp);
	}
	sql_clear(res);
	sql_close(conn);
	return rc;
}
