/* db.h: one PostgreSQL connection per database worker, reconnected when it breaks. */
#ifndef AIRLOCK_DB_H
#define AIRLOCK_DB_H

#include <libpq-fe.h>

struct db {
	PGconn *conn;		/* NULL or a connection in CONNECTION_OK */
	const char *conninfo;	/* borrowed */
	unsigned generation;	/* bumped on every new connection: prepared statements are per connection */
};

/* Sets up db for conninfo (borrowed); does not connect yet. */
void db_init(struct db *db, const char *conninfo);

/* Returns 0 with db->conn usable, reconnecting when the old one broke; -1 when the
 * database cannot be reached (the reason is logged). */
int db_ensure(struct db *db) __attribute__((warn_unused_result));

/* Whether res failed because the connection is gone (so the caller answers 503). */
int db_is_connection_lost(const struct db *db);

void db_close(struct db *db);

#endif
