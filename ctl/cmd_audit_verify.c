/* cmd_audit_verify.c: airlockctl audit seal and verify: checkpoints, and the chain against them. */
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

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
#define MAX_PROBLEMS 50
#define LATE_WINDOW "10 minutes" /* as airlock.seal()'s horizon */

/*
 * The canonical forms, as migrations/0007_audit.sql defines them, sent from here so that
 * verify does not depend on functions an owner could replace: only pg_catalog is used,
 * and the session's search_path is pg_catalog while verify runs.
 */
#define CALL_CANONICAL                                                                               \
	"pg_catalog.jsonb_build_object('id', c.id::text, 'seq', c.seq,"                              \
	" 'at', " UTC_TEXT(                                                                          \
	    "c.at") ", 'tenant', c.tenant, 'token_id', c.token_id,"                                  \
		    " 'task', c.task, 'method', c.method, 'tool', c.tool, 'arguments', c.arguments," \
		    " 'dry_run', c.dry_run, 'idempotency_key', c.idempotency_key,"                   \
		    " 'plan_id', c.plan_id::text, 'outcome', c.outcome, 'reason', c.reason,"         \
		    " 'duration_ms', c.duration_ms::numeric, 'result_digest', c.result_digest,"      \
		    " 'client', c.client, 'egress', c.egress)::text"
#define CHANGE_CANONICAL                                                                  \
	"pg_catalog.jsonb_build_object('id', ch.id,"                                      \
	" 'call_id', ch.call_id::text, 'tenant', ch.tenant, 'table_name', ch.table_name," \
	" 'key', ch.key, 'op', ch.op, 'before', ch.before, 'after', ch.after,"            \
	" 'at', " UTC_TEXT("ch.at") ")::text"
#define SHA256_HEX(x) \
	"pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(" x ", 'UTF8')), 'hex')"
#define CHANGES_DIGEST                                             \
	"(SELECT " SHA256_HEX("pg_catalog.string_agg(" SHA256_HEX( \
	    CHANGE_CANONICAL) ", '' ORDER BY ch.id)") " FROM airlock.changes ch WHERE ch.call_id = s.call_id HAVING pg_catalog.count(*) > 0)"
#define ENTRY_COLUMNS                                                                        \
	"s.position, s.call_id::text AS call_id, s.digest AS sealed_digest,"                 \
	" s.changes_digest AS sealed_changes_digest, c.id IS NOT NULL AS has_record, c.seq," \
	" c.digest, " SHA256_HEX(CALL_CANONICAL) " AS now_digest, " CHANGES_DIGEST           \
						 " AS now_changes_digest"

static const char walk_sql[] =
    "SELECT k.id AS checkpoint_id, k.kind, k.prev_hash, k.hash, k.count,"
    " k.archived::text AS archived, " ENTRY_COLUMNS
    " FROM airlock.checkpoints k LEFT JOIN airlock.sealed s ON s.checkpoint_id = k.id"
    " LEFT JOIN airlock.calls c ON c.id = s.call_id"
    " WHERE ($1::timestamptz IS NULL OR k.created_at >= $1)"
    " AND ($2::timestamptz IS NULL OR k.created_at < $2)"
    " ORDER BY k.id, s.position";
static const char walk_tenant_sql[] =
    "SELECT tc.checkpoint_id, 'seal' AS kind, tc.prev_hash, tc.hash, tc.count,"
    " NULL AS archived, " ENTRY_COLUMNS " FROM airlock.tenant_checkpoints tc"
    " JOIN airlock.checkpoints k ON k.id = tc.checkpoint_id"
    " LEFT JOIN airlock.sealed s ON s.checkpoint_id = tc.checkpoint_id AND s.tenant = tc.tenant"
    " LEFT JOIN airlock.calls c ON c.id = s.call_id"
    " WHERE ($1::timestamptz IS NULL OR k.created_at >= $1)"
    " AND ($2::timestamptz IS NULL OR k.created_at < $2) AND tc.tenant = $3"
    " ORDER BY tc.checkpoint_id, s.position";
