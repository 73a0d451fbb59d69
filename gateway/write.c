/*
 * write.c: the write path.  A write is one transaction, in two round trips: the first
 * sends BEGIN, the call's settings, the token's check (for a token without a quota, whose
 * check writes nothing; a quota's count is its own round trip before, so a dry-run's
 * rollback does not undo it), the idempotency key's claim, the statement as the
 * tenant and the read of its captured changes in one pipeline; the gateway then checks
 * the row cap and the plan, and the second round trip either rolls back (dry-run, a
 * refusal) or writes the call record and the key's response and commits.  The transaction
 * is explicit because the decision sits between the two; every path that does not commit
 * sends ROLLBACK, and db_ensure() replaces a connection that is not idle.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/auth.h"
#include "airlock/idem.h"
#include "airlock/log.h"
#include "airlock/stmt.h"
#include "airlock/write.h"

#define LOCK_TIMEOUT_MS 2000

static const char setup_sql[] =
    "SELECT set_config('airlock.call_id', $1, true), set_config('statement_timeout', $2, true),"
    " set_config('lock_timeout', $3, true)";
static const char role_sql[] = "SELECT set_config('role', $1, true)";
static const char unrole_sql[] = "SELECT set_config('role', 'none', true)";
/* The captured changes: how many rows, the preview (numbers as strings), the raw images
 * (for a dry-run's record), and the plan's two parts, all as jsonb text. */
static const char changes_sql[] =
    "SELECT count(DISTINCT (table_name, key::text)) AS changed,"
    " coalesce(jsonb_agg(jsonb_build_object('table', table_name, 'key', airlock.image_json(key),"
    "  'action', CASE op WHEN 'insert' THEN 'create' ELSE op END,"
    "  'before', airlock.image_json(before), 'after', airlock.image_json(after)) ORDER BY id),"
    "  '[]')::text AS preview,"
    " coalesce(jsonb_agg(jsonb_build_object('table_name', table_name, 'tenant', tenant,"
    "  'key', key, 'op', op, 'before', before, 'after', after) ORDER BY id), '[]')::text"
    " AS changes,"
    " coalesce(jsonb_agg(jsonb_build_object('table', table_name, 'key', key,"
    "  'before_digest', airlock.image_digest(before)) ORDER BY table_name, key::text)"
    "  FILTER (WHERE op = 'update'), '[]')::text AS plan_updates,"
    " coalesce((SELECT jsonb_object_agg(table_name, n) FROM (SELECT table_name, count(*) n"
    "  FROM airlock.changes WHERE call_id = $1 AND op = 'insert' GROUP BY 1) s), '{}')::text"
    " AS plan_inserts FROM airlock.changes WHERE call_id = $1";
static const char plan_sql[] =
    "SELECT tool, fingerprint, updates, inserts, is_expired, coalesce(approval, '') AS approval"
    " FROM airlock.plan_get($1::uuid, $2)";
static void
rollback(struct db *db)
{
	if (db->conn != NULL)
		PQclear(PQexec(db->conn, "ROLLBACK"));
}

static int
is_state(const PGresult *res, const char *state)
{
	const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return s != NULL && strcmp(s, state) == 0;
}

/* The plan presented with a commit: its rows and counts, and whether an approver approved
 * it (*is_approved).  A plan held for approval and not approved refuses the commit.
 * Returns 0, or -1 with err. */
static int
load_plan(struct db *db, const char *plan_id, const char *tenant, const char *tool,
    const char *fingerprint, char **updates, char **inserts, int *is_approved,
    struct rpc_error *err)
{
	const char *approval;

	const char *values[2] = { plan_id, tenant };
	PGresult *res;
	int rc = -1;

