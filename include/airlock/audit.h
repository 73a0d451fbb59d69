/* audit.h: the call record writer: every call's row, durable before its response. */
/*
 * Owns the record queue and its writer (audit_start; audit_stop ends and frees them); a
 * struct audit_record owns what it holds until audit_record_clear.
 */
#ifndef AIRLOCK_AUDIT_H
#define AIRLOCK_AUDIT_H

#include <time.h>
#include <jansson.h>
#include <libpq-fe.h>

#define AUDIT_ID_LEN 36		   /* a UUID in text */
#define AUDIT_ARGS_MAX (64 * 1024) /* bytes of arguments a record keeps as sent */
#define AUDIT_PREFIX_MAX 256	   /* bytes of a summary's prefix */

struct audit_record {
	char id[AUDIT_ID_LEN + 1];
	struct timespec at; /* CLOCK_REALTIME when the call began */
	char tenant[64];
	char token_id[16];
	char task[129];
	char method[64];
	char tool[65];
	json_t *arguments; /* owned; sensitive values already replaced by digests;
					   past AUDIT_ARGS_MAX bytes, kept as audit_summary */
	json_t *egress;	   /* owned; a code step's egress attempts, or NULL */
	/* A dry-run of a write: its preview's changes and its plan, written with the record
	 * because the transaction that made them rolled back.  JSON text from PostgreSQL, kept
	 * as text so numeric values keep every digit (owned, malloc'd; NULL when none). */
	char *changes;	    /* [{table_name, tenant, key, op, before, after}] */
	char *plan_updates; /* [{table, key, before_digest}] */
	char *plan_inserts; /* {table: rows} */
	char fingerprint[65];
	int needs_approval; /* the plan waits for an approver (airlock/plans.*) */
	int is_four_eyes;   /* ... who must not be of the asking task */
	int is_dry_run;
	char idem_key[256];
	char plan_id[AUDIT_ID_LEN + 1];
	const char *outcome; /* "ok", "tool_error", "refused", "error" (static) */
	const char *reason;  /* a data.reason value, NULL when ok (static, or
					   reason_buf: see audit_record_reason) */
	char reason_buf[64];
	double duration_ms;
	char result_digest[65];
	char client[64];
	char trace_id[33]; /* the request's W3C trace id, or "": the client's word,
					   kept beside the record, not covered by its digest */
};

struct audit;
struct rpc_error;

/* Sets rec's reason to a copy of s (may be NULL), held in the record itself: for a reason
 * read from an answer, which may be freed before the record is written. */
void audit_record_reason(struct audit_record *rec, const char *s);

/* The statement that inserts call records from a JSON array (its one parameter), and that
 * array's text for the one record rec: a new string, or NULL when it could not be made.
 * For writers that insert a record in their own transaction, beside other statements. */
extern const char audit_insert_calls_sql[];
char *audit_record_batch(const struct audit_record *rec);

/*
 * Writes rec on conn (borrowed) at once, in conn's transaction when one is open: the
 * writer's statement and the writer's JSON, a batch of one.  For airlockctl, whose
 * records have the gateway's shape.  Returns 0, or -1 (conn's error message says why;
 * none when the record could not be rendered).
 */
int audit_record_now(PGconn *conn, const struct audit_record *rec)
    __attribute__((warn_unused_result));

/* Starts the writer on its own connection to conninfo (borrowed, must outlive it).
 * Returns a new writer, or NULL. */
struct audit *audit_start(const char *conninfo);

/*
 * Writes rec and returns once it is committed: 0, or -1 when it could not be written
 * (the caller fails the call closed: no data without its record).  Concurrent callers
 * share one commit.  rec stays the caller's; its arguments are not stolen.
 */
int audit_write(struct audit *a, const struct audit_record *rec)
    __attribute__((warn_unused_result));

/*
 * Hands rec over to the writer and returns at once: its content moves (rec is left empty,
 * for its owner to clear).  on_done(arg, rc) is called once, on the writer's thread, when
 * the record is committed (rc 0) or could not be (-1, after it was tried on its own): only
 * then may the call be answered.  Returns 0, or -1 (out of memory, or the writer is
 * stopping) with rec untouched and on_done never called.
 */
int audit_submit(struct audit *a, struct audit_record *rec, void (*on_done)(void *arg, int rc),
    void *arg) __attribute__((warn_unused_result));

/* Fills err with what a call gets instead of its answer when its record could not be
 * written (no data without its record): 503 backend_unavailable, retry in a second. */
void audit_unrecorded(struct rpc_error *err);

/* Counts a refusal before authentication for client in the current second; the
 * counts are written once that second is over, never one row per refusal. */
void audit_refusal(struct audit *a, const char *client, const char *reason);

/* The same, with the id of the token refused (NULL when none is known): a revoked or
 * expired token, or one over its rate limit.  reason must be a static string. */
void audit_refusal_of(struct audit *a, const char *client, const char *token_id,
    const char *reason);

/* Reads the deployment's digest key from airlock.digest_key through conn (borrowed), once
 * per process.  Returns 0 (also when it was read before), or -1 (logged). */
int audit_key_load(PGconn *conn) __attribute__((warn_unused_result));

/* Whether the digest key has been read. */
int audit_has_key(void);

/* Writes the HMAC-SHA256, keyed with the deployment's digest key, of audit_canonical(v),
 * in hex, into hex: what stands for a sensitive value in every record.  hex is empty when
 * the key has not been read (nothing is given away then). */
void audit_keyed_digest(json_t *v, char hex[65]);

/* What a record keeps of sent (borrowed) when not the value itself: {"hmac_sha256": keyed
 * digest, "bytes": length of its compact JSON, "prefix": the first AUDIT_PREFIX_MAX bytes of
 * shown's (borrowed, may be NULL) compact ASCII JSON}.  Returns a new reference. */
json_t *audit_summary(json_t *sent, json_t *shown);

/* Flushes what is pending and stops the writer. */
void audit_stop(struct audit *a);

/* Whether s is a call id in text (36 hex digits and dashes, as audit_new_id makes). */
int audit_is_id(const char *s);

/* Fills id with a new random (version 4) UUID. */
void audit_new_id(char id[AUDIT_ID_LEN + 1]);

/* The canonical text of v: compact, keys sorted, non-ASCII escaped.  Returns a new
 * string, or NULL. */
char *audit_canonical(json_t *v);

/* Writes the SHA-256 of audit_canonical(v), in hex, into hex. */
void audit_digest(json_t *v, char hex[65]);

/* Resets rec for a new call: a new id, the time now, everything else empty. */
void audit_record_init(struct audit_record *rec, const char *method, const char *client);

/* Sets rec's duration: the time from rec->at until now, in milliseconds. */
void audit_record_end(struct audit_record *rec);

/* Releases what rec owns. */
void audit_record_clear(struct audit_record *rec);

#endif
