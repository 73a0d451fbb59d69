/*
 * audit.c: the audit writer.  Callers queue their records, and either wait (audit_write)
 * or hand the record over with what answers the call once it is durable (audit_submit, so
 * a database worker never waits for a flush); one thread writes everything queued in one
 * INSERT and one commit (group commit), then wakes or answers them all.  Refusals before authentication, and a token's refusals by rate limit, are
 * only counted here, per client address, token and second, and written as one row per
 * (second, address, token, reason).  It also holds the deployment's digest key, bounds
 * what a record's arguments may hold, and is the one source of a record's shape and
 * statement: the write path, approvals and airlockctl (audit_record_now) insert theirs
 * with the same text.
 */
#include <openssl/evp.h>
#include <pthread.h>
#include <sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/audit.h"
#include "airlock/db.h"
#include "airlock/hex.h"
#include "airlock/log.h"
#include "airlock/metrics.h"
#include "airlock/rpc.h"

#define BATCH_MAX 1000
#define REFUSAL_SLOTS 1024
#define REFUSAL_OTHER 64 /* of those, kept for the "(other)" counts */

struct pending {
	const struct audit_record *rec;
	int done;
	int rc;
	struct pending *next;
	/* A record handed over (audit_submit): the writer's own copy, and what to call. */
	void (*on_done)(void *arg, int rc);
	void *arg;
	struct audit_record own;
};

struct refusal {
	time_t second;
	char client[64];
	char token_id[16]; /* "" when no token is known */
	const char *reason;
	int count;
};

struct audit {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* the writer has work */
	pthread_cond_t done; /* a batch was written */
	struct pending *head, **tail;
	struct refusal refusals[REFUSAL_SLOTS];
	size_t n_refusals;
	unsigned long refusals_lost; /* not even "(other)" had room: logged, then reset */
	int stopping;
	pthread_t thread;
	struct db db;
};

/* The gateway inserts nothing itself: procedures owned by the operator write the records
 * (seq and digest are the database's), a dry-run's previewed changes and plan (only with
 * its record, in the same transaction) and the refusal counts. */
const char audit_insert_calls_sql[] = "CALL airlock.record_calls($1::json)";

static const char insert_changes[] = "CALL airlock.record_preview($1::uuid, $2::jsonb)";

/* Plans live as long as a preview is worth committing (15 minutes, set by the database). */
static const char insert_plan[] =
    "CALL airlock.create_plan($1::uuid, $2, $3, $4, $5::jsonb, $6::jsonb)";

/* A plan held for an approver: stored pending, then announced on airlock_plans. */
static const char insert_held_plan[] =
    "CALL airlock.create_plan_for_approval($1::uuid, $2, $3, $4, $5::jsonb, $6::jsonb,"
    " $7::boolean)";

static const char insert_refusals[] = "CALL airlock.record_refusals($1::json)";

static const char key_sql[] = "SELECT encode(key, 'hex') AS key_hex FROM airlock.digest_key";

/* The deployment's digest key (airlock.digest_key), read once per process. */
static pthread_mutex_t key_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t digest_key[32];
static int has_key;

void
audit_new_id(char id[AUDIT_ID_LEN + 1])
{
	uint8_t b[16];

	arc4random_buf(b, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(id, AUDIT_ID_LEN + 1,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
	    b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	    b[15]);
}

int
audit_is_id(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != AUDIT_ID_LEN)
		return 0;
	for (i = 0; i < AUDIT_ID_LEN; i++)
		if (i == 8 || i == 13 || i == 18 || i == 23
			? s[i] != '-'
			: strchr("0123456789abcdefABCDEF", s[i]) == NULL)
			return 0;
	return 1;
}

char *
audit_canonical(json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
}