	res = db_exec(db, "write_plan", plan_sql, 2, values);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		db_unavailable(err);
	else if (PQntuples(res) == 0 || strcmp(db_text(res, 0, "tool"), tool) != 0 ||
	    strcmp(db_text(res, 0, "fingerprint"), fingerprint) != 0)
		rpc_error_set(err, RPC_CONFLICT, "plan_mismatch",
		    "Plan %s is not a preview of this "
		    "tool with these arguments",
		    plan_id);
	else if (strcmp(db_text(res, 0, "is_expired"), "t") == 0)
		rpc_error_set(err, RPC_CONFLICT, "plan_expired",
		    "Plan %s has expired; preview again", plan_id);
	else if (strcmp(approval = db_text(res, 0, "approval"), "pending") == 0)
		rpc_error_set(err, RPC_FORBIDDEN, "approval_pending",
		    "Plan %s waits for an "
		    "approver; commit it once it is approved",
		    plan_id);
	else if (strcmp(approval, "rejected") == 0)
		rpc_error_set(err, RPC_FORBIDDEN, "plan_rejected",
		    "Plan %s was rejected by an "
		    "approver; nothing was done",
		    plan_id);
	else {
		*is_approved = strcmp(approval, "approved") == 0;
		*updates = strdup(db_text(res, 0, "updates"));
		*inserts = strdup(db_text(res, 0, "inserts"));
		rc = *updates != NULL && *inserts != NULL ? 0 : -1;
	}
	PQclear(res);
	return rc;
}

/* Whether a is an element of array b (by JSON equality). */
static int
is_in(json_t *a, json_t *b)
{
	json_t *v;
	size_t i;

	json_array_foreach (b, i, v)
		if (json_equal(a, v))
			return 1;
	return 0;
}

/* The plan against what the write did: sets err to plan_stale naming the rows that
 * differ, either way.  Returns 0 when they match exactly. */
static int
check_plan(const char *plan_updates, const char *plan_inserts, const char *updates,
    const char *inserts, struct rpc_error *err)
{
	json_t *want, *got, *rows, *v;
	size_t i;

	if (strcmp(plan_updates, updates) == 0 && strcmp(plan_inserts, inserts) == 0)
		return 0;
	want = json_loads(plan_updates, 0, NULL);
	got = json_loads(updates, 0, NULL);
	rows = json_array();
	json_array_foreach (want, i, v)
		if (!is_in(v, got))
			json_array_append_new(rows,
			    json_pack("{s:O, s:O, s:s}", "table", json_object_get(v, "table"),
				"key", json_object_get(v, "key"), "difference",
				"previewed, now different or not changed"));
	json_array_foreach (got, i, v)
		if (!is_in(v, want))
			json_array_append_new(rows,
			    json_pack("{s:O, s:O, s:s}", "table", json_object_get(v, "table"),
				"key", json_object_get(v, "key"), "difference",
				"changed now, not as previewed"));
	rpc_error_set(err, RPC_CONFLICT, "plan_stale",
	    "The data changed since the preview: "
	    "%zu row(s) differ%s; nothing was done",
	    json_array_size(rows),
	    strcmp(plan_inserts, inserts) != 0 ? ", and the rows inserted differ" : "");
	err->data = json_pack("{s:o, s:o, s:o}", "rows", rows, "inserts_planned",
	    json_loads(plan_inserts, 0, NULL) ?: json_null(), "inserts_now",
	    json_loads(inserts, 0, NULL) ?: json_null());
	json_decref(want);
	json_decref(got);
	return -1;
}
json_t *
write_run(struct db *db, const struct write_req *req, int *is_replay, int *is_recorded,
    struct rpc_error *err)
{
	const struct write_stmt *st = req->st;
	const char *role = req->role, *tenant = req->tenant, *tool = req->tool;
	const char *fingerprint = req->fingerprint, *idem_key = req->idem_key;
	const char *plan_id = req->plan_id;
	struct audit_record *rec = req->rec;
	int is_dry_run = req->is_dry_run;
	char timeout[16], lock[16], *plan_updates = NULL, *plan_inserts = NULL;
	char *record_text = NULL, *response = NULL;
	const char *setup[3], *role_v[1], *changes_v[1], *store_v[3], *check_v[1];
	struct principal *check = req->check;
	const char *rec_v[1];
	struct idem_claim claim;
	struct db_query q[10], c[3];
	size_t nq = 0, i_claim = 0, i_check = 0, i_stmt, i_who, i_changes, i;
	json_t *sc = NULL, *rows, *preview;
	const PGresult *bad = NULL;
	long long changed;
	int entered = 0, is_approved = 0, is_held;

