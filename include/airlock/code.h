/* code.h: code tools: the model's program, run in a fresh sandbox under the caller's token. */
/*
 * Owns the warm sandboxes (code_warm_start until code_warm_stop); the caller's catalog and
 * configuration are borrowed; results are new references.
 */
#ifndef AIRLOCK_CODE_H
#define AIRLOCK_CODE_H

#include <jansson.h>

#include "airlock/auth.h"
#include "airlock/config.h"
#include "airlock/db.h"
#include "airlock/rpc.h"
#include "airlock/tool.h"

struct gateway;

/*
 * Runs code tool t of the caller's catalog cat for principal p with its checked arguments
 * (borrowed): `code`, and `input` (JSON) or `input_tool` ({name, arguments}: a read tool of
 * cat run first under the same token, with its grant, bindings and quota checked, whose
 * rows become the input), within cfg's sandboxes per tenant.  When
 * is_dry_run, runs nothing and returns the plan (interpreter, limits, allowlist, input size).
 *
 * Returns the call's structuredContent without call_id (a new reference): stdout (parsed as
 * JSON when it is JSON, else text), stderr, exit status, signal, the limits hit, timings; or
 * NULL with err: a tool error (reason program_failed or sandbox_limit, with stdout/stderr and
 * the outcome in err->data) or a protocol error (429 concurrency_limited with
 * retryAfterSeconds, 403 from the input tool's checks, 503 sandbox or database unavailable).
 * *egress receives a new array of the run's egress attempts ({host, port, allowed, reason}),
 * possibly empty, on every path (NULL only when nothing ran).  Runs on a worker thread of
 * the gateway's sandbox pool; db is that worker's connection.
 */
json_t *code_run(const struct catalog *cat, const struct config *cfg, struct db *db,
    const struct principal *p, const struct tool *t, json_t *args, const char *call_id,
    int is_dry_run, json_t **egress, struct rpc_error *err);

/*
 * Starts the thread that keeps the warm pools filled (gateway/code.c says what they are):
 * the catalog's code tools with code.warm above 0 get that many sandboxes started ahead,
 * --warm in all.  Does nothing when --warm is 0.  Returns 0, or -1 when the thread cannot
 * start (calls then start cold).
 */
int code_warm_start(struct gateway *gw);

/* Stops that thread and destroys every warm sandbox; safe when never started. */
void code_warm_stop(void);

/* The warm pools' lines for /metrics (a new string, freed by the caller), or NULL. */
char *code_warm_metrics(void);

#endif