/* Where the walk starts: the checkpoint before --from, else what retention left. */
static const char pred_sql[] = "SELECT k.id AS checkpoint_id, k.hash FROM airlock.checkpoints k"
			       " WHERE k.created_at < $1::timestamptz"
			       " ORDER BY k.id DESC LIMIT 1";
static const char pred_tenant_sql[] =
    "SELECT tc.checkpoint_id, tc.hash FROM airlock.tenant_checkpoints tc"
    " JOIN airlock.checkpoints k ON k.id = tc.checkpoint_id"
    " WHERE k.created_at < $1::timestamptz AND tc.tenant = $2"
    " ORDER BY tc.checkpoint_id DESC LIMIT 1";
static const char archived_sql[] =
    "SELECT (k.archived->>'through')::bigint AS through, k.archived->>'hash' AS hash,"
    " k.archived->'tenants'->>$1::text AS tenant_hash"
    " FROM airlock.checkpoints k WHERE k.kind = 'archive' ORDER BY k.id DESC LIMIT 1";
/* Records sealed nowhere: forged (digest wrong), or older than the sealer's horizon. */
static const char unsealed_sql[] =
    "SELECT c.id::text AS call_id, c.digest IS NOT DISTINCT FROM " SHA256_HEX(
	CALL_CANONICAL) " AS is_intact,"
			" c.seq <= coalesce((SELECT k.last_seq FROM airlock.checkpoints k WHERE k.kind = 'seal'"
			"  AND k.created_at < pg_catalog.now() - interval '" LATE_WINDOW "'"
			"  ORDER BY k.id DESC LIMIT 1), 0) AS is_late"
			" FROM airlock.calls c"
			" WHERE NOT EXISTS (SELECT 1 FROM airlock.sealed s WHERE s.call_id = c.id)"
			" AND ($1::text IS NULL OR c.tenant = $1) AND ($2::timestamptz IS NULL OR c.at >= $2)"
			" AND ($3::timestamptz IS NULL OR c.at < $3) ORDER BY c.seq";
/* Forgeries the chain alone does not show.  A seq the identity never gave out: a record
 * placed after every later one (and, sealed, a horizon that would hide them from the
 * sealer). */
#define SEQ_ISSUED                                    \
	"coalesce(pg_catalog.pg_sequence_last_value(" \
	"pg_catalog.pg_get_serial_sequence('airlock.calls', 'seq')::pg_catalog.regclass), 0)"
static const char forged_seq_sql[] =
    "SELECT c.id::text AS call_id, c.seq, " SEQ_ISSUED " AS issued FROM airlock.calls c"
    " WHERE c.seq > " SEQ_ISSUED " AND ($1::text IS NULL OR c.tenant = $1) ORDER BY c.seq";
/* Changes the database lets in only with their call's record, in its transaction, for a
 * write: one added to a record after it was sealed, one on a record that is no write, one
 * added to a record not yet sealed by another transaction than the record's. */
static const char forged_changes_sql[] =
    "SELECT * FROM (SELECT ch.id AS change_id, c.id::text AS call_id, s.checkpoint_id,"
    "  c.method, c.outcome,"
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
    "SELECT t.id AS token_id, r.id::text AS call_id FROM airlock.tokens t"
    " JOIN LATERAL (SELECT c.id FROM airlock.calls c WHERE c.method = 'airlock/tokens.revoke'"
    "  AND c.outcome = 'ok' AND c.arguments ->> 'token_id' = t.id ORDER BY c.seq LIMIT 1) r"
    "  ON true"
    " WHERE t.revoked_at IS NULL AND ($1::text IS NULL OR t.tenant = $1) ORDER BY t.id";
/* A token minted since tokens name their mint's record (migration 11), after what retention
 * removed, whose mint left no record. */
