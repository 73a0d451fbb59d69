/* Schema migrations: numbered SQL files applied in order, once each, with their checksums. */
/* Owns nothing: conn is borrowed and left as it was found. */
#ifndef AIRLOCK_MIGRATE_H
#define AIRLOCK_MIGRATE_H

#include <stddef.h>
#include <stdio.h>

#include <libpq-fe.h>

/* Outcomes of migrate_apply. */
enum migrate_status {
	MIGRATE_OK = 0,
	MIGRATE_NO_DIR,	  /* the migrations directory cannot be read */
	MIGRATE_BAD_FILE, /* a badly named, duplicate, unreadable or out-of-order file */
	MIGRATE_CHANGED,  /* an applied file has changed, been renamed or is missing */
	MIGRATE_FAILED,	  /* a migration's SQL failed; its transaction was rolled back */
	MIGRATE_DB	  /* the database failed: connection lost, bookkeeping refused */
};

/*
 * Applies the migrations in dir (files NNNN_name.sql, NNNN > 0; other names ending in .sql
 * are refused, files not ending in .sql and dot files are ignored) to the database on conn,
 * in numeric order.  Under a session advisory lock it makes sure the airlock schema and
 * airlock.schema_migrations exist, checks every applied file against its recorded SHA-256
 * before doing anything, then runs each pending file in its own transaction together with
 * its schema_migrations row, writing one line per applied file to out ("applied
 * 0001_core.sql"), or "up to date" when there was nothing to do.  Files must not contain
 * transaction control.  Returns MIGRATE_OK, or another enum migrate_status with a message
 * naming the file in err.  conn is borrowed; the lock is released before returning.
 */
int migrate_apply(PGconn *conn, const char *dir, FILE *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
