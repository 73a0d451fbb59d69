/* tap.h: the few TAP helpers the unit tests share. */
#ifndef AIRLOCK_TAP_H
#define AIRLOCK_TAP_H

#include <stdio.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                        \
	do {                                                                 \
		int ok_c_ = (cond);                                          \
		printf("%sok %d - ", ok_c_ ? "" : "not ", ++tap_n);          \
		printf(__VA_ARGS__);                                         \
		printf("\n");                                                \
		if (!ok_c_) {                                                \
			tap_failed++;                                        \
			printf("#   failed at %s:%d\n", __FILE__, __LINE__); \
		}                                                            \
	} while (0)

#define tap_done() (printf("1..%d\n", tap_n), tap_failed != 0)

#endif