	*is_replay = *is_recorded = 0;
	memset(q, 0, sizeof(q));
	memset(c, 0, sizeof(c));
	if (db_ensure(db) == -1) {
		db_unavailable(err);
		return NULL;
	}
	/* A commit of a plan reads the database before its transaction (a replay, the plan):
	 * the token is checked first, on its own. */
	if (check != NULL && plan_id != NULL && !is_dry_run) {
		if (auth_count_call(db, check, err) == -1)
			goto out;
		check = NULL;
	}
	/* A retry of a committed call replays it, whether or not its plan has expired since. */
	if (plan_id != NULL && !is_dry_run && idem_key != NULL) {
		int found;

		sc = idem_lookup(db, tenant, idem_key, fingerprint, &found, is_replay, err);
		if (sc != NULL || found)
			goto out;
	}
	if (plan_id != NULL && !is_dry_run &&
	    load_plan(db, plan_id, tenant, tool, fingerprint, &plan_updates, &plan_inserts,
		&is_approved, err) == -1)
		goto out;
	if (idem_key != NULL && !is_dry_run) {
		if (idem_enter(tenant, idem_key, err) == -1)
			goto out;
		entered = 1;
	}
	snprintf(timeout, sizeof(timeout), "%u", st->timeout_ms);
	snprintf(lock, sizeof(lock), "%d", LOCK_TIMEOUT_MS);
	setup[0] = rec->id;
	setup[1] = timeout;
	setup[2] = lock;
	q[nq].sql = "BEGIN ISOLATION LEVEL READ COMMITTED";
	nq++;
	q[nq].sql = setup_sql;
	q[nq].n = 3;
	q[nq++].values = setup;
	if (check != NULL) {
		check_v[0] = check->token_id;
		i_check = nq;
		q[nq].sql = auth_count_sql;
		q[nq].n = 1;
		q[nq++].values = check_v;
	}
	if (entered) {
		idem_claim_queries(&claim, &q[nq], tenant, idem_key, fingerprint, rec->id);
		i_claim = nq + 1;
		nq += 2;
	}
	role_v[0] = role;
	q[nq].sql = role_sql;
	q[nq].n = 1;
	q[nq++].values = role_v;
	i_stmt = nq;
	q[nq].name = st->name;
	q[nq].sql = st->sql;
	q[nq].n = st->n;
	q[nq++].values = st->values;
	i_who = nq;
	q[nq++].sql = stmt_whoami_sql;
	q[nq++].sql = unrole_sql;
	changes_v[0] = rec->id;
	i_changes = nq;
	q[nq].sql = changes_sql;
	q[nq].n = 1;
	q[nq++].values = changes_v;
	if (db_pipeline(db, q, nq) == -1) {
		db_unavailable(err);
		goto out;
	}
	for (i = 0; i < nq && bad == NULL; i++) {
		ExecStatusType s = PQresultStatus(q[i].res);

		if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
			bad = q[i].res;
	}
	if (bad != NULL) {
		rollback(db);
		if (check != NULL && bad == q[i_check].res) {
			if (auth_count_result(bad, check, err) == 0)
				rpc_error_internal(err);
		} else if (entered && bad == q[i_claim].res && is_state(bad, "23505"))
			sc = idem_replay(db, tenant, idem_key, fingerprint, is_replay, err);
		else if (entered && bad == q[i_claim].res && is_state(bad, "55P03")) {
			idem_in_flight(err);
		} else if (is_state(bad, "AL409")) {
			rpc_error_set(err, RPC_CONFLICT, "revert_conflict",
			    "%s; nothing was reverted",
			    PQresultErrorField(bad, PG_DIAG_MESSAGE_PRIMARY));
		} else
			stmt_error(bad, tool, err);
		goto out;
	}
	if (stmt_check_role(db, q[i_who].res, role, tool, err) == -1)
		goto out; /* the connection is gone, and its transaction with it */
	changed = strtoll(db_text(q[i_changes].res, 0, "changed"), NULL, 10);
	if (st->max_rows > 0 && changed > (long long)st->max_rows) {
		rollback(db);
		rpc_error_set(err, 0, "row_cap_exceeded",
		    "The call would change %lld rows, more than "
		    "this tool's limit of %u; nothing was changed",
		    changed, st->max_rows);
		err->data = json_pack("{s:I, s:i}", "count", (json_int_t)changed, "max_rows",
		    (int)st->max_rows);
		goto out;
	}
	/* A call that needs an approver's approval and has no approved plan changes nothing:
	 * its preview is the plan an approver decides on.  Rows changed count too (above_rows),
	 * so this is decided here, once they are known; a call that changes no row has nothing
	 * to approve. */
	is_held = !is_approved && changed > 0 &&
	    (st->needs_approval ||
		(st->approval_rows > 0 && changed >= (long long)st->approval_rows));
	if (is_held && !is_dry_run) {
		is_dry_run = 1;
		rec->is_dry_run = 1;
		rec->idem_key[0] = '\0'; /* the key is not used up: the commit will take it */
		free(plan_updates);
		free(plan_inserts);
		plan_updates = plan_inserts = NULL;
	}
	/* Asked without a key (it was expected to need approval) and not held: it changes
	 * nothing, and nothing commits without a key. */
	if (!is_held && !is_dry_run && idem_key == NULL && st->needs_approval) {
		is_dry_run = 1;
		rec->is_dry_run = 1;
	}
	if (plan_updates != NULL &&
	    check_plan(plan_updates, plan_inserts, db_text(q[i_changes].res, 0, "plan_updates"),
		db_text(q[i_changes].res, 0, "plan_inserts"), err) == -1) {
		rollback(db);
		goto out;
	}
	rows = stmt_rows_json(q[i_stmt].res, 0);
	preview = json_loads(db_value(q[i_changes].res, 0, "preview"), 0, NULL);
	sc = json_pack("{s:o, s:I, s:b, s:b, s:o, s:o}", "rows", rows, "row_count",
	    (json_int_t)json_array_size(rows), "truncated", 0, "dry_run", is_dry_run, "changes",
	    preview ? preview : json_array(), "plan_id",
	    is_dry_run	  ? json_string(rec->id)
		: plan_id ? json_string(plan_id)
			  : json_null());
	if (is_dry_run && is_held) {
		rollback(db);
		json_object_set_new(sc, "status", json_string("approval_required"));
		json_object_set_new(sc, "approval",
		    json_pack("{s:b}", "four_eyes", st->is_four_eyes));
		json_object_set_new(sc, "note",
		    json_string(
			"This write needs an approver's "
			"approval: nothing was changed. The preview above is plan_id, waiting for an "
			"approver (it expires in 15 minutes). Once it is approved, commit with this "
			"plan_id and an idempotency key to do exactly this."));
		rec->needs_approval = 1;
		rec->is_four_eyes = st->is_four_eyes;
		rec->reason = "approval_required";
		rec->changes = strdup(db_text(q[i_changes].res, 0, "changes"));
		rec->plan_updates = strdup(db_text(q[i_changes].res, 0, "plan_updates"));
		rec->plan_inserts = strdup(db_text(q[i_changes].res, 0, "plan_inserts"));
		strlcpy(rec->fingerprint, fingerprint, sizeof(rec->fingerprint));
		goto out;
	}
	if (is_dry_run) {
		rollback(db);
		json_object_set_new(sc, "note",
		    json_string(
			"A preview: nothing was changed. "
			"Sequences still advance on rollback, so an id shown for a new row is not the "
			"one a commit will give it. Commit with this plan_id to do exactly this."));
		rec->changes = strdup(db_text(q[i_changes].res, 0, "changes"));
		rec->plan_updates = strdup(db_text(q[i_changes].res, 0, "plan_updates"));
		rec->plan_inserts = strdup(db_text(q[i_changes].res, 0, "plan_inserts"));
		strlcpy(rec->fingerprint, fingerprint, sizeof(rec->fingerprint));
		if (rec->changes == NULL || rec->plan_updates == NULL ||
		    rec->plan_inserts == NULL) {
			/* A preview is recorded with its changes, or not answered. */
			rpc_error_internal(err);
			json_decref(sc);
			sc = NULL;
		}
		goto out;
	}

