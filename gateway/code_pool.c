/*
 * code_pool.c: the sandboxes of code tools, counted and kept: how many each tenant runs at
 * once, and the warm pools.
 *
 * Warm pools.  A warm sandbox is started ahead through the same sb_spawn as a cold one,
 * with the same configuration: namespace made (or gVisor booted), interpreter loaded and
 * blocked reading its program from its descriptor.  It serves exactly one call and is then
 * destroyed like any other.  Pools are keyed by everything a sandbox is started with
 * (level, interpreter, limits, allowlist); a tool's manifest asks for code.warm of them.
 * One thread keeps them filled, within --warm (in all) and never beyond what the current
 * catalog asks for; a tenant may take --warm-per-tenant at once, and a call that finds
 * none ready starts cold.  Nothing of a tenant is in a warm sandbox before its call.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "airlock/code.h"
#include "airlock/gateway.h"
#include "airlock/log.h"
#include "code_int.h"

/* Sandboxes running per tenant: a short list, guarded by slots_lock. */
struct slot {
	char tenant[64];
	unsigned running;
	unsigned warm; /* of those, started ahead (taken from a warm pool) */
	LIST_ENTRY(slot) entry;
};

static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(, slot) slots = LIST_HEAD_INITIALIZER(slots);

struct warm_pool {
	char *key;    /* JSON of what the sandboxes are started with */
	json_t *code; /* the manifest's code object it came from (a copy) */
	struct sb_limits limits;
	int is_gvisor;
	unsigned want;	   /* asked for by the current catalog; 0: drain */
	unsigned ready;	   /* entries in list */
	unsigned starting; /* being started by the pool's thread */
	int64_t retry_at;  /* after a failed start, when to try again (ms) */
	struct warm_list list;
	LIST_ENTRY(warm_pool) entry;
};

static struct {
	pthread_mutex_t lock; /* everything below; taken before slots_lock */
	pthread_cond_t cond;
	pthread_t thread;
	int is_started;
	int is_stopping;
	struct gateway *gw;
	LIST_HEAD(, warm_pool) pools;
	unsigned total; /* ready and starting, in all */
	unsigned max_total;
	unsigned per_tenant;
	unsigned long hits, misses;
} warm = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

/* tenant's entry, or NULL (slots_lock held). */
static struct slot *
slot_find(const char *tenant)
{
	struct slot *s;

	LIST_FOREACH (s, &slots, entry)
		if (strcmp(s->tenant, tenant) == 0)
			return s;
	return NULL;
}

/* The pool for key, or NULL (warm.lock held). */
static struct warm_pool *
pool_find(const char *key)
{
	struct warm_pool *p;

	LIST_FOREACH (p, &warm.pools, entry)
		if (strcmp(p->key, key) == 0)
			return p;
	return NULL;
}

/* Takes one of tenant's max sandboxes.  Returns 0, or -1 when all are taken (or out of
 * memory, which refuses the same way). */
int
code_slot_take(const char *tenant, unsigned max)
{
	struct slot *s;
	int rc = -1;

	pthread_mutex_lock(&slots_lock);
	if ((s = slot_find(tenant)) == NULL && (s = calloc(1, sizeof(*s))) != NULL) {
		strlcpy(s->tenant, tenant, sizeof(s->tenant));
		LIST_INSERT_HEAD(&slots, s, entry);
	}
	if (s != NULL && s->running < max) {
		s->running++;
		rc = 0;
	}
	pthread_mutex_unlock(&slots_lock);
	return rc;
}

/* Gives back a slot taken by code_slot_take; an idle tenant's entry goes away. */
void
code_slot_release(const char *tenant)
{
	struct slot *s;

	pthread_mutex_lock(&slots_lock);
	if ((s = slot_find(tenant)) != NULL && --s->running == 0) {
		LIST_REMOVE(s, entry);
		free(s);
	}
	pthread_mutex_unlock(&slots_lock);
}