static const char unminted_sql[] =
    "SELECT t.id AS token_id FROM airlock.tokens t"
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
    "  OR (k.kind = 'archive' AND k.archived->>'hash' = $1)) AS is_anchored";
static const char anchor_tenant_sql[] =
    "SELECT EXISTS (SELECT 1 FROM airlock.tenant_checkpoints tc WHERE tc.tenant = $2"
    "  AND tc.hash = $1) OR EXISTS (SELECT 1 FROM airlock.checkpoints k"
    "  WHERE k.kind = 'archive' AND k.archived->'tenants'->>$2 = $1) AS is_anchored";
static const char head_sql[] = "SELECT id, hash FROM airlock.checkpoints ORDER BY id DESC LIMIT 1";

/* seal */

int
cmd_audit_seal(const struct audit_opts *o)
{
	long long total;
	PGresult *res = NULL;
	PGconn *conn;
	int rc = EX_UNAVAILABLE;

	if ((conn = cli_connect("audit", o->db)) == NULL)
		return EX_UNAVAILABLE;
	if ((total = cmd_audit_seal_all(conn, 1)) == -1)
		goto fail;
	if (total == 0)
		printf("nothing to seal\n");
	if ((res = cmd_audit_query(conn, head_sql, 0, NULL)) == NULL)
		goto fail;
	if (sql_rows(res) == 1)
		printf("head %s %s\n", db_text(res, 0, "id"), db_text(res, 0, "hash"));
	rc = EX_OK;
fail:
	sql_clear(res);
	sql_close(conn);
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
	char last_id[AUDIT_ID_LEN + 1]; /* the record holding last_seq */
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

	cmd_audit_progress_clear(&v->pr);
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
	const char *prev = db_text(res, 0, "prev_hash"), *call_id, *sealed_d, *sealed_cd, *now_cd;

	if (!db_is_null(res, 0, "position"))
		cmd_audit_progress_step(&v->pr);
	long long id = strtoll(db_text(res, 0, "checkpoint_id"), NULL, 10), pos, seq;
	char hex[65];

	if (!v->in_group || id != v->id) {
		end_group(v);
		v->in_group = 1;
		v->id = id;
		v->checkpoints++;
		v->group_problems = 0;
		v->seen = 0;
		v->last_seq = -1;
		v->count = strtoll(db_text(res, 0, "count"), NULL, 10);
		strlcpy(v->hash, db_text(res, 0, "hash"), sizeof(v->hash));
		if (v->next_id > 0 && id != v->next_id)
			problem(v, "checkpoint %lld: removed (checkpoint %lld is missing)", id,
			    v->next_id);
		else if (v->next_prev[0] != '\0' && strcmp(prev, v->next_prev) != 0)
			problem(v,
			    "checkpoint %lld: edited or reordered (it does not link to the "
			    "checkpoint before it)",
			    id);
		v->next_id = v->is_tenant ? 0 : id + 1;
		strlcpy(v->next_prev, v->hash, sizeof(v->next_prev));
		SHA256Init(&v->ctx);
		SHA256Update(&v->ctx, (const uint8_t *)prev, strlen(prev));
		if (strcmp(db_text(res, 0, "kind"), "archive") == 0) {
			const char *info = db_text(res, 0, "archived");

			SHA256Update(&v->ctx, (const uint8_t *)info, strlen(info));
			return 0;
		}
	}
	if (db_is_null(res, 0, "position"))
		return 0;
	pos = strtoll(db_text(res, 0, "position"), NULL, 10);
	call_id = db_text(res, 0, "call_id");
	sealed_d = db_text(res, 0, "sealed_digest");
	sealed_cd = db_value(res, 0, "sealed_changes_digest");
	now_cd = db_value(res, 0, "now_changes_digest");
	v->records++;
	if (!v->is_tenant && pos != v->seen) {
		problem(v,
		    "checkpoint %lld position %lld: removed (a sealed entry is missing "
		    "before record %s)",
		    v->id, v->seen, call_id);
		v->seen = pos;
	}
	v->seen++;
	SHA256Update(&v->ctx, (const uint8_t *)sealed_d, strlen(sealed_d));
	if (sealed_cd != NULL)
		SHA256Update(&v->ctx, (const uint8_t *)sealed_cd, strlen(sealed_cd));
	if (strcmp(db_text(res, 0, "has_record"), "t") != 0) {
		problem(v,
		    "record %s: removed (sealed in checkpoint %lld at position %lld, "
		    "missing from airlock.calls)",
		    call_id, v->id, pos);
		return 0;
	}
	seq = strtoll(db_text(res, 0, "seq"), NULL, 10);
	strlcpy(hex, db_text(res, 0, "now_digest"), sizeof(hex));
	if (strcmp(hex, db_text(res, 0, "digest")) != 0)
		problem(v, "record %s: edited (its fields no longer match its digest)", call_id);
	else if (strcmp(hex, sealed_d) != 0)
		problem(v,
		    "record %s: edited (its digest differs from the one sealed in "
		    "checkpoint %lld)",
		    call_id, v->id);
	else if ((sealed_cd == NULL) != (now_cd == NULL) ||
	    (sealed_cd != NULL && strcmp(sealed_cd, now_cd) != 0))
		problem(v,
		    "record %s: edited (its changes differ from those sealed in "
		    "checkpoint %lld)",
		    call_id, v->id);
	else if (seq <= v->last_seq)
		problem(v,
		    "record %s: reordered (sealed in checkpoint %lld before record %s, "
		    "which was inserted earlier)",
		    v->last_id, v->id, call_id);
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

	if (strcmp(db_text(res, 0, "is_intact"), "t") != 0)
		problem(v,
		    "record %s: inserted (sealed nowhere, and its digest does not match "
		    "its fields: forged)",
		    db_text(res, 0, "call_id"));
	else if (strcmp(db_text(res, 0, "is_late"), "t") == 0)
		problem(v,
		    "record %s: inserted (sealed nowhere, though later records were "
		    "sealed more than " LATE_WINDOW " ago)",
		    db_text(res, 0, "call_id"));
	else
		v->pending++; /* committed since the last seal */
	return 0;
}

