/* seal.h: the sealer: links committed call records into the audit chain's checkpoints. */
/* The sealer (seal_start) owns its thread and connection until seal_stop. */
#ifndef AIRLOCK_SEAL_H
#define AIRLOCK_SEAL_H

#include <stddef.h>

#include <libpq-fe.h>

#define SEAL_INTERVAL_MS 1000 /* how often airlockd seals */
#define SEAL_STALL_MS 5000    /* rounds that have not run for this long raise the alarm */

struct seal;

/*
 * Runs the sealer once on conn (borrowed, idle, READ COMMITTED): airlock.seal_round().
 * is_full looks at every record instead of the recent ones only (and waits up to 5 s for
 * the sealer's lock).  Returns 0 with the new checkpoint's id in *checkpoint and its
 * records in *records (both 0 when there was nothing to seal), or -1 with a message in
 * err, also when another session held the sealer's lock.
 */
int seal_run(PGconn *conn, int is_full, long long *checkpoint, long long *records, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* Starts a thread sealing every SEAL_INTERVAL_MS on its own connection to conninfo
 * (borrowed, must outlive it).  Returns a new sealer, or NULL. */
struct seal *seal_start(const char *conninfo);

/* Seals once more what is committed, then stops the thread and frees s (NULL allowed). */
void seal_stop(struct seal *s);

/* The daemon's sealer: seconds since its last round ran (0 before it started), and whether
 * that is past SEAL_STALL_MS (the alarm).  Safe from any thread. */
void seal_health(double *lag_seconds, int *is_stalled);

#endif
