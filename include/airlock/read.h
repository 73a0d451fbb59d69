/* read.h: the read path: a read tool's statement run as its tenant in one round trip. */
/* Owns nothing: db, tool and principal are borrowed; the rows returned are a new reference. */
#ifndef AIRLOCK_READ_H
#define AIRLOCK_READ_H

#include <jansson.h>

#include "airlock/db.h"
#include "airlock/rpc.h"
#include "airlock/tool.h"

struct principal;

/*
 * Runs read tool t (from catalog version) with checked args as tenant role, read-only,
 * under the tool's statement timeout and a lock timeout, in one round trip; when count is
 * not NULL the call is counted against that principal's quota in the same transaction
 * (403 quota_exhausted).  Returns 0
 * with *rows a new array of row objects (at most t->max_rows; *truncated says whether
 * there were more), or -1 with err set (a tool error per call_is_tool_error, or a
 * protocol error: 503 backend_unavailable, -32603 internal).
 */
int read_run(struct db *db, const struct tool *t, unsigned long version, const char *role,
    const char *call_id, json_t *args, struct principal *count, json_t **rows, int *truncated,
    struct rpc_error *err) __attribute__((warn_unused_result));

/* A read's structuredContent without call_id and replayed (what its digest covers, with
 * call_digest): rows (borrowed), row_count, truncated, dry_run false.  Returns a new
 * reference. */
json_t *read_result(json_t *rows, int truncated);

#endif