static int
forged_seq_row(const PGresult *res, void *arg)
{
	problem(arg,
	    "record %s: forged seq (%s was never issued: the sequence has given out "
	    "up to %s)",
	    db_text(res, 0, "call_id"), db_text(res, 0, "seq"), db_text(res, 0, "issued"));
	return 0;
}

static int
forged_change_row(const PGresult *res, void *arg)
{
	const char *change = db_text(res, 0, "change_id"), *call = db_text(res, 0, "call_id");

	if (strcmp(db_text(res, 0, "is_late"), "t") == 0)
		problem(arg,
		    "change %s: attached to record %s after it was sealed in checkpoint %s", change,
		    call, db_text(res, 0, "checkpoint_id"));
	if (strcmp(db_text(res, 0, "is_write"), "t") != 0)
		problem(arg, "change %s: attached to record %s, which is not a write (%s, %s)",
		    change, call, db_text(res, 0, "method"), db_text(res, 0, "outcome"));
	if (strcmp(db_text(res, 0, "is_same"), "t") != 0)
		problem(arg,
		    "change %s: attached to record %s by another transaction than the "
		    "record's",
		    change, call);
	return 0;
}

static int
unrevoked_row(const PGresult *res, void *arg)
{
	problem(arg, "token %s: un-revoked (revoked by call %s, its revoked_at is empty now)",
	    db_text(res, 0, "token_id"), db_text(res, 0, "call_id"));
	return 0;
}

static int
unminted_row(const PGresult *res, void *arg)
{
	problem(arg, "token %s: minted without a tokens.mint call record",
	    db_text(res, 0, "token_id"));
	return 0;
}

/* Sets where the walk starts: after the checkpoint before --from, else after what
 * retention removed, else at checkpoint 1 with a zero prev_hash.  Returns 0 or -1. */
