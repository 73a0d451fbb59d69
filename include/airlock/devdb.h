/* devdb.h: where the private development database lives and how to reach it (ctl/devdb.c). */
/*
 * A dev-db is a PostgreSQL cluster on a Unix socket, made by airlockctl dev-db
 * (ctl/cmd_devdb.c).  These functions print nothing and allocate nothing: the caller owns
 * every buffer and says what a fault means to its user.
 */
#ifndef AIRLOCK_DEVDB_H
#define AIRLOCK_DEVDB_H

#include <sys/types.h>

#include <limits.h>
#include <stddef.h>

/* The login roles a dev-db provides. */
enum devdb_role {
	DEVDB_OPERATOR, /* airlock_operator: owns the database, runs migrations */
	DEVDB_GATEWAY	/* airlock_gateway: the daemon's NOINHERIT login role */
};

/* Names of the roles and the database, as created at first start. */
#define DEVDB_BOOTSTRAP_ROLE "airlock_bootstrap"
#define DEVDB_OPERATOR_ROLE "airlock_operator"
#define DEVDB_GATEWAY_ROLE "airlock_gateway"
#define DEVDB_DATABASE "airlock"

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

#define DEVDB_PORT "5432"

/* Paths inside a dev-db directory. */
struct devdb_layout {
	char dir[PATH_MAX];
	char data[PATH_MAX];
	char version[PATH_MAX]; /* data/PG_VERSION: initdb finished */
	char conf[PATH_MAX];
	char sock[PATH_MAX];
	char log[PATH_MAX];
	char pgpass[PATH_MAX];	  /* libpq's password file for the two login roles */
	char legacy[PATH_MAX];	  /* "role password" lines, from before the passfile */
	char bootstrap[PATH_MAX]; /* the superuser's password until provisioning ends */
};

/* The account that runs initdb, pg_ctl and the server. */
struct devdb_account {
	int must_drop; /* we are root: switch to the postgres account */
	uid_t uid;
	gid_t gid;
	char name[64];
};

/*
 * Resolves the dev-db directory: dir when not NULL, else $AIRLOCK_DEV_DIR, else $PWD/var when
 * the account that runs the server can reach it and the socket path fits, else
 * /tmp/airlock-<first 12 hex digits of sha256(realpath of $PWD)>.  Writes an absolute path
 * into buf; nothing is created.  Returns 0, or -1 with the fault in err (path too long, no
 * working directory).
 */
int devdb_dir(const char *dir, char *buf, size_t len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Fills l with the paths inside dir.  Returns 0, or -1 with the fault in err. */
int devdb_layout(struct devdb_layout *l, const char *dir, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* buf = dir/name.  Returns 0, or -1 when it does not fit. */
int devdb_join(char *buf, size_t len, const char *dir, const char *name);

/*
 * Fills a with the account that runs the server: ours, or the postgres account when we are
 * root (PostgreSQL refuses root).  Returns 0, or -1 with the fault in err.
 */
int devdb_account(struct devdb_account *a, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* In a child process: becomes the account a.  Returns 0, or -1 when any step fails. */
int devdb_become(const struct devdb_account *a);

/* Whether the account a can traverse every component of path (and write there if mode
 * asks).  Forks when it must switch accounts. */
int devdb_can_reach(const struct devdb_account *a, const char *path, int mode);

/*
 * Reads role's password into pw, from a libpq password file (host:port:database:user:password,
 * the last two fields without a colon) or, when is_legacy, from the older "role password"
 * lines.  Returns 0 or -1.
 */
int devdb_read_password(const char *path, const char *role, int is_legacy, char *pw, size_t len);

/* Copies s into buf with the passfile's escapes (backslash before ':' and '\\').  Returns 0,
 * or -1 when it does not fit. */
int devdb_pgpass_escape(const char *s, char *buf, size_t len);

#endif
