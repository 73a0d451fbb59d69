/* stmt.h: a tool's statement on a worker's connection: its failure, its role, its rows. */
/* Owns nothing: results passed in are borrowed; JSON returned is a new reference. */
#ifndef AIRLOCK_STMT_H
#define AIRLOCK_STMT_H

#include <jansson.h>

#include "airlock/db.h"
#include "airlock/rpc.h"
#include "airlock/tool.h"

/* A tool's prepared statement is named for its catalog's version and its tool: at most
 * this long with its NUL. */
#define STMT_NAME_MAX 96

/* Writes the name tool t of catalog version is prepared under into name. */
void stmt_name(char name[STMT_NAME_MAX], unsigned long version, const struct tool *t);

/* Prepares tool t of catalog version on db's connection (once per connection) and writes
 * its name into name.  Returns 0, or -1 with err: 503 when the connection is gone, else
 * as stmt_error. */
int stmt_prepare(struct db *db, const struct tool *t, unsigned long version,
    char name[STMT_NAME_MAX], struct rpc_error *err) __attribute__((warn_unused_result));

/* Sets err for a failed statement's result: only what is the caller's own (the value it
 * sent, a constraint's name) is passed on; the rest is logged under what and answered
 * without detail.  57014/55P03 → 503; class 22 → invalid_arguments and class 23 →
 * constraint_violated (tool errors); else -32603. */
void stmt_error(const PGresult *res, const char *what, struct rpc_error *err);

/* The statement that reports the session's role after a tool's statement, and the check
 * of its result: 0 when it is still role; else -1 with err (-32603), the connection
 * closed, and the event logged. */
extern const char stmt_whoami_sql[];
int stmt_check_role(struct db *db, const PGresult *res, const char *role, const char *what,
    struct rpc_error *err) __attribute__((warn_unused_result));

/* Returns the rows of res as a new array of objects, values typed by column type,
 * at most max (0: all). */
json_t *stmt_rows_json(const PGresult *res, int max);

#endif