	/* Commit: the record and the key's answer go in with the effect, or nothing does. */
	json_object_set_new(sc, "call_id", json_string(rec->id));
	json_object_set_new(sc, "replayed", json_false());
	req->finish(rec, sc, req->arg);
	record_text = audit_record_batch(rec);
	response = json_dumps(sc, JSON_COMPACT);
	/* A jansson allocation that failed during this call (the fingerprint, the rows, the
	 * answer) may have left a member out: nothing is committed from it. */
	if (record_text == NULL || response == NULL || rpc_alloc_failed()) {
		rollback(db);
		rpc_error_internal(err);
		json_decref(sc);
		sc = NULL;
		goto out;
	}
	rec_v[0] = record_text;
	nq = 0;
	c[nq].sql = audit_insert_calls_sql;
	c[nq].n = 1;
	c[nq++].values = rec_v;
	if (entered)
		idem_store_query(store_v, &c[nq++], tenant, idem_key, response);
	c[nq++].sql = "COMMIT";
	if (db_pipeline(db, c, nq) == -1) {
		/* The commit's fate is unknown; a retry with the key finds out. */
		db_unavailable(err);
		json_decref(sc);
		sc = NULL;
		goto out;
	}
	for (i = 0; i < nq; i++)
		if (PQresultStatus(c[i].res) != PGRES_COMMAND_OK && sc != NULL) {
			log_error("write %s: commit failed: %s", rec->id,
			    PQresultErrorMessage(c[i].res));
			rollback(db);
			db_unavailable(err);
			json_decref(sc);
			sc = NULL;
		}
	if (sc != NULL)
		*is_recorded = 1;
out:
	for (i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		PQclear(q[i].res);
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		PQclear(c[i].res);
	if (entered)
		idem_leave(tenant, idem_key);
	free(record_text);
	free(response);
	free(plan_updates);
	free(plan_inserts);
	return sc;
}

/* The rows a revert puts back, per changed row: the last after-image to expect and the
 * image to restore (the first before-image; for an inserted row, its soft delete). */
static const char revert_groups_sql[] =
    "SELECT count(*) AS n_rows, coalesce(jsonb_agg(jsonb_build_object('table', table_name, 'key', key,"
    " 'expected', last_after, 'image', CASE WHEN first_op = 'insert'"
    " THEN last_after || jsonb_build_object('deleted_at', now()) ELSE first_before END)"
    " ORDER BY table_name, key::text), '[]')::text AS groups"
    " FROM (SELECT table_name, key, (array_agg(op ORDER BY id))[1] AS first_op,"
    " (array_agg(before ORDER BY id))[1] AS first_before,"
    " (array_agg(after ORDER BY id DESC))[1] AS last_after"
    " FROM airlock.changes WHERE call_id = $1::uuid GROUP BY table_name, key) g";

static const char revert_target_sql[] =
    "SELECT c.tenant, c.method, c.dry_run, c.outcome, t.role, coalesce(c.task, '') AS task,"
    " coalesce(airlock.origin_tool(c.id), '') AS origin_tool"
    " FROM airlock.calls c JOIN airlock.tenants t ON t.name = c.tenant WHERE c.id = $1::uuid";

/* Runs as the tenant: each row back to its image, after checking it is as the call left it. */
const char write_revert_sql[] =
    "SELECT count(*) AS rows_restored FROM (SELECT airlock.restore_row((g->>'table')::regclass,"
    " g->'key', g->'expected', g->'image', $2::boolean) FROM jsonb_array_elements($1::jsonb) AS g) r";

int
write_revert_target(struct db *db, const char *call_id, const char *tenant, const char *task,
    char tenant_out[64], char role_out[64], char tool_out[65], char **groups, struct rpc_error *err)
{
	const char *values[1] = { call_id };
	PGresult *res = NULL, *g = NULL;
	int rc = -1;

	*groups = NULL;
	if (db_ensure(db) == -1) {
		db_unavailable(err);
		return -1;
	}
	res = db_exec(db, "revert_target", revert_target_sql, 1, values);
	g = db_exec(db, "revert_groups", revert_groups_sql, 1, values);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQresultStatus(g) != PGRES_TUPLES_OK) {
		db_unavailable(err);
		goto out;
	}
	if (PQntuples(res) == 0 ||
	    (tenant != NULL && strcmp(db_text(res, 0, "tenant"), tenant) != 0) ||
	    (task != NULL && strcmp(db_text(res, 0, "task"), task) != 0)) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "call_not_found", "No such call");
		goto out;
	}
	if (strcmp(db_text(res, 0, "dry_run"), "t") == 0 ||
	    strcmp(db_text(res, 0, "outcome"), "ok") != 0 ||
	    (strcmp(db_text(res, 0, "method"), "tools/call") != 0 &&
		strcmp(db_text(res, 0, "method"), "airlock/calls.revert") != 0) ||
	    strcmp(db_text(g, 0, "n_rows"), "0") == 0) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "not_revertible",
		    "Call %s changed nothing "
		    "that can be reverted (a read, a refusal or a preview)",
		    call_id);
		goto out;
	}
	strlcpy(tenant_out, db_text(res, 0, "tenant"), 64);
	strlcpy(role_out, db_text(res, 0, "role"), 64);
	strlcpy(tool_out, db_text(res, 0, "origin_tool"), 65);
	if ((*groups = strdup(db_text(g, 0, "groups"))) != NULL)
		rc = 0;
