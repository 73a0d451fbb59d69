/* test_pool.c: gateway/pool.c's fairness and bounds, through its interface, with jobs that
 * touch no database: a key alone uses every worker; once another key waits, a freed worker
 * serves it before the first key's older jobs; a key's queue and the pool's are capped. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "airlock/pool.h"
#include "tap.h"

/* A job that records when it started and runs until the test lets it go. */
struct gated {
	struct pool_job job;
	char name[8];
	int go, done;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static char started[64][8];
static int nstarted;

static void
run(struct pool_job *job, struct db *db)
{
	struct gated *g = (struct gated *)job;

	(void)db;
	pthread_mutex_lock(&lock);
	strlcpy(started[nstarted++], g->name, sizeof(started[0]));
	pthread_cond_broadcast(&changed);
	while (!g->go)
		pthread_cond_wait(&changed, &lock);
	g->done = 1;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

static void
gated_init(struct gated *g, const char *key, const char *name)
{
	memset(g, 0, sizeof(*g));
	g->job.run = run;
	strlcpy(g->job.key, key, sizeof(g->job.key));
	strlcpy(g->name, name, sizeof(g->name));
}

/* Waits (at most 5 s) until n jobs have started; returns whether they did. */
static int
wait_started(int n)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&lock);
	while (nstarted < n && rc == 0)
		rc = pthread_cond_timedwait(&changed, &lock, &until);
	rc = nstarted >= n;
	pthread_mutex_unlock(&lock);
	return rc;
}

static void
let_go(struct gated *g)
{
	pthread_mutex_lock(&lock);
	g->go = 1;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

int
main(void)
{
	struct gated a[6], b1, c[4];
	struct pool *pool;
	size_t workers, busy, waiting;
	int i, rc;

	/* Two workers, a key alone: it runs on both. */
	pool = pool_create(2, "host=/nonexistent dbname=none", 16, 3);
	ok(pool != NULL, "a pool of 2");
	for (i = 0; i < 2; i++) {
		gated_init(&a[i], "A", "A");
		ok(pool_submit(pool, &a[i].job) == 0, "A%d queued", i);
	}
	ok(wait_started(2), "a key alone takes both workers");
	pool_stats(pool, &workers, &busy, &waiting);
	ok(workers == 2 && busy == 2 && waiting == 0, "stats: 2 workers, 2 busy, none waiting");

	/* Three more of A wait (the key's cap), a fourth is refused, then one of B waits. */
	for (i = 2; i < 5; i++) {
		gated_init(&a[i], "A", "A");
		ok(pool_submit(pool, &a[i].job) == 0, "A%d queued", i);
	}
	gated_init(&a[5], "A", "A");
	rc = pool_submit(pool, &a[5].job);
	ok(rc == -1, "over the key's cap of 3 waiting: refused (%d)", rc);
	gated_init(&b1, "B", "B");
	ok(pool_submit(pool, &b1.job) == 0, "B queued behind A's");
	pool_stats(pool, &workers, &busy, &waiting);
	ok(waiting == 4 && pool_pending(pool) == 6, "4 waiting, 6 pending (%zu, %zu)", waiting,
	    pool_pending(pool));

	/* ...and the first worker to be freed serves B before A's older jobs. */
	let_go(&a[0]);
	ok(wait_started(3), "a third job started");
	ok(strcmp(started[2], "B") == 0, "the freed worker took B, not A (%s)", started[2]);

	/* Everything finishes. */
	let_go(&a[1]);
	let_go(&b1);
	for (i = 2; i < 5; i++)
		let_go(&a[i]);
	pool_destroy(pool);
	ok(a[2].done && a[3].done && b1.done, "every queued job ran before the pool stopped");

	/* The pool as a whole is capped too. */
	nstarted = 0;
	pool = pool_create(1, "host=/nonexistent dbname=none", 2, 8);
	for (i = 0; i < 4; i++)
		gated_init(&c[i], i < 2 ? "C" : "D", "C");
	ok(pool_submit(pool, &c[0].job) == 0 && wait_started(1), "one running");
	ok(pool_submit(pool, &c[1].job) == 0 && pool_submit(pool, &c[2].job) == 0, "two waiting");
	ok(pool_submit(pool, &c[3].job) == -1, "the pool full: refused");
	for (i = 0; i < 3; i++)
		let_go(&c[i]);
	pool_destroy(pool);
	return tap_done();
}
