/*
 * auth.c: bearer tokens to principals: hash lookup, expiry, revocation, tenant state, quota.
 * What never changes of a token (tenant, grants, bindings, task, expiry) is kept here for
 * at most AUTH_CACHE_TTL_MS, so a read costs one round trip; the checks that must be exact
 * (revocation, expiry, the tenant's state, the quota) travel in the call's own transaction
 * (airlock.count_call), and a revocation or a tenant's change announced on the channel
 * airlock_tokens drops what is kept at once, on every instance.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "airlock/auth.h"
#include "airlock/hex.h"
#include "airlock/log.h"

#define CACHE_SLOTS 1024 /* tokens kept at once; a slot is taken over by a newer one */

/* A token kept, by the SHA-256 of its secret. */
struct cached {
	uint8_t hash[32];
	int is_used;
	struct timespec loaded; /* CLOCK_MONOTONIC */
	time_t expires;		/* the token's expiry, seconds since the epoch */
	struct principal p;	/* its tools and bindings are the cache's */
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cached *cache;	  /* CACHE_SLOTS, allocated on first use */
static unsigned long cache_epoch; /* bumped by every forgetting */

/* The listener of airlock_tokens. */
static struct {
	pthread_t thread;
	int is_started;
	atomic_int is_stopping;
	atomic_int is_listening; /* it holds a connection that LISTENs */
	struct db db;
} watch;

/* What authentication needs of a token, through the operator's function: the gateway's
 * role holds no privilege on airlock.tokens. */
static const char lookup_sql[] = "SELECT * FROM airlock.token_lookup($1)";

/* Counted only while the token is still good: expiry and revocation win over a count
 * (airlock.count_call raises AL403 otherwise). */
const char auth_count_sql[] = "SELECT airlock.count_call($1) AS calls_used";

static void
unauthorized(struct rpc_error *err, const char *reason, const char *message)
{
	rpc_error_set(err, RPC_UNAUTHORIZED, reason, "%s", message);
}

static void
drop(struct cached *e)
{
	auth_clear(&e->p);
	memset(e, 0, sizeof(*e));
}

static struct cached *
slot_of(const uint8_t hash[32])
{
	return &cache[((size_t)hash[0] << 8 | hash[1]) % CACHE_SLOTS];
}

/* Fills p from the cache when hash is kept, fresh and not expired.  Returns 1, or 0. */
static int
cache_get(const uint8_t hash[32], struct principal *p)
{
	struct timespec now;
	struct cached *e;
	long long age_ms;
	int found = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&cache_lock);
	/* The hashes of secrets are compared, never the secrets: what timing could tell of a
	 * kept hash is of no use without a preimage of SHA-256. */
	if (cache != NULL && (e = slot_of(hash))->is_used && memcmp(e->hash, hash, 32) == 0) {
		age_ms = (long long)(now.tv_sec - e->loaded.tv_sec) * 1000 +
		    (now.tv_nsec - e->loaded.tv_nsec) / 1000000;
		if (age_ms < AUTH_CACHE_TTL_MS && e->expires > time(NULL)) {
			*p = e->p;
			json_incref(p->tools);
			json_incref(p->bindings);
			found = 1;
		} else
			drop(e);
	}
	pthread_mutex_unlock(&cache_lock);
	return found;
}

/* Keeps a copy of p, looked up while the cache's epoch was epoch: a lookup that raced a
 * forgetting is not kept (it may hold what was just revoked). */
static void
cache_put(const uint8_t hash[32], const struct principal *p, unsigned long epoch)
{
	struct cached *e;
	struct tm tm;
	time_t expires;

	memset(&tm, 0, sizeof(tm));
	if (strptime(p->expires_at, "%Y-%m-%dT%H:%M:%SZ", &tm) == NULL ||
	    (expires = timegm(&tm)) == (time_t)-1)
		return;
	pthread_mutex_lock(&cache_lock);
	if (cache == NULL)
		cache = calloc(CACHE_SLOTS, sizeof(*cache));
	if (cache != NULL && epoch == cache_epoch) {
		e = slot_of(hash);
		drop(e);
		memcpy(e->hash, hash, 32);
		e->is_used = 1;
		clock_gettime(CLOCK_MONOTONIC, &e->loaded);
		e->expires = expires;
		e->p = *p;
		json_incref(e->p.tools);
		json_incref(e->p.bindings);
	}
	pthread_mutex_unlock(&cache_lock);
}

void
auth_forget(const char *what)
{
	const char *tenant = NULL;
	size_t i;

	if (strlen(what) > 7 && strncmp(what, "tenant:", 7) == 0)
		tenant = &what[7];

	pthread_mutex_lock(&cache_lock);
	cache_epoch++;
	for (i = 0; cache != NULL && i < CACHE_SLOTS; i++)
		if (cache[i].is_used &&
		    (what[0] == '\0' ||
			strcmp(tenant != NULL ? cache[i].p.tenant : cache[i].p.token_id,
			    tenant != NULL ? tenant : what) == 0))
			drop(&cache[i]);
	pthread_mutex_unlock(&cache_lock);
}

