/*
 * idem.c: idempotency keys.  A write's key comes from its params or the Idempotency-Key
 * header; it is claimed inside the write's transaction (a plain INSERT, so a concurrent
 * duplicate waits on the unique index), its answer stored with the commit and replayed
 * byte for byte to a retry with the same arguments.  This instance caps the keyed writes
 * waiting per key and per tenant, and expired keys are swept.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/idem.h"
#include "airlock/log.h"

#ifndef __unused
#define __unused __attribute__((__unused__))
#endif
#include <sys/tree.h>

/* Keys are claimed, answered and swept through the operator's functions
 * (migrations/0011_gateway_functions.sql): the gateway's role cannot touch the table. */
static const char sweep_key_sql[] = "SELECT airlock.sweep_key($1, $2)";
/* A plain INSERT inside: a concurrent duplicate waits on the unique index, then fails. */
static const char claim_sql[] = "SELECT airlock.claim_key($1, $2, $3, $4::uuid, $5::integer)";
/* The response is kept as the text that was sent, so a replay is byte for byte the same. */
static const char store_sql[] = "CALL airlock.store_key_response($1, $2, $3)";
static const char lookup_key_sql[] = "SELECT fingerprint, response FROM airlock.key_lookup($1, $2)";

static long long key_ttl = 86400;
static unsigned max_waiters_key = 8, max_waiters_tenant = 64;

void
idem_configure(long long ttl, unsigned per_key, unsigned per_tenant)
{
	key_ttl = ttl;
	max_waiters_key = per_key;
	max_waiters_tenant = per_tenant;
}

void
idem_in_flight(struct rpc_error *err)
{
	rpc_error_retry(err, RPC_CONFLICT, "key_in_flight", 1,
	    "A call with this idempotency key is still running; retry shortly");
}

/* Keyed writes in flight in this instance, per key and per tenant: the waiters' caps. */
struct inflight {
	char name[400]; /* "k:tenant\nkey" or "t:tenant" */
	unsigned n;
	RB_ENTRY(inflight) node;
};

static int
inflight_cmp(struct inflight *a, struct inflight *b)
{
	return strcmp(a->name, b->name);
}

RB_HEAD(inflight_tree, inflight);
RB_GENERATE_STATIC(inflight_tree, inflight, node, inflight_cmp)

static pthread_mutex_t inflight_lock = PTHREAD_MUTEX_INITIALIZER;
static struct inflight_tree inflights = RB_INITIALIZER(&inflights);

/* Adds delta to name's count; returns the count before, or -1 (no memory). */
static int
inflight_add(const char *name, int delta)
{
	struct inflight find = { 0 }, *f;
	int before;

	strlcpy(find.name, name, sizeof(find.name));
	f = RB_FIND(inflight_tree, &inflights, &find);
	if (f == NULL) {
		if (delta < 0 || (f = calloc(1, sizeof(*f))) == NULL)
			return -1;
		strlcpy(f->name, name, sizeof(f->name));
		RB_INSERT(inflight_tree, &inflights, f);
	}
	before = (int)f->n;
	f->n = (unsigned)((int)f->n + delta);
	if (f->n == 0) {
		RB_REMOVE(inflight_tree, &inflights, f);
		free(f);
	}
	return before;
}

/* Enters a keyed write.  Returns 0, or -1 with err when too many already wait (or out of
 * memory). */
int
idem_enter(const char *tenant, const char *key, struct rpc_error *err)
{
	char kname[400], tname[80];
	int on_key, on_tenant;

	snprintf(kname, sizeof(kname), "k:%s\n%s", tenant, key);
	snprintf(tname, sizeof(tname), "t:%s", tenant);
	pthread_mutex_lock(&inflight_lock);
	on_key = inflight_add(kname, 1);
	on_tenant = inflight_add(tname, 1);
	if (on_key < 0 || on_tenant < 0 || (unsigned)on_key >= max_waiters_key ||
	    (unsigned)on_tenant >= max_waiters_tenant) {
		inflight_add(kname, -1);
		inflight_add(tname, -1);
		pthread_mutex_unlock(&inflight_lock);
		if (on_key < 0 || on_tenant < 0)
			rpc_error_internal(err);
		else if ((unsigned)on_key >= max_waiters_key) {
			idem_in_flight(err);
		} else {
			rpc_error_retry(err, RPC_TOO_MANY, "concurrency_limited", 1,
			    "Too many keyed writes of this tenant in flight; retry shortly");
		}
		return -1;
	}
	pthread_mutex_unlock(&inflight_lock);
	return 0;
}

