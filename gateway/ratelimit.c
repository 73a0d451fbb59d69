/*
 * ratelimit.c: token buckets.  A full bucket is the same as no bucket, so buckets
 * are dropped once they have refilled: memory follows the keys active now, not
 * every key ever seen.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "airlock/metrics.h"
#include "airlock/ratelimit.h"

#ifndef __unused
#define __unused __attribute__((__unused__))
#endif
#include <sys/tree.h>

#define SWEEP_EVERY 4096 /* takes between sweeps for refilled buckets */

struct bucket {
	char key[128];
	double tokens;
	double rate, burst;
	double stamp; /* seconds, monotonic, of the last refill */
	RB_ENTRY(bucket) node;
};

static int
bucket_cmp(struct bucket *a, struct bucket *b)
{
	return strcmp(a->key, b->key);
}

RB_HEAD(bucket_tree, bucket);
RB_GENERATE_STATIC(bucket_tree, bucket, node, bucket_cmp)

struct rl {
	pthread_mutex_t lock;
	struct bucket_tree buckets;
	unsigned long takes;
};

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
refill(struct bucket *b, double now)
{
	b->tokens = fmin(b->burst, b->tokens + (now - b->stamp) * b->rate);
	b->stamp = now;
}

static void
sweep(struct rl *rl, double now)
{
	struct bucket *b, *next;

	for (b = RB_MIN(bucket_tree, &rl->buckets); b != NULL; b = next) {
		next = RB_NEXT(bucket_tree, &rl->buckets, b);
		refill(b, now);
		if (b->tokens >= b->burst) {
			RB_REMOVE(bucket_tree, &rl->buckets, b);
			free(b);
		}
	}
}

struct rl *
rl_create(void)
{
	struct rl *rl = calloc(1, sizeof(*rl));

	if (rl == NULL)
		return NULL;
	pthread_mutex_init(&rl->lock, NULL);
	RB_INIT(&rl->buckets);
	return rl;
}

int
rl_take(struct rl *rl, const char *key, double rate, double burst, int *retry_after)
{
	return rl_take_n(rl, key, rate, burst, 1, retry_after);
}

int
rl_take_n(struct rl *rl, const char *key, double rate, double burst, unsigned n, int *retry_after)
{
	struct bucket find = { 0 }, *b;
	double now = now_seconds(), cost;
	int rc = 0;

	*retry_after = 0;
	if (rate <= 0 || burst < 1)
		return 0; /* no limit configured */
	/* More than a full bucket could never be taken: that much takes a full bucket. */
	cost = fmin((double)(n > 0 ? n : 1), floor(burst));
	strlcpy(find.key, key, sizeof(find.key));
	pthread_mutex_lock(&rl->lock);
	if (++rl->takes % SWEEP_EVERY == 0)
		sweep(rl, now);
	b = RB_FIND(bucket_tree, &rl->buckets, &find);
	if (b == NULL) {
		if ((b = calloc(1, sizeof(*b))) == NULL)
			goto out; /* no memory for a bucket: let the call through */
		strlcpy(b->key, key, sizeof(b->key));
		b->tokens = burst;
		b->stamp = now;
		RB_INSERT(bucket_tree, &rl->buckets, b);
	}
	b->rate = rate;
	b->burst = burst;
	refill(b, now);
	if (b->tokens >= cost) {
		b->tokens -= cost;
	} else {
		metrics_rate_limited(key, n > 0 ? n : 1);
		*retry_after = (int)ceil((cost - b->tokens) / rate);
		if (*retry_after < 1)
			*retry_after = 1;
		rc = -1;
	}
out:
	pthread_mutex_unlock(&rl->lock);
	return rc;
}

void
rl_free(struct rl *rl)
{
	struct bucket *b, *next;

	if (rl == NULL)
		return;
	for (b = RB_MIN(bucket_tree, &rl->buckets); b != NULL; b = next) {
		next = RB_NEXT(bucket_tree, &rl->buckets, b);
		RB_REMOVE(bucket_tree, &rl->buckets, b);
		free(b);
	}
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}