void
audit_digest(json_t *v, char hex[65])
{
	char *text = audit_canonical(v);
	const char *in = text ? text : "";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	/* libcrypto's SHA-256 (SHA extensions or vector code where the CPU has them): a
	 * read's digest covers all its rows, and libmd's portable code was a tenth of the
	 * instructions the gateway spent on a read.  libmd's, the same digest, should
	 * libcrypto fail. */
	if (EVP_Digest(in, strlen(in), md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
		SHA256Data((const uint8_t *)in, strlen(in), hex);
		free(text);
		return;
	}
	hex_encode(md, n, hex);
	free(text);
}

int
audit_key_load(PGconn *conn)
{
	PGresult *res;
	const char *hex;
	unsigned v;
	size_t i;
	int rc = -1;

	pthread_mutex_lock(&key_lock);
	if (has_key) {
		pthread_mutex_unlock(&key_lock);
		return 0;
	}
	res = conn != NULL ? PQexecParams(conn, key_sql, 0, NULL, NULL, NULL, NULL, 0) : NULL;
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    strlen(hex = db_text(res, 0, "key_hex")) == 2 * sizeof(digest_key)) {
		for (i = 0; i < sizeof(digest_key) && sscanf(hex + 2 * i, "%2x", &v) == 1; i++)
			digest_key[i] = (uint8_t)v;
		if (i == sizeof(digest_key)) {
			has_key = 1;
			rc = 0;
		}
	} else if (res != NULL)
		log_error(
		    "cannot read the digest key (airlock.digest_key; run airlockctl migrate): "
		    "%s",
		    PQresultErrorMessage(res));
	PQclear(res);
	pthread_mutex_unlock(&key_lock);
	return rc;
}

int
audit_has_key(void)
{
	int yes;

	pthread_mutex_lock(&key_lock);
	yes = has_key;
	pthread_mutex_unlock(&key_lock);
	return yes;
}