void
idem_leave(const char *tenant, const char *key)
{
	char kname[400], tname[80];

	snprintf(kname, sizeof(kname), "k:%s\n%s", tenant, key);
	snprintf(tname, sizeof(tname), "t:%s", tenant);
	pthread_mutex_lock(&inflight_lock);
	inflight_add(kname, -1);
	inflight_add(tname, -1);
	pthread_mutex_unlock(&inflight_lock);
}

/*
 * The stored answer for a key: returns it (new, replayed: true) when the key was used with
 * these arguments; NULL with err key_mismatch when with others; NULL with *found 0 when
 * the key is unused (or its call has not committed); NULL with err on a database fault.
 */
json_t *
idem_lookup(struct db *db, const char *tenant, const char *key, const char *fingerprint, int *found,
    int *is_replay, struct rpc_error *err)
{
	const char *values[2] = { tenant, key };
	json_t *sc = NULL;
	PGresult *res;

	*found = 0;
	res = db_exec(db, "write_lookup_key", lookup_key_sql, 2, values);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		*found = 1;
		db_unavailable(err);
	} else if (PQntuples(res) == 0 || db_is_null(res, 0, "response"))
		;
	else if ((*found = 1) && strcmp(db_text(res, 0, "fingerprint"), fingerprint) != 0)
		rpc_error_set(err, RPC_UNPROCESSABLE, "key_mismatch",
		    "This idempotency key was used with other arguments");
	else if ((sc = json_loads(db_value(res, 0, "response"), JSON_DECODE_ANY, NULL)) != NULL) {
		json_object_set_new(sc, "replayed", json_true());
		*is_replay = 1;
	} else
		rpc_error_internal(err);
	PQclear(res);
	return sc;
}

/* After a failed claim: the stored answer for the key, or why there is none. */
json_t *
idem_replay(struct db *db, const char *tenant, const char *key, const char *fingerprint,
    int *is_replay, struct rpc_error *err)
{
	json_t *sc;
	int found;

	sc = idem_lookup(db, tenant, key, fingerprint, &found, is_replay, err);
	if (sc == NULL && !found) {
		idem_in_flight(err);
	}
	return sc;
}

long long
idem_sweep(struct db *db)
{
	return db_sweep(db, "SELECT airlock.sweep_keys() AS swept", "idempotency keys");
}

/* The idempotency key of a write: params.idempotency_key, else the Idempotency-Key
 * header of a single request.  Returns it (borrowed), or NULL with err when it is
 * missing or malformed. */
const char *
idem_key_of(json_t *params, const char *header, struct rpc_error *err)
{
	const char *key = json_string_value(json_object_get(params, "idempotency_key"));
	json_t *utf8;

	if (key == NULL)
		key = header;
	if (key == NULL) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "key_required",
		    "A write needs an "
		    "idempotency key: a key of your choice, the same when you retry (the argument "
		    "airlock_idempotency_key where the tool takes it, params.idempotency_key, _meta "
		    "airlock/idempotencyKey or the Idempotency-Key header); or preview it with "
		    "dry_run");
		return NULL;
	}
	/* The header is bytes: a key that is not UTF-8 could not be stored or recorded. */
	if (strlen(key) == 0 || strlen(key) > 255 || (utf8 = json_string(key)) == NULL) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
		    "An idempotency key has 1 to 255 bytes of UTF-8");
		return NULL;
	}
	json_decref(utf8);
	return key;
}

void
idem_claim_queries(struct idem_claim *ic, struct db_query q[2], const char *tenant, const char *key,
    const char *fingerprint, const char *call_id)
{
	snprintf(ic->ttl, sizeof(ic->ttl), "%lld", key_ttl);
	ic->sweep_v[0] = tenant;
	ic->sweep_v[1] = key;
	q[0].sql = sweep_key_sql;
	q[0].n = 2;
	q[0].values = ic->sweep_v;
	ic->claim_v[0] = tenant;
	ic->claim_v[1] = key;
	ic->claim_v[2] = fingerprint;
	ic->claim_v[3] = call_id;
	ic->claim_v[4] = ic->ttl;
	q[1].sql = claim_sql;
	q[1].n = 5;
	q[1].values = ic->claim_v;
}

void
idem_store_query(const char *values[3], struct db_query *q, const char *tenant, const char *key,
    const char *response)
{
	values[0] = tenant;
	values[1] = key;
	values[2] = response;
	q->sql = store_sql;
	q->n = 3;
	q->values = values;
}