static int
verify_start(PGconn *conn, const struct audit_opts *o, struct verify *v)
{
	const char *pv[2] = { o->from, o->tenant }, *av[1] = { o->tenant };
	PGresult *res = NULL;

	v->next_id = v->is_tenant ? 0 : 1;
	strlcpy(v->next_prev, ZERO_HASH, sizeof(v->next_prev));
	if (o->from != NULL) {
		res = cmd_audit_query(conn, v->is_tenant ? pred_tenant_sql : pred_sql,
		    v->is_tenant ? 2 : 1, pv);
		if (res == NULL)
			return -1;
		if (sql_rows(res) == 1) {
			if (!v->is_tenant)
				v->next_id =
				    strtoll(db_text(res, 0, "checkpoint_id"), NULL, 10) + 1;
			strlcpy(v->next_prev, db_text(res, 0, "hash"), sizeof(v->next_prev));
			sql_clear(res);
			return 0;
		}
		sql_clear(res);
	}
	if ((res = cmd_audit_query(conn, archived_sql, 1, av)) == NULL)
		return -1;
	if (sql_rows(res) == 1) {
		if (!v->is_tenant) {
			v->next_id = strtoll(db_text(res, 0, "through"), NULL, 10) + 1;
			strlcpy(v->next_prev, db_text(res, 0, "hash"), sizeof(v->next_prev));
		} else if (!db_is_null(res, 0, "tenant_hash"))
			strlcpy(v->next_prev, db_text(res, 0, "tenant_hash"), sizeof(v->next_prev));
	}
	sql_clear(res);
	return 0;
}

int
cmd_audit_verify(const struct audit_opts *o)
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
	cmd_audit_progress_start(&v.pr, "verify", conn, cv);
	/* One snapshot for the whole walk; nothing but pg_catalog on the search path, so no
	 * function or operator of the database's owners takes part. */
	if ((res = cmd_audit_query(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
		 NULL)) == NULL)
		goto fail;
	sql_clear(res);
	if ((res = cmd_audit_query(conn, "SET LOCAL search_path = pg_catalog, pg_temp", 0, NULL)) ==
	    NULL)
		goto fail;
	sql_clear(res);
	res = NULL;
	if (verify_start(conn, o, &v) == -1)
		goto fail;
	if (cmd_audit_stream(conn, v.is_tenant ? walk_tenant_sql : walk_sql, v.is_tenant ? 3 : 2,
		wv, verify_row, &v) == -1)
		goto fail;
	end_group(&v);
	if (cmd_audit_stream(conn, unsealed_sql, 3, uv, unsealed_row, &v) == -1 ||
	    cmd_audit_stream(conn, forged_seq_sql, 1, uv, forged_seq_row, &v) == -1 ||
	    cmd_audit_stream(conn, forged_changes_sql, 1, uv, forged_change_row, &v) == -1 ||
	    cmd_audit_stream(conn, unrevoked_sql, 1, uv, unrevoked_row, &v) == -1 ||
	    cmd_audit_stream(conn, unminted_sql, 1, uv, unminted_row, &v) == -1)
		goto fail;
	if (o->anchor != NULL) {
		if ((res = cmd_audit_query(conn, v.is_tenant ? anchor_tenant_sql : anchor_sql,
			 v.is_tenant ? 2 : 1, anv)) == NULL)
			goto fail;
		if (strcmp(db_text(res, 0, "is_anchored"), "t") != 0)
			problem(&v,
			    "anchor %s: tail removed (the chain, which ends at %s, no longer "
			    "holds the anchor)",
			    o->anchor, v.checkpoints > 0 ? v.next_prev : "no checkpoint");
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
	snprintf(extra, sizeof(extra), "%lld checkpoints, %d problems", v.checkpoints, v.problems);
	cmd_audit_progress_end(&v.pr, extra);
fail:
	sql_clear(res);
	sql_close(conn);
	return rc;
}
