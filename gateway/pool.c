/*
 * pool.c: database workers.  Jobs wait in one FIFO per key (the caller's token);
 * keys with work wait in a ring, and each worker takes one job from the key at
 * the ring's head and moves that key to the tail, so one token's flood cannot
 * starve another's calls.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/log.h"
#include "airlock/pool.h"

/* libbsd leaves __unused undefined (glibc has members of that name); tree.h needs it. */
#ifndef __unused
#define __unused __attribute__((__unused__))
#endif
#include <sys/tree.h>

struct keyq {
	char key[64];
	size_t n;
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
	int stopping;
	unsigned n;
	const char *conninfo;
	pthread_t *threads;
};

static struct pool_job *
take(struct pool *pool)
{
	struct keyq *q = TAILQ_FIRST(&pool->ring);
	struct pool_job *job;

	job = TAILQ_FIRST(&q->jobs);
	TAILQ_REMOVE(&q->jobs, job, entry);
	q->n--;
	pool->queued--;
	TAILQ_REMOVE(&pool->ring, q, ring);
	if (q->n == 0) {
		RB_REMOVE(keyq_tree, &pool->keys, q);
		free(q);
	} else
		TAILQ_INSERT_TAIL(&pool->ring, q, ring);
	return job;
}

static void *
worker(void *arg)
{
	struct pool *pool = arg;
	struct pool_job *job;
	struct db db;

	db_init(&db, pool->conninfo);
	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while (pool->queued == 0 && !pool->stopping)
			pthread_cond_wait(&pool->work, &pool->lock);
		if (pool->queued == 0)
			break;
		job = take(pool);
		pool->running++;
		pthread_mutex_unlock(&pool->lock);
		job->run(job, &db);
		pthread_mutex_lock(&pool->lock);
		pool->running--;
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
	if (pool->stopping || pool->queued >= pool->max_queued)
		goto out;
	q = RB_FIND(keyq_tree, &pool->keys, &find);
	if (q == NULL) {
		if ((q = calloc(1, sizeof(*q))) == NULL)
			goto out;
		strlcpy(q->key, job->key, sizeof(q->key));
		TAILQ_INIT(&q->jobs);
		RB_INSERT(keyq_tree, &pool->keys, q);
		TAILQ_INSERT_TAIL(&pool->ring, q, ring);
	} else if (q->n >= pool->max_per_key)
		goto out;
	TAILQ_INSERT_TAIL(&q->jobs, job, entry);
	q->n++;
	pool->queued++;
	pthread_cond_signal(&pool->work);
	rc = 0;
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
