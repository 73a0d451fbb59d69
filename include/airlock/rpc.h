/* rpc.h: JSON-RPC 2.0 message parsing, dispatch over a method table, and error objects. */
/*
 * A struct rpc_msg owns its parsed JSON until rpc_msg_clear, a struct rpc_error its data
 * until rpc_error_clear; results are new references.
 */
#ifndef AIRLOCK_RPC_H
#define AIRLOCK_RPC_H

#include <stddef.h>
#include <jansson.h>

/* Standard codes. */
#define RPC_PARSE_ERROR (-32700)
#define RPC_INVALID_REQUEST (-32600)
#define RPC_METHOD_NOT_FOUND (-32601)
#define RPC_INVALID_PARAMS (-32602)
#define RPC_INTERNAL_ERROR (-32603)
/* Application codes, outside the reserved range, in HTTP's spirit. */
#define RPC_UNAUTHORIZED 401
#define RPC_FORBIDDEN 403
#define RPC_CONFLICT 409
#define RPC_UNPROCESSABLE 422
#define RPC_TOO_MANY 429
#define RPC_UNAVAILABLE 503

/*
 * An error a method reports.  reason is one of the documented data.reason values
 * (a static string).  data, when not NULL, is a new reference owned by the error:
 * its members are merged into the response's "data" next to "reason".
 */
struct rpc_error {
	int code;
	const char *reason;
	char message[256];
	json_t *data;
};

/* Fills err; the message is printf-formatted.  Never fails. */
void rpc_error_set(struct rpc_error *err, int code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Drops err's data, if any. */
void rpc_error_clear(struct rpc_error *err);
/* Fills err as rpc_error_set does, for a refusal the caller may retry: data carries
 * retryAfterSeconds (409 key_in_flight, 429, 503). */
void rpc_error_retry(struct rpc_error *err, int code, const char *reason, int retry_after,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Fills err with -32603 "internal": a fault of the gateway's own, told without detail. */
void rpc_error_internal(struct rpc_error *err);

/*
 * A method: returns its result as a new reference, or NULL after filling err.
 * ctx is the caller's per-request context, passed through untouched.
 */
typedef json_t *(*rpc_fn)(void *ctx, const char *method, json_t *params, struct rpc_error *err);

enum rpc_method_flags {
	RPC_SLOW = 1 << 0, /* must run on a worker (database, sandbox): never inline */
};

struct rpc_method {
	const char *name;
	rpc_fn fn;
	unsigned flags;
};

struct rpc_limits {
	size_t max_depth; /* nesting of arrays and objects */
	size_t max_batch; /* elements of a batch */
};

/* One HTTP body's worth of JSON-RPC: a single request or a batch. */
struct rpc_msg {
	json_t *root; /* the parsed body; NULL when it did not parse */
	int is_batch;
	json_t *response; /* what to send back; NULL when nothing (all notifications) */
	int http_status;  /* 200, or 401/429/503 for a single request's error */
	char method[64];  /* first method named, for the request log */
	int n_calls;	  /* elements seen */
	int is_failed;	  /* an answer was due but could not be built (out of memory):
				 * the caller sends a fixed internal error instead */
};

/*
 * Parses body into msg.  When the body is not JSON (-32700), not acceptable JSON
 * (-32600: duplicate key, \u0000, number out of range, too deep), an empty batch or a
 * batch over the limit, msg->response is set to the error and msg->root stays NULL.
 * msg must be zeroed first; release it with rpc_msg_clear().
 */
void rpc_parse(struct rpc_msg *msg, const struct rpc_limits *lim, const char *body, size_t len);

/* Whether executing msg calls any method flagged RPC_SLOW. */
int rpc_needs_worker(const struct rpc_msg *msg, const struct rpc_method *table);

/* Runs every call of a parsed msg and sets msg->response and msg->http_status. */
void rpc_execute(struct rpc_msg *msg, const struct rpc_method *table, void *ctx);

/* Answers every call of a parsed msg with err, without running any (for a caller
 * that cannot run them now: a full queue, a daemon stopping). */
void rpc_fail_all(struct rpc_msg *msg, const struct rpc_error *err);

void rpc_msg_clear(struct rpc_msg *msg);

/* Returns a new error response object for id (borrowed; NULL means null). */
json_t *rpc_error_response(json_t *id, const struct rpc_error *err);

/* Returns the HTTP status a single request's error code travels with. */
int rpc_http_status(int code);

/*
 * Out of memory inside jansson.  jansson reports a failed allocation in ways that look like
 * something else (a parse error, a NULL from json_pack, a key silently not set, a byte
 * silently dropped from a parsed string), so its allocator is hooked: rpc_alloc_init()
 * (once, before any JSON is made) installs it, and each thread keeps a flag that a failed
 * allocation sets.  rpc_parse and each call of rpc_execute clear it when they begin and
 * answer -32603 when it is set at their end; a write checks it before it commits, so no
 * effect is committed from arguments, a fingerprint or an answer that are not whole.
 */
void rpc_alloc_init(void);
/* Clears this thread's flag. */
void rpc_alloc_reset(void);
/* Whether a jansson allocation failed on this thread since the flag was last cleared. */
int rpc_alloc_failed(void);

/* The body sent when even the error could not be built (RPC_INTERNAL_ERROR, id null). */
extern const char rpc_internal_error_text[];

#endif
