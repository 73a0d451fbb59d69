/* test_ratelimit.c: gateway/ratelimit.c's token buckets, through their interface: burst,
 * refill, one bucket per key, retry-after, takes of several units at once. */
#include <time.h>

#include "airlock/ratelimit.h"
#include "tap.h"

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int
main(void)
{
	struct rl *rl = rl_create();
	int retry = -1, i, passed;

	ok(rl != NULL, "a limiter");

	/* A full bucket of 3: three pass, the fourth waits a whole second at 1/s. */
	for (passed = 0, i = 0; i < 3; i++)
		passed += rl_take(rl, "a", 1, 3, &retry) == 0;
	ok(passed == 3 && retry == 0, "a burst of 3 passes");
	ok(rl_take(rl, "a", 1, 3, &retry) == -1, "the fourth is refused");
	ok(retry == 1, "retry after 1 s at 1/s (%d)", retry);
	ok(rl_take(rl, "a", 0.1, 3, &retry) == -1 && retry == 10, "retry after 10 s at 0.1/s (%d)",
	    retry);

	/* Another key has its own bucket. */
	ok(rl_take(rl, "b", 1, 3, &retry) == 0, "another key is not held back");

	/* Refill: at 50/s, one unit is back within 20 ms. */
	ok(rl_take(rl, "r", 50, 1, &retry) == 0, "refill: the first passes");
	ok(rl_take(rl, "r", 50, 1, &retry) == -1 && retry == 1, "refill: the second waits");
	sleep_ms(60);
	ok(rl_take(rl, "r", 50, 1, &retry) == 0, "refill: passes once refilled");

	/* No limit configured: everything passes. */
	for (passed = 0, i = 0; i < 100; i++)
		passed += rl_take(rl, "free", 0, 0, &retry) == 0;
	ok(passed == 100 && retry == 0, "rate 0: no limit");

	/* Several units at once, or none. */
	ok(rl_take_n(rl, "n", 1, 4, 3, &retry) == 0, "3 of 4 at once");
	ok(rl_take_n(rl, "n", 1, 4, 2, &retry) == -1, "2 more of the 1 left: refused");
	ok(retry == 1, "retry after the one missing unit (%d)", retry);
	ok(rl_take(rl, "n", 1, 4, &retry) == 0, "the refused take took nothing: 1 left");
	ok(rl_take_n(rl, "big", 1, 4, 10, &retry) == 0, "more than a full bucket: takes it all");
	ok(rl_take(rl, "big", 1, 4, &retry) == -1, "then the bucket is empty");

	rl_free(rl);
	return tap_done();
}
