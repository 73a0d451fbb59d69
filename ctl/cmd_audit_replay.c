/* cmd_audit_replay.c: airlockctl audit replay: recorded calls run again, compared to the record. */
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
#include "airlock/read.h"
#include "airlock/seal.h"
#include "airlock/sql.h"
#include "airlock/stmt.h"
#include "airlock/tool.h"
#include "airlock/write.h"

#include "cmd_audit.h"

/* replay */

enum verdict { V_MATCH, V_DIFFERS, V_REFUSED, V_NOT_REPLAYABLE, V_COUNT };
static const char *const verdict_names[V_COUNT] = { "match", "differs", "refused",
	"not_replayable" };
static const char *const verdict_titles[V_COUNT] = { "match", "differs", "now refused",
	"not replayable" };

struct replay {
	const struct audit_opts *o;
	struct db db;
	struct catalog *cat;
	struct progress pr;
	long long counts[V_COUNT];
	int is_unavailable;
};

static const char replay_list_sql[] =
    "SELECT c.id::text AS call_id, c.tenant, t.role, c.tool, c.arguments::text AS arguments,"
    " c.result_digest, " UTC_TEXT(
	"c.at") " AS at FROM airlock.calls c LEFT JOIN airlock.tenants t ON t.name = c.tenant"
		" WHERE c.method = 'tools/call' AND c.outcome = 'ok'"
		" AND ($1::text IS NULL OR c.tenant = $1) AND ($2::timestamptz IS NULL OR c.at >= $2)"
		" AND ($3::timestamptz IS NULL OR c.at < $3) ORDER BY c.seq";
static const char replay_count_sql[] =
    "SELECT count(*) AS records FROM airlock.calls c"
    " WHERE c.method = 'tools/call' AND c.outcome = 'ok'"
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
    " SELECT (SELECT count(*) FROM was) AS recorded_changes,"
    " (SELECT count(*) FROM now_) AS changes, d.o AS at_change, d.wv::text AS recorded,"
    " d.nv::text AS now"
    " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT coalesce(w.o, n.o) AS o, w.v AS wv,"
    "  n.v AS nv FROM was w FULL JOIN now_ n ON n.o = w.o WHERE w.v IS DISTINCT FROM n.v"
    "  ORDER BY 1 LIMIT 1) d ON true";

/* The column named column of res's first row as JSON (a new reference): null when NULL or
 * not JSON. */
static json_t *
json_or_null(const PGresult *res, const char *column)
{
	json_t *v = NULL;

	if (!db_is_null(res, 0, column))
		v = json_loads(db_value(res, 0, column), JSON_DECODE_ANY, NULL);
	return v != NULL ? v : json_null();
}

static void
no_finish(struct audit_record *rec, json_t *result, void *arg)
{
	(void)rec;
	(void)result;
	(void)arg;
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
	if (read_run(&r->db, t, r->cat->version, role, id, args, NULL, &rows, &truncated, &err) ==
	    -1) {
		if (strcmp(err.reason, "backend_unavailable") == 0)
			r->is_unavailable = 1;
		*detail = json_pack("{s:s, s:s}", "reason", err.reason, "message", err.message);
		rpc_error_clear(&err);
		return V_REFUSED;
	}
	view = read_result(rows, truncated);
	call_digest(view, hex);
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
	struct write_req req;
	struct rpc_error err;
	enum verdict verdict = V_REFUSED;
	char name[STMT_NAME_MAX], fp[65], **values = NULL;
	const char *cv[2];
	PGresult *res = NULL;
	json_t *sc = NULL;
	int is_replay, is_recorded;

	memset(&err, 0, sizeof(err));
	audit_record_init(&rec, "tools/call", "airlockctl");
	strlcpy(rec.tenant, tenant, sizeof(rec.tenant));
	strlcpy(rec.tool, t->name, sizeof(rec.tool));
	rec.is_dry_run = 1;
	stmt_name(name, r->cat->version, t);
	if (db_ensure(&r->db) == -1 || db_prepare(&r->db, name, t->sql, &res) == -1) {
		if (res == NULL)
			r->is_unavailable = 1;
		*detail = json_pack("{s:s}", "reason",
		    res == NULL ? "backend_unavailable" : "statement_refused");
		goto out;
	}
	if (write_stmt_tool(&st, t, name, args, &values) == -1) {
		*detail = json_pack("{s:s}", "reason", "internal");
		goto out;
	}
	write_fingerprint(t->name, args, fp);
	memset(&req, 0, sizeof(req));
	req.st = &st;
	req.role = role;
	req.tenant = tenant;
	req.tool = t->name;
	req.fingerprint = fp;
	req.is_dry_run = 1;
	req.rec = &rec;
	req.finish = no_finish;
	sc = write_run(&r->db, &req, &is_replay, &is_recorded, &err);
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
	/* Quiet: the verdict's detail says why. */
	if (sql_query(r->db.conn, NULL, compare_sql, 2, cv, &res) != EX_OK || sql_rows(res) != 1) {
		r->is_unavailable = !sql_is_connected(r->db.conn);
		*detail = json_pack("{s:s, s:s}", "reason", "internal", "message",
		    res == NULL ? sql_conn_error(r->db.conn) : "");
		goto out;
	}
	if (db_is_null(res, 0, "at_change")) {
		verdict = V_MATCH;
		goto out;
	}
	verdict = V_DIFFERS;
	*detail = json_pack("{s:I, s:I, s:I, s:o, s:o}", "recorded_changes",
	    (json_int_t)strtoll(db_text(res, 0, "recorded_changes"), NULL, 10), "changes",
	    (json_int_t)strtoll(db_text(res, 0, "changes"), NULL, 10), "at_change",
	    (json_int_t)strtoll(db_text(res, 0, "at_change"), NULL, 10), "recorded",
	    json_or_null(res, "recorded"), "now", json_or_null(res, "now"));
out:
	sql_clear(res);
	json_decref(sc);
	write_unbind(t, values);
	audit_record_clear(&rec);
	return verdict;
}

