/* methods_int.h: what the method families (gateway/m_*.c) and the table (methods.c) share. */
/*
 * Nothing else includes it.  The handshake's methods are rpc_fn (airlock/rpc.h); a method
 * that names a token is a call_fn, which the table runs through the call lifecycle
 * (call_run, airlock/call.h).  Results are new references; arguments are borrowed unless a
 * comment says otherwise.
 */
#ifndef AIRLOCK_METHODS_INT_H
#define AIRLOCK_METHODS_INT_H

#include <jansson.h>

#include "airlock/auth.h"
#include "airlock/call.h"
#include "airlock/gateway.h"
#include "airlock/rpc.h"
#include "airlock/tool.h"
#include "airlock/write.h"

/* m_tools.c: the handshake, tools/list and tools/call. */
json_t *m_initialize(void *vctx, const char *name, json_t *params, struct rpc_error *err);
json_t *m_discover(void *vctx, const char *name, json_t *params, struct rpc_error *err);
json_t *m_empty(void *vctx, const char *name, json_t *params, struct rpc_error *err);
json_t *m_tools_list(struct call *c, json_t *params, struct rpc_error *err);
json_t *m_tools_call(struct call *c, json_t *params, struct rpc_error *err);

/* m_tokens.c */
json_t *m_tokens_self(struct call *c, json_t *params, struct rpc_error *err);
json_t *m_tokens_mint(struct call *c, json_t *params, struct rpc_error *err);
json_t *m_tokens_revoke(struct call *c, json_t *params, struct rpc_error *err);

/* m_calls.c */
json_t *m_calls_get(struct call *c, json_t *params, struct rpc_error *err);
json_t *m_calls_revert(struct call *c, json_t *params, struct rpc_error *err);
json_t *m_calls_list(struct call *c, json_t *params, struct rpc_error *err);

/* m_plans.c */
json_t *m_plans_list(struct call *c, json_t *params, struct rpc_error *err);
json_t *m_plans_get(struct call *c, json_t *params, struct rpc_error *err);
json_t *m_plans_decide(struct call *c, json_t *params, struct rpc_error *err);
json_t *m_audit_state(struct call *c, json_t *params, struct rpc_error *err);

/*
 * Checks params of method: an object with only the known members, required (a string
 * member) present, and each member of its type: arguments an object; dry_run and force
 * booleans; idempotency_key 1 to 255 characters; plan_id a call id.  Returns 0, or -1
 * with err (-32602 invalid_params) naming the fault.  (m_tools.c)
 */
int m_check_params(const char *method, json_t *params, const char *const *known,
    const char *required, struct rpc_error *err);

/* Whether a call that answered result (or err) was refused: a protocol refusal, or
 * arguments its tool's schema refused.  (m_tools.c) */
int m_is_refused(json_t *result, const struct rpc_error *err);

/* The columns a write's answer shows: its tool's (t NULL: the keys only), or all of them. */
struct shown_cols {
	const struct tool *t;
	int is_whole;
};

/*
 * Runs write req (its statement, role, tenant, tool and fingerprint set) as call c through
 * write_run, with the options params names (dry_run, plan_id, the idempotency key), and
 * shapes the answer: a CallToolResult, a tool error result, or NULL with err.  Sets the
 * rest of req and the record's key, plan and dry-run fields.  (m_tools.c)
 */
json_t *m_run_write(struct call *c, struct write_req *req, json_t *params,
    const struct shown_cols *cols, struct rpc_error *err);

/* Limits every change's images to the tool's columns and the key (t NULL: the key only).
 * (m_calls.c) */
void m_limit_changes(json_t *changes, const struct tool *t);

/* Approvers: an approver token or the admin credential, with params (an object or NULL)
 * naming only known members.  Returns 0, or -1 with err.  (m_plans.c) */
int m_require_approver(struct call *c, json_t *params, const char *const *known,
    struct rpc_error *err);

/* The tenant an approver's request is limited to: its own, or for the admin credential
 * params.tenant (NULL: every tenant).  Returns 0, or -1 with err.  (m_plans.c) */
int m_approver_tenant(struct call *c, json_t *params, const char **tenant, struct rpc_error *err);

#endif
