/*
 * pool.c: database workers.  Jobs wait in one FIFO per key (the caller's tenant); keys
 * with work wait in a ring, and each worker takes one job from the first key in the ring
 * that runs fewer than its share of the workers, and moves that key to the tail.  So one
 * tenant's flood waits its turn.  The share limits a key only while another key waits:
 * when every waiting key is at its share, a free worker takes the first of them anyway
 * (work-conserving), and a key that arrives later is served by the next worker to finish
 * (each call's statement has its timeout, so that is soon).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/log.h"
#include "airlock/metrics.h"
#include "airlock/pool.h"

/* libbsd leaves __unused undefined (glibc has members of that name); tree.h needs it. */
#ifndef __unused
#define __unused __attribute__((__unused__))
#endif
#include <sys/tree.h>

struct keyq {
	char key[64];
	size_t n;	/* jobs waiting */
	size_t running; /* jobs running */
	int is_in_ring;
	TAILQ_HEAD(, pool_job) jobs;
	TAILQ_ENTRY(keyq) ring;
	RB_ENTRY(keyq) node;
};

static int
keyq_cmp(struct keyq *a, struct keyq *b)
{
	return strcmp(a->key, b->key);
}

RB_HEAD(keyq_tree, keyq);
RB_GENERATE_STATIC(keyq_tree, keyq, node, keyq_cmp)

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct keyq_tree keys;
	TAILQ_HEAD(, keyq) ring;
	size_t queued, running, max_queued, max_per_key;
	size_t max_running_per_key; /* a key's share of the workers */
	int stopping;
	unsigned n;
	const char *conninfo;
	pthread_t *threads;
};

/* Frees q once nothing of it waits or runs. */
static void
release_if_idle(struct pool *pool, struct keyq *q)
{
	if (q->n == 0 && q->running == 0) {
		RB_REMOVE(keyq_tree, &pool->keys, q);
		free(q);
	}
}

/* Takes the next job from the first key below its share, or NULL when none may run now. */
static struct pool_job *
take(struct pool *pool)
{
	struct pool_job *job;
	struct keyq *q;

	TAILQ_FOREACH (q, &pool->ring, ring)
		if (q->running < pool->max_running_per_key)
			break;
	/* No waiting key is below its share: no one else waits for this worker. */
	if (q == NULL && (q = TAILQ_FIRST(&pool->ring)) == NULL)
		return NULL;
	job = TAILQ_FIRST(&q->jobs);
	TAILQ_REMOVE(&q->jobs, job, entry);
	job->q = q;
	q->n--;
	q->running++;
	pool->queued--;
	TAILQ_REMOVE(&pool->ring, q, ring);
	q->is_in_ring = 0;
	if (q->n > 0) {
		TAILQ_INSERT_TAIL(&pool->ring, q, ring);
		q->is_in_ring = 1;
	}
	return job;
}

static void *
worker(void *arg)
{
	struct pool *pool = arg;
	struct pool_job *job;
	struct keyq *q;
	struct db db;
	unsigned generation;

	db_init(&db, pool->conninfo);
	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while ((job = take(pool)) == NULL && !(pool->stopping && pool->queued == 0))
			pthread_cond_wait(&pool->work, &pool->lock);
		if (job == NULL)
			break;
		pool->running++;
		q = job->q;
		pthread_mutex_unlock(&pool->lock);
		generation = db.generation;
		job->run(job, &db); /* the job is the submitter's again from here */
		/* A connection made in place of one this worker had: a reconnect. */
		if (generation != 0 && db.generation != generation)
			metrics_count(METRICS_DB_RECONNECTS);
		pthread_mutex_lock(&pool->lock);
		pool->running--;
		q->running--;
		release_if_idle(pool, q);
		/* No one else is woken here: this worker takes the next job itself, and a
		 * sleeping worker never leaves one waiting (take() gives a job whenever any
		 * waits, and pool_submit wakes one worker per job).  Waking them all after every
		 * job had the idle ones fight for the lock and sleep again: futex calls, several
		 * per call, for nothing. */
	}
	pthread_mutex_unlock(&pool->lock);
	db_close(&db);
	return NULL;
}

struct pool *
pool_create(unsigned n, const char *conninfo, size_t max_queued, size_t max_per_key)
{
	struct pool *pool;
	unsigned i;

	if ((pool = calloc(1, sizeof(*pool))) == NULL)
		return NULL;
	if ((pool->threads = calloc(n, sizeof(*pool->threads))) == NULL) {
		free(pool);
		return NULL;
	}
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->work, NULL);
	RB_INIT(&pool->keys);
	TAILQ_INIT(&pool->ring);
	pool->conninfo = conninfo;
	pool->max_queued = max_queued;
	pool->max_per_key = max_per_key;
	pool->max_running_per_key = n > 1 ? (n + 1) / 2 : 1;
	for (i = 0; i < n; i++) {
		if (pthread_create(&pool->threads[i], NULL, worker, pool) != 0) {
			log_error("cannot start database worker %u", i);
			break;
		}
		pool->n++;
	}
	if (pool->n == 0) {
		pool_destroy(pool);
		return NULL;
	}
	return pool;
}

int
pool_submit(struct pool *pool, struct pool_job *job)
{
	struct keyq find = { 0 }, *q;
	int rc = -1;

	strlcpy(find.key, job->key, sizeof(find.key));
	pthread_mutex_lock(&pool->lock);
	if (pool->stopping)
		goto out;
	if (pool->queued >= pool->max_queued)
		goto full;
	q = RB_FIND(keyq_tree, &pool->keys, &find);
	if (q == NULL) {
		if ((q = calloc(1, sizeof(*q))) == NULL) {
			rc = -2;
			goto out;
		}
		strlcpy(q->key, job->key, sizeof(q->key));
		TAILQ_INIT(&q->jobs);
		RB_INSERT(keyq_tree, &pool->keys, q);
	} else if (q->n >= pool->max_per_key)
		goto full;
	if (!q->is_in_ring) {
		TAILQ_INSERT_TAIL(&pool->ring, q, ring);
		q->is_in_ring = 1;
	}
	TAILQ_INSERT_TAIL(&q->jobs, job, entry);
	q->n++;
	pool->queued++;
	pthread_cond_signal(&pool->work);
	rc = 0;
	goto out;
full:
	metrics_count(METRICS_POOL_REJECTED);
out:
	pthread_mutex_unlock(&pool->lock);
	return rc;
}

size_t
pool_pending(struct pool *pool)
{
	size_t n;

	pthread_mutex_lock(&pool->lock);
	n = pool->queued + pool->running;
	pthread_mutex_unlock(&pool->lock);
	return n;
}

void
pool_stats(struct pool *pool, size_t *workers, size_t *busy, size_t *waiting)
{
	pthread_mutex_lock(&pool->lock);
	*workers = pool->n;
	*busy = pool->running;
	*waiting = pool->queued;
	pthread_mutex_unlock(&pool->lock);
}

void
pool_destroy(struct pool *pool)
{
	unsigned i;

	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = 1;
	pthread_cond_broadcast(&pool->work);
	pthread_mutex_unlock(&pool->lock);
	for (i = 0; i < pool->n; i++)
		pthread_join(pool->threads[i], NULL);
	pthread_cond_destroy(&pool->work);
	pthread_mutex_destroy(&pool->lock);
	free(pool->threads);
	free(pool);
}