/* The verdict for one record; *detail gets a new reference or stays NULL. */
static enum verdict
replay_one(struct replay *r, const PGresult *res, json_t **detail)
{
	const char *call_id = db_text(res, 0, "call_id"), *tenant = db_value(res, 0, "tenant");
	const char *role = db_value(res, 0, "role"), *name = db_value(res, 0, "tool");
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
	args = db_is_null(res, 0, "arguments")
	    ? json_object()
	    : json_loads(db_value(res, 0, "arguments"), JSON_DECODE_ANY, NULL);
	props = json_object_get(t->schema, "properties");
	/* Arguments past the record's cap were kept as a digest and a prefix only. */
	if (json_is_string(json_object_get(args, "hmac_sha256")) &&
	    json_is_integer(json_object_get(args, "bytes"))) {
		*detail = json_pack("{s:s}", "reason", "arguments kept as a digest");
		json_decref(args);
		return V_NOT_REPLAYABLE;
	}
	/* A sensitive argument was recorded as its digest: the value to run it with is gone. */
	json_object_foreach (args, k, val) {
		if (json_is_true(json_object_get(json_object_get(props, k), "sensitive")) ||
		    (json_is_object(val) && json_object_size(val) == 1 &&
			(json_is_string(json_object_get(val, "hmac_sha256")) ||
			    json_is_string(json_object_get(val, "sha256"))))) {
			*detail =
			    json_pack("{s:s, s:s}", "reason", "sensitive argument", "argument", k);
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
		verdict =
		    replay_read(r, t, role, checked, db_value(res, 0, "result_digest"), detail);
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
		line = json_pack("{s:s, s:s?, s:s?, s:s, s:s, s:o}", "call_id",
		    db_text(res, 0, "call_id"), "tenant", db_value(res, 0, "tenant"), "tool",
		    db_value(res, 0, "tool"), "at", db_text(res, 0, "at"), "status",
		    verdict_names[verdict], "detail", detail ? detail : json_null());
		if ((text = json_dumps(line, JSON_COMPACT)) != NULL)
			printf("%s\n", text);
		free(text);
		json_decref(line);
	} else {
		if (verdict != V_MATCH) {
			dtext = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
			cmd_audit_progress_clear(&r->pr);
			printf("%s  %s  %s  %s\n", db_text(res, 0, "call_id"),
			    db_value(res, 0, "tool") ? db_value(res, 0, "tool") : "-",
			    verdict_titles[verdict], dtext ? dtext : "");
			fflush(stdout);
			free(dtext);
		}
		json_decref(detail);
	}
	cmd_audit_progress_step(&r->pr);
	return 0;
}

int
cmd_audit_replay(const struct audit_opts *o)
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
	cmd_audit_progress_start(&r.pr, "replay", NULL, NULL);
	if (r.pr.is_tty) {
		if ((res = cmd_audit_query(list, replay_count_sql, 3, values)) == NULL)
			goto fail;
		r.pr.total = strtoll(db_text(res, 0, "records"), NULL, 10);
		sql_clear(res);
		res = NULL;
	}
	if (cmd_audit_stream(list, replay_list_sql, 3, values, replay_row, &r) == -1)
		goto fail;
	cmd_audit_progress_end(&r.pr, NULL);
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
	sql_clear(res);
	tool_catalog_free(r.cat);
	db_close(&r.db);
	sql_close(list);
	return rc;
}