/* What a sandbox of code with lim is started with, as a key (a new string), or NULL. */
char *
code_warm_key(json_t *code, const struct sb_limits *lim)
{
	json_t *k;
	char *s;

	k = json_pack("{s:O?, s:O?, s:O?, s:o}", "isolation", json_object_get(code, "isolation"),
	    "interpreter", json_object_get(code, "interpreter"), "allow",
	    json_object_get(code, "allow"), "limits",
	    json_pack("{s:I, s:I, s:I, s:I, s:I, "
		      "s:I, s:I, s:I, s:I}",
		"wall", (json_int_t)lim->wall_ms, "cpu", (json_int_t)lim->cpu_ms, "mem",
		(json_int_t)lim->mem_bytes, "pids", (json_int_t)lim->pids, "fsize",
		(json_int_t)lim->fsize_bytes, "nofile", (json_int_t)lim->nofile, "tmp",
		(json_int_t)lim->tmp_bytes, "stdout", (json_int_t)lim->stdout_max, "stderr",
		(json_int_t)lim->stderr_max));
	s = k != NULL ? json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(k);
	return s;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Frees one sandbox started ahead, which no list holds any more. */
static void
warm_destroy(struct warm *w)
{
	if (w != NULL) {
		sb_free(w->run);
		json_decref(code_egress_finish(w->log, "(warm)"));
		free(w);
	}
}

/* Frees every sandbox of list. */
static void
warm_destroy_all(struct warm_list *list)
{
	struct warm *w;

	while ((w = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, w, entry);
		warm_destroy(w);
	}
}

/*
 * Takes a warm sandbox for key, counting it against tenant's share.  Returns it (owned by
 * the caller, its tenant's share released with code_warm_done), or NULL: no pool for key, none
 * ready, or the tenant holds its share already (a cold start follows).
 */
struct warm *
code_warm_take(const char *key, const char *tenant)
{
	struct warm_list dead = TAILQ_HEAD_INITIALIZER(dead);
	struct warm_pool *p;
	struct warm *w = NULL;
	struct slot *s;

	pthread_mutex_lock(&warm.lock);
	if ((p = pool_find(key)) == NULL) {
		pthread_mutex_unlock(&warm.lock);
		return NULL;
	}
	pthread_mutex_lock(&slots_lock);
	s = slot_find(tenant);
	while (s != NULL && s->warm < warm.per_tenant && (w = TAILQ_FIRST(&p->list)) != NULL) {
		TAILQ_REMOVE(&p->list, w, entry);
		p->ready--;
		warm.total--;
		if (sb_is_alive(w->run)) {
			s->warm++;
			break;
		}
		TAILQ_INSERT_TAIL(&dead, w, entry);
		w = NULL;
	}
	pthread_mutex_unlock(&slots_lock);
	if (w != NULL)
		warm.hits++;
	else
		warm.misses++;
	pthread_cond_signal(&warm.cond);
	pthread_mutex_unlock(&warm.lock);
	warm_destroy_all(&dead);
	return w;
}

/* Gives back a tenant's share of the warm sandboxes taken by code_warm_take. */
void
code_warm_done(const char *tenant)
{
	struct slot *s;

	pthread_mutex_lock(&slots_lock);
	if ((s = slot_find(tenant)) != NULL && s->warm > 0)
		s->warm--;
	pthread_mutex_unlock(&slots_lock);
}

/* The pools the current catalog asks for: want set on each (made when missing), 0 on the
 * others.  Called by the pool's thread without warm.lock. */
static void
warm_sync(void)
{
	struct catalog_ref *ref = gw_catalog_get(warm.gw);
	struct warm_pool *p;
	struct sb_limits lim;
	size_t i;

	pthread_mutex_lock(&warm.lock);
	LIST_FOREACH (p, &warm.pools, entry)
		p->want = 0;
	for (i = 0; ref != NULL && i < ref->cat->n; i++) {
		const struct tool *t = &ref->cat->tools[i];
		json_int_t want;
		char *key;

		if (t->kind != TOOL_CODE ||
		    (want = json_integer_value(json_object_get(t->code, "warm"))) <= 0)
			continue;
		code_limits(t->code, &lim);
		if ((key = code_warm_key(t->code, &lim)) == NULL)
			continue;
		if ((p = pool_find(key)) == NULL && (p = calloc(1, sizeof(*p))) != NULL) {
			TAILQ_INIT(&p->list);
			p->key = key;
			key = NULL;
			p->code = json_deep_copy(t->code);
			p->limits = lim;
			p->is_gvisor =
			    strcmp(json_string_value(json_object_get(t->code, "isolation")),
				"gvisor") == 0;
			if (p->code == NULL) {
				free(p->key);
				free(p);
				p = NULL;
			} else
				LIST_INSERT_HEAD(&warm.pools, p, entry);
		}
		free(key);
		if (p != NULL && (unsigned)want > p->want)
			p->want = (unsigned)want;
	}
	pthread_mutex_unlock(&warm.lock);
	gw_catalog_put(warm.gw, ref);
}

/* Starts one sandbox for pool p (warm.lock not held; p stays while p->starting > 0). */
static struct warm *
warm_start(struct warm_pool *p)
{
	const char *allow[SB_ALLOW_MAX + 1];
	struct sb_config cfg;
	struct warm *w;
	char msg[512];

	if ((w = calloc(1, sizeof(*w))) == NULL || (w->log = code_egress_new()) == NULL) {
		free(w);
		return NULL;
	}
	code_config(p->code, &p->limits, allow, w->log, &cfg);
	if (sb_spawn(&cfg, &w->run, msg, sizeof(msg)) == -1 ||
	    sb_ready(w->run, SB_BOOT_MS, msg, sizeof(msg)) == -1) {
		log_warn("warm pool: a sandbox did not start: %s", msg);
		warm_destroy(w);
		return NULL;
	}
	return w;
}

static void *
warm_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&warm.lock);
	while (!warm.is_stopping) {
		struct warm_list dead = TAILQ_HEAD_INITIALIZER(dead);
		struct warm_pool *p, *p_next, *pick = NULL;
		struct warm *w, *w_next;
		struct timespec until;

		pthread_mutex_unlock(&warm.lock);
		warm_sync();
		pthread_mutex_lock(&warm.lock);
		LIST_FOREACH_SAFE (p, &warm.pools, entry, p_next) {
			/* Beyond what is asked for (a reload, a smaller catalog), or dead. */
			unsigned kept = 0;

			TAILQ_FOREACH_SAFE (w, &p->list, entry, w_next) {
				if (kept < p->want && sb_is_alive(w->run)) {
					kept++;
					continue;
				}
				TAILQ_REMOVE(&p->list, w, entry);
				TAILQ_INSERT_TAIL(&dead, w, entry);
				p->ready--;
				warm.total--;
			}
			if (p->want == 0 && p->ready == 0 && p->starting == 0) {
				LIST_REMOVE(p, entry);
				json_decref(p->code);
				free(p->key);
				free(p);
				continue;
			}
			if (pick == NULL && p->ready + p->starting < p->want &&
			    warm.total < warm.max_total && now_ms() >= p->retry_at)
				pick = p;
		}
		if (!TAILQ_EMPTY(&dead)) {
			pthread_mutex_unlock(&warm.lock);
			warm_destroy_all(&dead);
			pthread_mutex_lock(&warm.lock);
			continue;
		}
		if (pick != NULL) {
			pick->starting++;
			warm.total++;
			pthread_mutex_unlock(&warm.lock);
			w = warm_start(pick);
			pthread_mutex_lock(&warm.lock);
			pick->starting--;
			if (w != NULL) {
				TAILQ_INSERT_HEAD(&pick->list, w, entry);
				pick->ready++;
			} else {
				warm.total--;
				pick->retry_at = now_ms() + 5000;
			}
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		(void)pthread_cond_timedwait(&warm.cond, &warm.lock, &until);
	}
	pthread_mutex_unlock(&warm.lock);
	return NULL;
}

