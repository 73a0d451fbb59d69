/* write.h: the write path: one transaction with its key, effect, capture, plan and record. */
/*
 * Owns nothing between calls: a struct write_stmt borrows its tool; write_run returns a
 * new reference; write_unbind frees what binding allocated.
 */
#ifndef AIRLOCK_WRITE_H
#define AIRLOCK_WRITE_H

#include <jansson.h>

#include "airlock/audit.h"
#include "airlock/db.h"
#include "airlock/rpc.h"
#include "airlock/tool.h"

struct principal;

/* What to run as the tenant: a prepared tool statement, or (name NULL) a text statement. */
struct write_stmt {
	const char *name; /* prepared on this connection by the caller, or NULL */
	const char *sql;  /* when name is NULL */
	int n;
	const char *const *values;
	unsigned max_rows; /* most rows it may change; 0: no cap */
	unsigned timeout_ms;
	/* Approval (a tool's "approval"): a call that needs it and has no approved plan is
	 * rolled back and answered as a preview held for an approver (rec->needs_approval). */
	int needs_approval;	/* whatever rows it changes */
	unsigned approval_rows; /* also when it changes at least this many rows; 0: no */
	int is_four_eyes;
};

/* One write, as one call: what runs, as whom, and how the call is recorded. */
struct write_req {
	const struct write_stmt *st;
	const char *role; /* the tenant's role the statement runs as */
	const char *tenant;
	const char *tool;	 /* the tool's name (airlock/calls.revert for a revert) */
	const char *fingerprint; /* write_fingerprint of the tool and its arguments */
	const char *idem_key;	 /* the call's idempotency key, or NULL */
	const char *plan_id;	 /* the preview presented with a commit, or NULL */
	int is_dry_run;
	struct audit_record *rec; /* the call's record: its id is the call's */
	/* A token without a quota to check in the write's own transaction, before its
	 * statement (airlock.count_call writes nothing for it, so a rollback loses nothing):
	 * one round trip fewer.  NULL: checked and counted already. */
	struct principal *check;
	/* Called just before the commit to complete rec from the answer; arg is its own. */
	void (*finish)(struct audit_record *rec, json_t *sc, void *arg);
	void *arg;
};

/*
 * Runs one write req as its role, as call rec->id: in one transaction, the idempotency
 * key (when idem_key is not NULL) is claimed with a plain INSERT, the statement runs, its
 * changes are captured by the tables' trigger, the row cap and the plan (plan_id, or
 * NULL) are checked, and on commit the call record (rec, finished by the caller's
 * finish callback below) and the key's stored response go in with the effect.
 *
 * is_dry_run: the same, then rolled back; rec gets the preview's changes and the plan to
 * be written by the audit writer, and the result's plan_id is rec->id.
 *
 * Returns the structuredContent (new; without replayed), or NULL with err: a tool error
 * (row_cap_exceeded, constraint_violated, invalid_arguments), 409 key_in_flight /
 * plan_stale / plan_mismatch / plan_expired / revert_conflict, 422 key_mismatch, 503.
 * A call that needs approval (st) without an approved plan is answered the same as a
 * dry-run, with status "approval_required", rec->is_dry_run and rec->needs_approval set;
 * a plan still pending is 403 approval_pending, a rejected one 403 plan_rejected.
 * When the key was already used with these arguments, returns the stored result with
 * replayed: true and sets *is_replay; nothing ran.  *is_recorded says whether rec went
 * into the database with the effect (then the caller must not write it again).
 * finish(rec, result, arg) is called just before the commit, to complete rec (outcome,
 * digest, duration) from the result; it may shape the result first (what it leaves is
 * what is stored for replays and returned).
 */
json_t *write_run(struct db *db, const struct write_req *req, int *is_replay, int *is_recorded,
    struct rpc_error *err);

/*
 * What reverting call_id takes: the call's tenant, its role and its tool (for a revert, the
 * tool of the write the chain of reverts began with; "" when none), and the rows to
 * put back as a JSON array for write_revert_sql's first parameter (*groups, a new string).
 * tenant and task (or NULL, for an operator or the admin credential) must be the call's: a
 * token reverts the calls of its own task.  Returns 0, or -1 with err: call_not_found
 * (unknown, or another tenant's or task's: the same answer), not_revertible (a read, a
 * refusal, a preview, a call that changed nothing), 503.
 */
int write_revert_target(struct db *db, const char *call_id, const char *tenant, const char *task,
    char tenant_out[64], char role_out[64], char tool_out[65], char **groups, struct rpc_error *err)
    __attribute__((warn_unused_result));

/* The revert statement: $1 the groups, $2 force ("true"/"false"); run as the tenant. */
extern const char write_revert_sql[];

/* Deletes plans expired over an hour ago (airlock.sweep_plans).  Returns how many, or -1
 * (logged). */
long long write_sweep_plans(struct db *db);

/*
 * Sets st up to run write tool t, prepared as name on the connection: binds args (checked;
 * borrowed) into *values (a new array for write_unbind).  Returns 0, or -1 (no memory).
 */
int write_stmt_tool(struct write_stmt *st, const struct tool *t, const char *name, json_t *args,
    char ***values) __attribute__((warn_unused_result));
void write_unbind(const struct tool *t, char **values);

/* Sets st up to revert: groups from write_revert_target, values a 2-element array. */
void write_stmt_revert(struct write_stmt *st, const char *groups, int is_force,
    const char *values[2]);

/* What a revert's write_req points into; it must outlive the request. */
struct write_revert {
	struct write_stmt st;
	const char *values[2];
	char fp[65];
};

/*
 * Sets req up as airlock/calls.revert of call_id (from airlockd or airlockctl alike): the
 * revert statement over groups (from write_revert_target), run as role in tenant, with the
 * fingerprint of {call_id, force}; rv holds what req points to.  The caller adds the key,
 * dry-run, record and finish.
 */
void write_revert_req(struct write_revert *rv, struct write_req *req, const char *call_id,
    const char *groups, int is_force, const char *role, const char *tenant);

/* The fingerprint a key and a plan bind: the keyed digest (audit_keyed_digest, so the
 * deployment's key must have been read) of the canonical {tool, arguments}. */
void write_fingerprint(const char *tool, json_t *args, char hex[65]);

#endif