out:
	PQclear(res);
	PQclear(g);
	return rc;
}

long long
write_sweep_plans(struct db *db)
{
	return db_sweep(db, "SELECT airlock.sweep_plans(5000) AS swept", "expired plans");
}

int
write_stmt_tool(struct write_stmt *st, const struct tool *t, const char *name, json_t *args,
    char ***values)
{
	if ((*values = calloc(t->n_params + 1, sizeof(**values))) == NULL)
		return -1;
	if (tool_bind(t, args, *values) == -1) {
		free(*values);
		*values = NULL;
		return -1;
	}
	memset(st, 0, sizeof(*st));
	st->name = name;
	st->n = (int)t->n_params;
	st->values = (const char *const *)*values;
	st->max_rows = t->max_rows;
	st->timeout_ms = t->timeout_ms;
	return 0;
}

void
write_unbind(const struct tool *t, char **values)
{
	if (values == NULL)
		return;
	tool_unbind(t, values);
	free(values);
}

void
write_stmt_revert(struct write_stmt *st, const char *groups, int is_force, const char *values[2])
{
	values[0] = groups;
	values[1] = is_force ? "true" : "false";
	memset(st, 0, sizeof(*st));
	st->sql = write_revert_sql;
	st->n = 2;
	st->values = values;
	st->timeout_ms = 10000;
}

void
write_revert_req(struct write_revert *rv, struct write_req *req, const char *call_id,
    const char *groups, int is_force, const char *role, const char *tenant)
{
	json_t *args = json_pack("{s:s, s:b}", "call_id", call_id, "force", is_force);

	write_stmt_revert(&rv->st, groups, is_force, rv->values);
	write_fingerprint("airlock/calls.revert", args, rv->fp);
	json_decref(args);
	memset(req, 0, sizeof(*req));
	req->st = &rv->st;
	req->role = role;
	req->tenant = tenant;
	req->tool = "airlock/calls.revert";
	req->fingerprint = rv->fp;
}

void
write_fingerprint(const char *tool, json_t *args, char hex[65])
{
	json_t *v = json_pack("{s:s, s:O}", "tool", tool, "arguments", args);

	/* Keyed: the arguments may hold sensitive values, and the fingerprint is stored. */
	audit_keyed_digest(v, hex);
	json_decref(v);
}
