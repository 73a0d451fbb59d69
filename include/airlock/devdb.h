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

/* The dev-db's internals, shared by ctl/devdb.c and the dev-db command. */
#include <sys/types.h>
#include <limits.h>

#define PG_PORT		"5432"

/* The account that runs initdb, pg_ctl and the server. */
struct pgacct {
	int	must_drop;	/* we are root: switch to the postgres account */
	uid_t	uid;
	gid_t	gid;
	char	name[64];
};

/* Paths inside a dev-db directory. */
struct layout {
	char	dir[PATH_MAX];
	char	data[PATH_MAX];
	char	version[PATH_MAX];	/* data/PG_VERSION: initdb finished */
	char	conf[PATH_MAX];
	char	sock[PATH_MAX];
	char	log[PATH_MAX];
	char	pgpass[PATH_MAX];	/* libpq's password file for the two login roles */
	char	legacy[PATH_MAX];	/* "role password" lines, from before the passfile */
	char	bootstrap[PATH_MAX];	/* the superuser's password until provisioning ends */
};


int join(char *buf, size_t len, const char *dir, const char *name);
int make_layout(struct layout *l, const char *dir);
int pg_account(struct pgacct *a);
int become(const struct pgacct *a);
int can_reach(const struct pgacct *a, const char *path, int mode);
int read_password(const char *path, const char *role, int is_legacy, char *pw, size_t len);
int pgpass_escape(const char *s, char *buf, size_t len);

#endif
