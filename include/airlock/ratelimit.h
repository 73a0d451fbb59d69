/* ratelimit.h: token buckets by key (client address, token, tenant), in memory per instance. */
/* A limiter owns its buckets until rl_free. */
#ifndef AIRLOCK_RATELIMIT_H
#define AIRLOCK_RATELIMIT_H

struct rl;

/* Returns a new, empty set of buckets, or NULL. */
struct rl *rl_create(void);

/*
 * Takes one unit from key's bucket, which refills at rate per second up to burst.
 * Returns 0, or -1 with *retry_after set to the whole seconds until one is there.
 */
int rl_take(struct rl *rl, const char *key, double rate, double burst, int *retry_after)
    __attribute__((warn_unused_result));

/*
 * Takes n units at once, or none: as rl_take, with *retry_after the seconds until n are
 * there.  n above the burst costs the burst (a full bucket), so a large batch can pass.
 */
int rl_take_n(struct rl *rl, const char *key, double rate, double burst, unsigned n,
    int *retry_after) __attribute__((warn_unused_result));

void rl_free(struct rl *rl);

#endif