int
code_warm_start(struct gateway *gw)
{
	int e;

	pthread_mutex_lock(&warm.lock);
	warm.gw = gw;
	warm.max_total = gw->cfg->warm_max;
	warm.per_tenant = gw->cfg->warm_per_tenant;
	warm.is_stopping = 0;
	if (warm.max_total == 0 || warm.is_started) {
		pthread_mutex_unlock(&warm.lock);
		return 0;
	}
	if ((e = pthread_create(&warm.thread, NULL, warm_main, NULL)) != 0) {
		pthread_mutex_unlock(&warm.lock);
		log_error("warm pool: cannot start its thread: %s", strerror(e));
		return -1;
	}
	warm.is_started = 1;
	pthread_mutex_unlock(&warm.lock);
	return 0;
}

void
code_warm_stop(void)
{
	struct warm_pool *p;

	pthread_mutex_lock(&warm.lock);
	if (!warm.is_started) {
		pthread_mutex_unlock(&warm.lock);
		return;
	}
	warm.is_stopping = 1;
	pthread_cond_signal(&warm.cond);
	pthread_mutex_unlock(&warm.lock);
	pthread_join(warm.thread, NULL);
	pthread_mutex_lock(&warm.lock);
	while ((p = LIST_FIRST(&warm.pools)) != NULL) {
		LIST_REMOVE(p, entry);
		warm_destroy_all(&p->list);
		json_decref(p->code);
		free(p->key);
		free(p);
	}
	warm.total = 0;
	warm.is_started = 0;
	pthread_mutex_unlock(&warm.lock);
}

char *
code_warm_metrics(void)
{
	struct warm_pool *p;
	unsigned ready[2] = { 0, 0 }, starting = 0;
	unsigned long hits, misses;
	char *text;

	pthread_mutex_lock(&warm.lock);
	LIST_FOREACH (p, &warm.pools, entry) {
		ready[p->is_gvisor] += p->ready;
		starting += p->starting;
	}
	hits = warm.hits;
	misses = warm.misses;
	pthread_mutex_unlock(&warm.lock);
	if (asprintf(&text,
		"# HELP airlock_sandbox_warm Sandboxes started ahead, waiting for a call.\n"
		"# TYPE airlock_sandbox_warm gauge\n"
		"airlock_sandbox_warm{isolation=\"namespace\"} %u\n"
		"airlock_sandbox_warm{isolation=\"gvisor\"} %u\n"
		"# HELP airlock_sandbox_warm_starting Warm sandboxes being started.\n"
		"# TYPE airlock_sandbox_warm_starting gauge\n"
		"airlock_sandbox_warm_starting %u\n"
		"# HELP airlock_sandbox_warm_hits_total Code calls served by a warm sandbox.\n"
		"# TYPE airlock_sandbox_warm_hits_total counter\n"
		"airlock_sandbox_warm_hits_total %lu\n"
		"# HELP airlock_sandbox_warm_misses_total Code calls of a pooled tool that started "
		"cold (none ready, or the tenant held its share).\n"
		"# TYPE airlock_sandbox_warm_misses_total counter\n"
		"airlock_sandbox_warm_misses_total %lu\n",
		ready[0], ready[1], starting, hits, misses) == -1)
		return NULL;
	return text;
}
