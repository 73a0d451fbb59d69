/* pool.h: bounded database workers, each with its own connection, fair across tokens. */
/*
 * A pool (pool_create) owns its workers, their connections and the queued jobs until
 * pool_destroy.
 */
#ifndef AIRLOCK_POOL_H
#define AIRLOCK_POOL_H

#include <stddef.h>
#include <sys/queue.h>

#include "airlock/db.h"

/*
 * A unit of work.  The submitter owns the job; run() is called once on a worker
 * thread with that worker's database (which may fail db_ensure) and must finish
 * the job: after run() returns the pool no longer touches it.
 */
struct pool_job {
	void (*run)(struct pool_job *job, struct db *db);
	char key[64]; /* fairness key: jobs of one key take turns with other keys */
	TAILQ_ENTRY(pool_job) entry;
	void *q; /* the pool's: the key's queue while the job runs */
};

struct pool;

/* Returns a new pool of n workers on conninfo (borrowed, must outlive the pool), or NULL.
 * While jobs of other keys wait, jobs of one key take at most half of the free workers'
 * turns (at least one worker); alone, a key may use them all. */
struct pool *pool_create(unsigned n, const char *conninfo, size_t max_queued, size_t max_per_key);

/* Queues job.  Returns 0; -1 when the pool is full, that key has too many waiting,
 * or the pool is stopping; -2 out of memory (the job is untouched, the caller answers). */
int pool_submit(struct pool *pool, struct pool_job *job) __attribute__((warn_unused_result));

/* Jobs waiting plus running. */
size_t pool_pending(struct pool *pool);

/* The pool's workers, those running a job now, and the jobs waiting for one. */
void pool_stats(struct pool *pool, size_t *workers, size_t *busy, size_t *waiting);

/* Stops taking jobs, lets the workers finish every queued one, joins them, frees the pool. */
void pool_destroy(struct pool *pool);

#endif
