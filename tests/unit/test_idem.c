/*
 * test_idem.c: gateway/idem.c without a database: where a write's key comes from, the caps
 * on keyed writes in flight per key and per tenant, and the claim's and the store's
 * statements.  Claims, replays and sweeps need PostgreSQL: tests/integration/test_idempotency.py.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "airlock/idem.h"
#include "airlock/rpc.h"
#include "tap.h"

/* idem_key_of: returns whether the key found is want (NULL: refused with reason). */
static int
key_is(const char *params, const char *header, const char *want, const char *reason)
{
	json_t *p = json_loads(params, 0, NULL);
	struct rpc_error err;
	const char *key;
	int r;

	memset(&err, 0, sizeof(err));
	key = idem_key_of(p, header, &err);
	if (want != NULL)
		r = key != NULL && strcmp(key, want) == 0 && err.reason == NULL;
	else
		r = key == NULL && err.code == RPC_INVALID_PARAMS && err.reason != NULL &&
		    strcmp(err.reason, reason) == 0;
	if (!r)
		printf("# got %s (%s)\n", key ? key : "NULL", err.reason ? err.reason : "no error");
	json_decref(p);
	return r;
}

static void
test_key_of(void)
{
	char params[400], long_key[300];

	ok(key_is("{\"idempotency_key\": \"k1\"}", "h1", "k1", NULL),
	    "key: params.idempotency_key before the header");
	ok(key_is("{\"name\": \"t\"}", "h1", "h1", NULL),
	    "key: the Idempotency-Key header when params have none");
	ok(key_is("{}", NULL, NULL, "key_required"), "key: none at all is key_required");
	ok(key_is("{\"idempotency_key\": \"\"}", NULL, NULL, "invalid_params"),
	    "key: an empty key is refused");
	ok(key_is("{}", "", NULL, "invalid_params"), "key: an empty header is refused");
	memset(long_key, 'k', 255);
	long_key[255] = '\0';
	snprintf(params, sizeof(params), "{\"idempotency_key\": \"%s\"}", long_key);
	ok(key_is(params, NULL, long_key, NULL), "key: 255 characters (ASCII) are accepted");
	long_key[255] = 'k';
	long_key[256] = '\0';
	snprintf(params, sizeof(params), "{\"idempotency_key\": \"%s\"}", long_key);
	ok(key_is(params, NULL, NULL, "invalid_params"), "key: 256 characters (ASCII) are refused");
	ok(key_is("{}", "k\xff", NULL, "invalid_params"),
	    "key: a header that is not UTF-8 is refused");
}

/* idem_enter: returns whether it was refused with this code and reason (NULL: admitted). */
static int
enter_is(const char *tenant, const char *key, int code, const char *reason)
{
	struct rpc_error err;
	int rc, r;

	memset(&err, 0, sizeof(err));
	rc = idem_enter(tenant, key, &err);
	if (reason == NULL)
		r = rc == 0;
	else
		r = rc == -1 && err.code == code && strcmp(err.reason, reason) == 0 &&
		    json_integer_value(json_object_get(err.data, "retryAfterSeconds")) == 1;
	rpc_error_clear(&err);
	return r;
}

static void
test_in_flight(void)
{
	idem_configure(86400, 2, 3);
	ok(enter_is("tenant_a", "k1", 0, NULL) && enter_is("tenant_a", "k1", 0, NULL),
	    "in flight: two keyed writes on one key, with a cap of 2");
	ok(enter_is("tenant_a", "k1", RPC_CONFLICT, "key_in_flight"),
	    "in flight: the third on the key is key_in_flight at once, retry in a second");
	ok(enter_is("tenant_a", "k2", 0, NULL), "in flight: another key of the tenant");
	ok(enter_is("tenant_a", "k3", RPC_TOO_MANY, "concurrency_limited"),
	    "in flight: past the tenant's cap of 3, concurrency_limited");
	ok(enter_is("tenant_b", "k1", 0, NULL) && enter_is("tenant_b", "k1", 0, NULL),
	    "in flight: keys and caps are per tenant");
	idem_leave("tenant_a", "k1");
	ok(enter_is("tenant_a", "k1", 0, NULL),
	    "in flight: a write that left frees its place; the refused ones took none");
	ok(enter_is("tenant_a", "k1", RPC_CONFLICT, "key_in_flight"),
	    "in flight: the key is full again");
	idem_leave("tenant_a", "k1");
	idem_leave("tenant_a", "k1");
	idem_leave("tenant_a", "k2");
	idem_leave("tenant_b", "k1");
	idem_leave("tenant_b", "k1");
	idem_configure(86400, 1, 1);
	ok(enter_is("tenant_a", "k9", 0, NULL) &&
		enter_is("tenant_a", "k9", RPC_CONFLICT, "key_in_flight") &&
		enter_is("tenant_a", "k8", RPC_TOO_MANY, "concurrency_limited"),
	    "in flight: every place left when the writes left; new caps apply at once");
	idem_leave("tenant_a", "k9");
	idem_configure(86400, 8, 64);
}

static void
test_queries(void)
{
	struct idem_claim ic;
	struct db_query q[2];
	const char *values[3];

	idem_configure(3600, 8, 64);
	memset(q, 0, sizeof(q));
	idem_claim_queries(&ic, q, "tenant_a", "k1", "f00d",
	    "0b0c0d0e-1111-4222-8333-944445555666");
	ok(q[0].n == 2 && q[0].values == ic.sweep_v && strcmp(q[0].values[0], "tenant_a") == 0 &&
		strcmp(q[0].values[1], "k1") == 0 && strstr(q[0].sql, "$2") != NULL &&
		strstr(q[0].sql, "$3") == NULL,
	    "claim: the key's expired predecessor swept first, by tenant and key");
	ok(q[1].n == 5 && q[1].values == ic.claim_v && strcmp(q[1].values[2], "f00d") == 0 &&
		strcmp(q[1].values[3], "0b0c0d0e-1111-4222-8333-944445555666") == 0 &&
		strstr(q[1].sql, "$5") != NULL && strstr(q[1].sql, "$6") == NULL,
	    "claim: then claimed with its fingerprint for the call");
	ok(strcmp(q[1].values[4], "3600") == 0, "claim: the key lives as long as configured (%s)",
	    q[1].values[4]);
	memset(q, 0, sizeof(q));
	idem_store_query(values, &q[0], "tenant_a", "k1", "{\"rows\":[]}");
	ok(q[0].n == 3 && q[0].values == values && strcmp(values[2], "{\"rows\":[]}") == 0 &&
		strstr(q[0].sql, "$3") != NULL && strstr(q[0].sql, "$4") == NULL,
	    "store: the answer as sent, by tenant and key");
	idem_configure(86400, 8, 64);
}

int
main(void)
{
	test_key_of();
	test_in_flight();
	test_queries();
	return tap_done();
}
