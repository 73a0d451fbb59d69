/* idem.h: idempotency keys: where a write's key comes from, its claim, replay and sweep. */
/*
 * Owns the count of keyed writes in flight in this instance (idem_enter until idem_leave);
 * keys and tenants passed in are borrowed; a replayed answer is a new reference.
 */
#ifndef AIRLOCK_IDEM_H
#define AIRLOCK_IDEM_H

#include <jansson.h>

#include "airlock/db.h"
#include "airlock/rpc.h"

/* The idempotency key of a write: params.idempotency_key, else header (the
 * Idempotency-Key header of a single request, or NULL).  Returns it (borrowed), or NULL
 * with err: key_required when there is none, invalid_params when it is not 1 to 255
 * bytes of UTF-8. */
const char *idem_key_of(json_t *params, const char *header, struct rpc_error *err);

/* Sets err to 409 key_in_flight (retry in a second): another call with this key has not
 * finished. */
void idem_in_flight(struct rpc_error *err);

/* Enters a keyed write of tenant.  Returns 0, or -1 with err when too many already wait
 * on this key (409 key_in_flight) or this tenant's keys (429 concurrency_limited), or out
 * of memory.  Each 0 is paired with one idem_leave. */
int idem_enter(const char *tenant, const char *key, struct rpc_error *err)
    __attribute__((warn_unused_result));
void idem_leave(const char *tenant, const char *key);

/*
 * The stored answer for a key: returns it (new, replayed: true) when the key was used with
 * these arguments, setting *is_replay; NULL with err key_mismatch (422) when with others;
 * NULL with *found 0 when the key is unused (or its call has not committed); NULL with err
 * on a database fault.
 */
json_t *idem_lookup(struct db *db, const char *tenant, const char *key, const char *fingerprint,
    int *found, int *is_replay, struct rpc_error *err);

/* After a failed claim (23505): the stored answer for the key, as idem_lookup, or NULL
 * with err (409 key_in_flight when its call has not committed yet). */
json_t *idem_replay(struct db *db, const char *tenant, const char *key, const char *fingerprint,
    int *is_replay, struct rpc_error *err);

/* The values of a key's claim, which the queries idem_claim_queries fills borrow. */
struct idem_claim {
	const char *sweep_v[2];
	const char *claim_v[5];
	char ttl[24];
};

/*
 * Fills q[0] and q[1] for a write's pipeline: the key's expired predecessor swept, then
 * the key claimed for call_id with a plain INSERT (a concurrent duplicate waits on the
 * unique index, then fails with 23505; 55P03 past the lock timeout).  ic and the strings
 * must outlive the queries.
 */
void idem_claim_queries(struct idem_claim *ic, struct db_query q[2], const char *tenant,
    const char *key, const char *fingerprint, const char *call_id);

/* Fills q for the commit: the key's answer stored as the text sent (response), so that a
 * replay is byte for byte the same.  values (3 entries) and the strings must outlive q. */
void idem_store_query(const char *values[3], struct db_query *q, const char *tenant,
    const char *key, const char *response);

/* Deletes expired keys (at most a few thousand a round).  Returns how many, or -1
 * (logged). */
long long idem_sweep(struct db *db);

/* Sets the keys' lifetime (seconds; default a day) and the waiters allowed per key and
 * per tenant before a duplicate is answered key_in_flight at once. */
void idem_configure(long long key_ttl, unsigned waiters_per_key, unsigned waiters_per_tenant);

#endif
