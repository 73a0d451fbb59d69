/* stmt.h: a tool's statement on a worker's connection: its failure, its role, its rows. */
/* Owns nothing: results passed in are borrowed; JSON returned is a new reference. */
#ifndef AIRLOCK_STMT_H
#define AIRLOCK_STMT_H

#include <jansson.h>

#include "airlock/db.h"
#include "airlock/rpc.h"
#include "airlock/tool.h"

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