void
audit_keyed_digest(json_t *v, char hex[65])
{
	uint8_t pad[64], inner[32], mac[32];
	char *text;
	SHA2_CTX ctx;
	size_t i;

	hex[0] = '\0';
	if (!audit_has_key() || (text = audit_canonical(v)) == NULL)
		return;
	/* HMAC-SHA256 (RFC 2104): the key is shorter than a block, so it is zero-padded. */
	memset(pad, 0, sizeof(pad));
	memcpy(pad, digest_key, sizeof(digest_key));
	for (i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x36;
	SHA256Init(&ctx);
	SHA256Update(&ctx, pad, sizeof(pad));
	SHA256Update(&ctx, (const uint8_t *)text, strlen(text));
	SHA256Final(inner, &ctx);
	for (i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x36 ^ 0x5c;
	SHA256Init(&ctx);
	SHA256Update(&ctx, pad, sizeof(pad));
	SHA256Update(&ctx, inner, sizeof(inner));
	SHA256Final(mac, &ctx);
	hex_encode(mac, sizeof(mac), hex);
	explicit_bzero(pad, sizeof(pad));
	free(text);
}

json_t *
audit_summary(json_t *sent, json_t *shown)
{
	char hex[65], *text;
	size_t n;
	json_t *out;

	text = json_dumps(sent, JSON_COMPACT | JSON_ENCODE_ANY);
	n = text != NULL ? strlen(text) : 0;
	free(text);
	audit_keyed_digest(sent, hex);
	/* The prefix is cut from ASCII-only text, so it never splits a character. */
	text = shown != NULL ? json_dumps(shown, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY)
			     : NULL;
	out = json_pack("{s:s, s:I, s:s#}", "hmac_sha256", hex, "bytes", (json_int_t)n, "prefix",
	    text != NULL ? text : "", text != NULL ? (int)strnlen(text, AUDIT_PREFIX_MAX) : 0);
	free(text);
	return out;
}

/* What a record keeps of arguments (borrowed): themselves up to AUDIT_ARGS_MAX bytes,
 * else their summary.  Returns a new reference. */
static json_t *
bounded_args(json_t *args)
{
	char *text;
	size_t n;

	if (args == NULL)
		return json_null();
	text = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
	n = text != NULL ? strlen(text) : 0;
	free(text);
	if (text != NULL && n <= AUDIT_ARGS_MAX)
		return json_incref(args);
	return audit_summary(args, args);
}

void
audit_record_init(struct audit_record *rec, const char *method, const char *client)
{
	memset(rec, 0, sizeof(*rec));
	audit_new_id(rec->id);
	clock_gettime(CLOCK_REALTIME, &rec->at);
	strlcpy(rec->method, method, sizeof(rec->method));
	strlcpy(rec->client, client ? client : "", sizeof(rec->client));
	rec->outcome = "ok";
}

void
audit_record_end(struct audit_record *rec)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	rec->duration_ms = (double)(now.tv_sec - rec->at.tv_sec) * 1e3 +
	    (double)(now.tv_nsec - rec->at.tv_nsec) / 1e6;
}

void
audit_record_clear(struct audit_record *rec)
{
	json_decref(rec->arguments);
	json_decref(rec->egress);
	rec->arguments = rec->egress = NULL;
	free(rec->changes);
	free(rec->plan_updates);
	free(rec->plan_inserts);
	rec->changes = rec->plan_updates = rec->plan_inserts = NULL;
}

void
audit_record_reason(struct audit_record *rec, const char *s)
{
	if (s == NULL) {
		rec->reason = NULL;
		return;
	}
	strlcpy(rec->reason_buf, s, sizeof(rec->reason_buf));
	rec->reason = rec->reason_buf;
}

static json_t *
text_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

/* The record r as an element of audit_insert_calls_sql's array: a new reference. */
static json_t *
record_json(const struct audit_record *r)
{
	char at[64];
	struct tm tm;

	gmtime_r(&r->at.tv_sec, &tm);
	snprintf(at, sizeof(at), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    (long)(r->at.tv_nsec / 1000) % 1000000);
	return json_pack("{s:s, s:s, s:o, s:o, s:o, s:s, s:o, s:o, s:b, s:o, s:o, s:s, s:o,"
			 " s:f, s:o, s:o, s:O?, s:o}",
	    "id", r->id, "at", at, "tenant", text_or_null(r->tenant), "token_id",
	    text_or_null(r->token_id), "task", text_or_null(r->task), "method", r->method, "tool",
	    text_or_null(r->tool), "arguments", bounded_args(r->arguments), "dry_run",
	    r->is_dry_run, "idempotency_key", text_or_null(r->idem_key), "plan_id",
	    text_or_null(r->plan_id), "outcome", r->outcome, "reason", text_or_null(r->reason),
	    "duration_ms", r->duration_ms, "result_digest", text_or_null(r->result_digest),
	    "client", text_or_null(r->client), "egress", r->egress, "trace_id",
	    text_or_null(r->trace_id));
}

char *
audit_record_batch(const struct audit_record *rec)
{
	json_t *rows = json_pack("[o]", record_json(rec));
	char *text = rows != NULL ? json_dumps(rows, JSON_COMPACT) : NULL;

	json_decref(rows);
	return text;
}

int
audit_record_now(PGconn *conn, const struct audit_record *rec)
{
	const char *values[1];
	PGresult *res;
	char *text;
	int rc;

	if ((text = audit_record_batch(rec)) == NULL)
		return -1;
	values[0] = text;
	res = PQexecParams(conn, audit_insert_calls_sql, 1, NULL, values, NULL, NULL, 0);
	rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
	PQclear(res);
	free(text);
	return rc;
}

/* Runs one INSERT with a JSON array parameter.  Returns 0 or -1 (logged). */
static int
insert_json(struct audit *a, const char *sql, json_t *rows)
{
	const char *values[1];
	PGresult *res;
	char *text;
	int attempt, rc = -1;

	/* Text jansson dumped while short of memory may lack a key (rpc.h): not written. */
	rpc_alloc_reset();
	if ((text = json_dumps(rows, JSON_COMPACT)) == NULL || rpc_alloc_failed()) {
		free(text);
		return -1;
	}
	values[0] = text;
	/* A broken connection gets one fresh try before the batch fails closed. */
	for (attempt = 0; attempt < 2 && rc == -1; attempt++) {
		if (db_ensure(&a->db) == -1)
			continue;
		res = PQexecParams(a->db.conn, sql, 1, NULL, values, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_COMMAND_OK)
			rc = 0;
		else
			log_error("audit write failed: %s", PQresultErrorMessage(res));
		PQclear(res);
		if (rc == -1 && !db_is_connection_lost(&a->db))
			break;
	}
	free(text);
	return rc;
}

/*
 * Writes a batch of records, and the previews and plans of the dry-runs among them, in one
 * pipeline, so one implicit transaction (one commit).  Returns 0 or -1 (logged).
 */
static int
write_batch(struct audit *a, struct pending *batch)
{
	struct db_query *q = NULL;
	const char **values = NULL;
	struct pending *p;
	json_t *rows = json_array();
	char *text = NULL;
	size_t n = 1, i, k;
	int attempt, rc = -1;

	rpc_alloc_reset();
	for (p = batch; p != NULL; p = p->next) {
		/* A record that cannot be rendered fails its batch: it is never skipped (nor
		 * written with a member missing, which jansson short of memory can do). */
		if (json_array_append_new(rows, record_json(p->rec)) == -1)
			goto out;
		if (p->rec->changes != NULL)
			n++;
		if (p->rec->plan_updates != NULL)
			n++;
	}
	if ((text = json_dumps(rows, JSON_COMPACT)) == NULL || rpc_alloc_failed() ||
	    (q = calloc(n, sizeof(*q))) == NULL ||
	    (values = calloc(n * 7, sizeof(*values))) == NULL)
		goto out;
	values[0] = text;
	q[0].sql = audit_insert_calls_sql;
	q[0].n = 1;
	q[0].values = values;
	for (p = batch, i = 1; p != NULL; p = p->next) {
		const struct audit_record *r = p->rec;

		if (r->changes != NULL) {
			k = i * 7;
			values[k] = r->id;
			values[k + 1] = r->changes;
			q[i].sql = insert_changes;
			q[i].n = 2;
			q[i++].values = values + k;
		}
		if (r->plan_updates != NULL) {
			k = i * 7;
			values[k] = r->id;
			values[k + 1] = r->tenant;
			values[k + 2] = r->tool;
			values[k + 3] = r->fingerprint;
			values[k + 4] = r->plan_updates;
			values[k + 5] = r->plan_inserts ? r->plan_inserts : "{}";
			values[k + 6] = r->is_four_eyes ? "true" : "false";
			q[i].sql = r->needs_approval ? insert_held_plan : insert_plan;
			q[i].n = r->needs_approval ? 7 : 6;
			q[i++].values = values + k;
		}
	}
	/* A broken connection gets one fresh try before the batch fails closed. */
	for (attempt = 0; attempt < 2 && rc == -1; attempt++) {
		if (db_ensure(&a->db) == -1)
			continue;
		if (db_pipeline(&a->db, q, n) == -1)
			continue;
		rc = 0;
		for (i = 0; i < n; i++) {
			if (PQresultStatus(q[i].res) != PGRES_COMMAND_OK) {
				if (rc == 0)
					log_error("audit write failed: %s",
					    PQresultErrorMessage(q[i].res));
				rc = -1;
			}
			PQclear(q[i].res);
		}
		if (rc == -1)
			break;
	}
out:
	json_decref(rows);
	free(text);
	free(q);
	free(values);
	return rc;
}

/* write_batch, measured for /metrics: the batch's records and the flush's time. */
static int
timed_write(struct audit *a, struct pending *batch)
{
	struct timespec t0, t1;
	struct pending *p;
	size_t n = 0;
	int rc;

	for (p = batch; p != NULL; p = p->next)
		n++;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = write_batch(a, batch);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	metrics_audit_flush(n,
	    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return rc;
}

/* Takes the refusal counts of seconds that are over (all of them when stopping). */
static json_t *
take_refusals(struct audit *a, time_t now)
{
	json_t *rows = json_array();
	size_t i, kept = 0;

	for (i = 0; i < a->n_refusals; i++) {
		struct refusal *r = &a->refusals[i];

		if (r->second < now || a->stopping)
			json_array_append_new(rows,
			    json_pack("[I, s, s, i, s]", (json_int_t)r->second, r->client,
				r->reason, r->count, r->token_id));
		else
			a->refusals[kept++] = *r;
	}
	a->n_refusals = kept;
	if (a->refusals_lost > 0) {
		log_warn(
		    "%lu refusals could not be counted (too many addresses and reasons at once)",
		    a->refusals_lost);
		a->refusals_lost = 0;
	}
	return rows;
}

static void *
writer(void *arg)
{
	struct audit *a = arg;
	struct pending *batch, *p, *next, *handed;
	struct timespec deadline;
	json_t *refusals;
	size_t n;
	int rc;

	pthread_mutex_lock(&a->lock);
	for (;;) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 1;
		while (a->head == NULL && !a->stopping && a->n_refusals == 0)
			pthread_cond_wait(&a->wake, &a->lock);
		if (a->head == NULL && !a->stopping)
			pthread_cond_timedwait(&a->wake, &a->lock, &deadline);
		/* Take up to BATCH_MAX records. */
		batch = a->head;
		for (p = a->head, n = 1; p != NULL && p->next != NULL && n < BATCH_MAX; p = p->next)
			n++;
		if (p != NULL) {
			a->head = p->next;
			p->next = NULL;
			if (a->head == NULL)
				a->tail = &a->head;
		}
		refusals = take_refusals(a, time(NULL));
		if (batch == NULL && json_array_size(refusals) == 0 && a->stopping) {
			json_decref(refusals);
			break;
		}
		pthread_mutex_unlock(&a->lock);

		if (json_array_size(refusals) > 0 &&
		    insert_json(a, insert_refusals, refusals) == -1)
			log_error("lost %zu refusal counts", json_array_size(refusals));
		json_decref(refusals);
		rc = batch != NULL ? timed_write(a, batch) : 0;
		for (p = batch; p != NULL; p = p->next)
			p->rc = rc;
		/* A batch that failed is written again one record at a time, so a record the
		 * database refuses fails its own call only. */
		if (rc == -1 && batch != NULL && batch->next != NULL) {
			for (p = batch; p != NULL; p = next) {
				next = p->next;
				p->next = NULL;
				p->rc = write_batch(a, p);
				p->next = next;
			}
		}

		pthread_mutex_lock(&a->lock);
		handed = NULL;
		for (p = batch; p != NULL; p = next) {
			/* A waiter's record lives on its stack: untouched once it is done. */
			next = p->next;
			if (p->on_done != NULL) {
				p->next = handed;
				handed = p;
			} else
				p->done = 1;
		}
		pthread_cond_broadcast(&a->done);
		pthread_mutex_unlock(&a->lock);
		/* The records handed over: each call is answered now that its record is durable
		 * (or fails closed when it is not). */
		for (p = handed; p != NULL; p = next) {
			next = p->next;
			p->on_done(p->arg, p->rc);
			audit_record_clear(&p->own);
			free(p);
		}
		pthread_mutex_lock(&a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

struct audit *
audit_start(const char *conninfo)
{
	struct audit *a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->wake, NULL);
	pthread_cond_init(&a->done, NULL);
	a->tail = &a->head;
	db_init(&a->db, conninfo);
	if (pthread_create(&a->thread, NULL, writer, a) != 0) {
		free(a);
		return NULL;
	}
	return a;
}

int
audit_write(struct audit *a, const struct audit_record *rec)
{
	struct pending p;

	memset(&p, 0, sizeof(p));
	p.rec = rec;
	p.rc = -1;

	pthread_mutex_lock(&a->lock);
	if (a->stopping) {
		pthread_mutex_unlock(&a->lock);
		return -1;
	}
	/* p lives on this stack until the writer marks it done, and the writer unlinks every
	 * record it takes (resetting tail when it takes the last), so nothing keeps its address. */
	*a->tail = &p;
	// cppcheck-suppress autoVariables
	a->tail = &p.next;
	pthread_cond_signal(&a->wake);
	while (!p.done)
		pthread_cond_wait(&a->done, &a->lock);
	pthread_mutex_unlock(&a->lock);
	return p.rc;
}

int
audit_submit(struct audit *a, struct audit_record *rec, void (*on_done)(void *arg, int rc),
    void *arg)
{
	struct pending *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	pthread_mutex_lock(&a->lock);
	if (a->stopping) {
		pthread_mutex_unlock(&a->lock);
		free(p);
		return -1;
	}
	/* The record's content moves to the writer; rec is left empty for its owner to clear. */
	p->own = *rec;
	if (rec->reason == rec->reason_buf)
		p->own.reason = p->own.reason_buf;
	rec->arguments = rec->egress = NULL;
	rec->changes = rec->plan_updates = rec->plan_inserts = NULL;
	p->rec = &p->own;
	p->on_done = on_done;
	p->arg = arg;
	*a->tail = p;
	a->tail = &p->next;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	return 0;
}

void
audit_unrecorded(struct rpc_error *err)
{
	rpc_error_retry(err, RPC_UNAVAILABLE, "backend_unavailable", 1,
	    "The call could not be recorded, so it was not answered; retry shortly");
}

void
audit_refusal(struct audit *a, const char *client, const char *reason)
{
	audit_refusal_of(a, client, NULL, reason);
}

void
audit_refusal_of(struct audit *a, const char *client, const char *token_id, const char *reason)
{
	time_t now;
	struct refusal *r;
	size_t i;

	/* The second is read under the lock: read before it, a refusal could wait while the
	 * writer flushes its second, then start that second's row again. */
	pthread_mutex_lock(&a->lock);
	now = time(NULL);
	if (token_id == NULL)
		token_id = "";
	for (;;) {
		for (i = 0; i < a->n_refusals; i++) {
			r = &a->refusals[i];
			if (r->second == now && r->reason == reason &&
			    strcmp(r->client, client) == 0 && strcmp(r->token_id, token_id) == 0) {
				r->count++;
				goto out;
			}
		}
		/* Too many addresses this second: the rest are counted together, as
		 * "(other)", in slots kept for that. */
		if (a->n_refusals < REFUSAL_SLOTS - REFUSAL_OTHER ||
		    (strcmp(client, "(other)") == 0 && a->n_refusals < REFUSAL_SLOTS))
			break;
		if (strcmp(client, "(other)") == 0) {
			a->refusals_lost++;
			goto out;
		}
		client = "(other)";
		token_id = "";
	}
	r = &a->refusals[a->n_refusals++];
	r->second = now;
	strlcpy(r->client, client, sizeof(r->client));
	strlcpy(r->token_id, token_id, sizeof(r->token_id));
	r->reason = reason;
	r->count = 1;
	pthread_cond_signal(&a->wake);
out:
	pthread_mutex_unlock(&a->lock);
}

void
audit_stop(struct audit *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->lock);
	a->stopping = 1;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	db_close(&a->db);
	pthread_cond_destroy(&a->wake);
	pthread_cond_destroy(&a->done);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
