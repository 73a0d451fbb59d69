/* The private development database: a PostgreSQL cluster on a Unix socket, made by airlockctl. */
#ifndef AIRLOCK_DEVDB_H
#define AIRLOCK_DEVDB_H

#include <stddef.h>

/* The login roles a dev-db provides. */
enum devdb_role {
	DEVDB_OPERATOR,	/* airlock_operator: owns the database, runs migrations */
	DEVDB_GATEWAY	/* airlock_gateway: the daemon's NOINHERIT login role */
};

/* Names of the roles and the database, as created at first start. */
#define DEVDB_BOOTSTRAP_ROLE	"airlock_bootstrap"
#define DEVDB_OPERATOR_ROLE	"airlock_operator"
#define DEVDB_GATEWAY_ROLE	"airlock_gateway"
#define DEVDB_DATABASE		"airlock"

/*
 * Resolves the dev-db directory: dir when not NULL, else $AIRLOCK_DEV_DIR, else $PWD/var when
 * the account that runs the server can reach it and the socket path fits, else
 * /tmp/airlock-<first 12 hex digits of sha256(realpath of $PWD)>.  Writes an absolute path
 * into buf; nothing is created.  Returns 0, or -1 with a message on stderr (path too long,
 * no working directory).
 */
int devdb_dir(const char *dir, char *buf, size_t len) __attribute__((warn_unused_result));

/*
 * Writes the libpq URL for role into buf:
 * postgresql://ROLE@/airlock?host=DIR/sock&port=5432&passfile=DIR/pgpass.  It holds no
 * password (URLs end up on command lines, which any local user reads): libpq reads it from
 * the passfile the URL names.  dir as for devdb_dir (NULL for the default).  The server
 * need not be running.  Returns 0, or -1 when there is no provisioned dev-db there (no
 * DIR/pgpass naming the role) or buf is too small; prints nothing.
 */
int devdb_url(const char *dir, enum devdb_role role, char *buf, size_t len)
	__attribute__((warn_unused_result));

#endif