/*
 * The listener: its own connection LISTENs on airlock_tokens; each announcement drops a
 * token or a tenant's tokens.  Whenever it has no such connection (the database down, a
 * reconnect) it forgets everything, since announcements may have been missed; the cache's
 * lifetime bounds what could be served meanwhile.
 */
static void *
listener(void *arg)
{
	struct pollfd pfd;
	PGnotify *n;
	PGresult *res;
	unsigned generation = 0;
	struct timespec pause = { 0, 200 * 1000 * 1000 };

	(void)arg;
	while (!atomic_load(&watch.is_stopping)) {
		if (watch.db.conn == NULL || generation != watch.db.generation) {
			atomic_store(&watch.is_listening, 0);
			auth_forget("");
			if (db_ensure(&watch.db) == -1) {
				nanosleep(&pause, NULL);
				continue;
			}
			res = PQexec(watch.db.conn, "LISTEN airlock_tokens");
			if (PQresultStatus(res) != PGRES_COMMAND_OK) {
				PQclear(res);
				db_close(&watch.db);
				nanosleep(&pause, NULL);
				continue;
			}
			PQclear(res);
			generation = watch.db.generation;
			/* Anything kept before the LISTEN took effect may predate an announcement. */
			auth_forget("");
			atomic_store(&watch.is_listening, 1);
		}
		pfd.fd = PQsocket(watch.db.conn);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, 200) < 0)
			continue;
		if (PQconsumeInput(watch.db.conn) == 0 ||
		    PQstatus(watch.db.conn) != CONNECTION_OK) {
			db_close(&watch.db);
			continue;
		}
		while ((n = PQnotifies(watch.db.conn)) != NULL) {
			auth_forget(n->extra);
			PQfreemem(n);
		}
	}
	atomic_store(&watch.is_listening, 0);
	return NULL;
}

int
auth_watch_start(const char *conninfo)
{
	db_init(&watch.db, conninfo);
	atomic_store(&watch.is_stopping, 0);
	if (pthread_create(&watch.thread, NULL, listener, NULL) != 0) {
		log_error("cannot start the token announcements' listener");
		return -1;
	}
	watch.is_started = 1;
	return 0;
}

int
auth_is_watching(void)
{
	return atomic_load(&watch.is_listening);
}

void
auth_watch_stop(void)
{
	if (watch.is_started) {
		atomic_store(&watch.is_stopping, 1);
		pthread_join(watch.thread, NULL);
		db_close(&watch.db);
		watch.is_started = 0;
	}
	auth_forget("");
	pthread_mutex_lock(&cache_lock);
	free(cache);
	cache = NULL;
	pthread_mutex_unlock(&cache_lock);
}

int
auth_identify(struct db *db, const char *bearer, const char *admin_file, int is_fresh,
    struct principal *p, struct rpc_error *err)
{
	char id[TOK_ID_LEN + 1], hex[65];
	const char *values[1];
	uint8_t hash[32];
	PGresult *res = NULL;
	unsigned long epoch;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	if (bearer == NULL || bearer[0] == '\0') {
		unauthorized(err, "token_missing", "Authorization: Bearer <token> is required");
		return -1;
	}
	if (tok_is_admin(admin_file, bearer)) {
		p->is_admin = 1;
		strlcpy(p->token_id, "admin", sizeof(p->token_id));
		return 0;
	}
	if (tok_parse(bearer, hash, id) == -1) {
		unauthorized(err, "token_invalid", "The bearer value is not a valid token");
		return -1;
	}
	if (!is_fresh && cache_get(hash, p))
		return 0;
	pthread_mutex_lock(&cache_lock);
	epoch = cache_epoch;
	pthread_mutex_unlock(&cache_lock);
	if (db_ensure(db) == -1) {
		db_unavailable(err);
		return -1;
	}
	hex_encode(hash, 32, hex);
	values[0] = hex;
	res = db_exec(db, "auth_lookup", lookup_sql, 1, values);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_unavailable(err);
		goto out;
	}
	if (PQntuples(res) != 1) {
		unauthorized(err, "token_invalid", "Unknown token");
		goto out;
	}
	/* A refusal of a token that exists keeps its id (the caller counts it with it). */
	strlcpy(p->token_id, db_text(res, 0, "token_id"), sizeof(p->token_id));
	if (strcmp(db_text(res, 0, "is_revoked"), "t") == 0) {
		unauthorized(err, "token_revoked", "The token was revoked");
		goto out;
	}
	if (strcmp(db_text(res, 0, "is_expired"), "t") == 0) {
		unauthorized(err, "token_expired", "The token has expired");
		goto out;
	}
	if (strcmp(db_text(res, 0, "tenant_disabled"), "t") == 0) {
		rpc_error_set(err, RPC_FORBIDDEN, "tenant_disabled", "The tenant is disabled");
		goto out;
	}
	strlcpy(p->tenant, db_text(res, 0, "tenant_name"), sizeof(p->tenant));
	strlcpy(p->role, db_text(res, 0, "tenant_role"), sizeof(p->role));
	strlcpy(p->task, db_text(res, 0, "task"), sizeof(p->task));
	p->tools = json_loads(db_text(res, 0, "tools"), 0, NULL);
	p->bindings = json_loads(db_text(res, 0, "bindings"), 0, NULL);
	p->can_revert = strcmp(db_text(res, 0, "can_revert"), "t") == 0;
	p->is_preview_only = strcmp(db_text(res, 0, "preview_only"), "t") == 0;
	p->max_calls = strtoll(db_text(res, 0, "max_calls"), NULL, 10);
	p->calls_used = strtoll(db_text(res, 0, "calls_used"), NULL, 10);
	strlcpy(p->expires_at, db_text(res, 0, "expires_at"), sizeof(p->expires_at));
	p->rate = strtod(db_text(res, 0, "rate_per_sec"), NULL);
	p->burst = strtod(db_text(res, 0, "rate_burst"), NULL);
	/* An approver token grants no tools; its person is what its decisions record. */
	if (!db_is_null(res, 0, "approver"))
		strlcpy(p->approver, db_text(res, 0, "approver"), sizeof(p->approver));
	if (!json_is_array(p->tools) || !json_is_object(p->bindings)) {
		auth_clear(p);
		rpc_error_internal(err);
		goto out;
	}
	cache_put(hash, p, epoch);
	rc = 0;
