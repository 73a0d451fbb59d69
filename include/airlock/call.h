/* call.h: running a tool's statement as its tenant: the database side of tools/call. */
/* Owns nothing: db, tool and results passed in are borrowed; JSON returned is a new reference. */
#ifndef AIRLOCK_CALL_H
#define AIRLOCK_CALL_H

#include <jansson.h>

#include "airlock/db.h"
#include "airlock/rpc.h"
#include "airlock/tool.h"

/* Whether the error is one the model should see as a tool result (isError: true)
 * rather than a JSON-RPC error: reasons invalid_arguments, constraint_violated,
 * row_cap_exceeded, program_failed, sandbox_limit. */
int call_is_tool_error(const struct rpc_error *err);

/*
 * Runs read tool t (from catalog version) with checked args as tenant role, read-only,
 * under the tool's statement timeout and a lock timeout, in one round trip; when count is
 * not NULL the call is counted against that principal's quota in the same transaction
 * (403 quota_exhausted).  Returns 0
 * with *rows a new array of row objects (at most t->max_rows; *truncated says whether
 * there were more), or -1 with err set (a tool error per call_is_tool_error, or a
 * protocol error: 503 backend_unavailable, -32603 internal).
 */
struct principal;
int call_read(struct db *db, const struct tool *t, unsigned long version, const char *role,
    const char *call_id, json_t *args, struct principal *count, json_t **rows, int *truncated,
    struct rpc_error *err) __attribute__((warn_unused_result));

/* Sets err for a failed statement's result: only what is the caller's own (the value it
 * sent, a constraint's name) is passed on; the rest is logged under what and answered
 * without detail.  57014/55P03 → 503; class 22 → invalid_arguments and class 23 →
 * constraint_violated (tool errors); else -32603. */
void call_sql_error(const PGresult *res, const char *what, struct rpc_error *err);

/* The statement that reports the session's role after a tool's statement, and the check
 * of its result: 0 when it is still role; else -1 with err (-32603), the connection
 * closed, and the event logged. */
extern const char call_whoami_sql[];
int call_check_role(struct db *db, const PGresult *res, const char *role, const char *what,
    struct rpc_error *err) __attribute__((warn_unused_result));

/* Returns the rows of res as a new array of objects, values typed by column type,
 * at most max (0: all). */
json_t *call_rows_json(const PGresult *res, int max);

#endif
