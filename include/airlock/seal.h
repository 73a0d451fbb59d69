/* seal.h: the sealer: links committed call records into the audit chain's checkpoints. */
#ifndef AIRLOCK_SEAL_H
#define AIRLOCK_SEAL_H

#include <stddef.h>

#include <libpq-fe.h>

#define SEAL_INTERVAL_MS 1000	/* how often airlockd seals */

struct seal;

/*
 * Runs the sealer once on conn (borrowed, idle, READ COMMITTED): SELECT airlock.seal().
 * is_full looks at every record instead of the recent ones only.  Returns 0 with the new
 * checkpoint's id in *checkpoint and its records in *records (both 0 when there was
 * nothing to seal or another sealer held the lock), or -1 with a message in err.
 */
int seal_run(PGconn *conn, int is_full, long long *checkpoint, long long *records,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/* Starts a thread sealing every SEAL_INTERVAL_MS on its own connection to conninfo
 * (borrowed, must outlive it).  Returns a new sealer, or NULL. */
struct seal *seal_start(const char *conninfo);

/* Seals once more what is committed, then stops the thread and frees s (NULL allowed). */
void seal_stop(struct seal *s);

#endif