out:
	PQclear(res);
	return rc;
}

int
auth_count_result(const PGresult *res, struct principal *p, struct rpc_error *err)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		p->calls_used = strtoll(db_text(res, 0, "calls_used"), NULL, 10);
		return 0;
	}
	if (state == NULL || strncmp(state, "AL4", 3) != 0) {
		db_unavailable(err);
		return -1;
	}
	if (strcmp(state, "AL403") == 0) {
		rpc_error_set(err, RPC_FORBIDDEN, "quota_exhausted",
		    "This token's %lld calls are used up", p->max_calls);
		return -1;
	}
	/* Revoked, expired or its tenant disabled since it was kept: forgotten here too, in
	 * case the announcement is late. */
	auth_forget(p->token_id);
	if (strcmp(state, "AL401") == 0)
		unauthorized(err, "token_revoked", "The token was revoked");
	else if (strcmp(state, "AL440") == 0)
		unauthorized(err, "token_expired", "The token has expired");
	else
		rpc_error_set(err, RPC_FORBIDDEN, "tenant_disabled", "The tenant is disabled");
	return -1;
}

int
auth_count_call(struct db *db, struct principal *p, struct rpc_error *err)
{
	const char *values[1] = { p->token_id };
	PGresult *res;
	int rc;

	if (p->is_admin)
		return 0;
	res = db_exec(db, "auth_count", auth_count_sql, 1, values);
	rc = auth_count_result(res, p, err);
	PQclear(res);
	return rc;
}

int
auth_is_granted(const struct principal *p, const char *tool)
{
	json_t *v;
	size_t i;

	if (p->is_admin)
		return 0; /* the admin credential mints tokens; it calls no tools */
	json_array_foreach (p->tools, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), tool) == 0)
			return 1;
	return 0;
}

void
auth_clear(struct principal *p)
{
	json_decref(p->tools);
	json_decref(p->bindings);
	p->tools = p->bindings = NULL;
}

int
auth_check_bindings(const struct principal *p, const struct tool *t, json_t *args,
    struct rpc_error *err)
{
	json_t *props = json_object_get(t->schema, "properties"), *v;
	const char *k;
	char *text;
	int same;

	/* A code tool reaches data only through its input_tool, which is checked itself. */
	if (p->is_admin || t->kind == TOOL_CODE)
		return 0;
	json_object_foreach (p->bindings, k, v) {
		/* A tool without the bound argument cannot honour the binding: minting refuses
		 * such a grant, and a catalog changed since fails closed here. */
		if (json_object_get(props, k) == NULL) {
			rpc_error_set(err, RPC_FORBIDDEN, "binding_mismatch",
			    "This token is bound "
			    "to a value of argument '%s', which tool '%s' does not take",
			    k, t->name);
			err->data = json_pack("{s:s}", "argument", k);
			return -1;
		}
		text = tool_arg_text(json_object_get(args, k));
		same = text != NULL && strcmp(text, json_string_value(v)) == 0;
		free(text);
		if (!same) {
			rpc_error_set(err, RPC_FORBIDDEN, "binding_mismatch",
			    "This token is bound to another value of argument '%s'", k);
			err->data = json_pack("{s:s}", "argument", k);
			return -1;
		}
	}
	return 0;
}
