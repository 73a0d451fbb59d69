/* airlockctl migrate: applies migrations/NNNN_name.sql in order, once each, with checksums. */
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sha256.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "airlock/cli.h"
#include "airlock/migrate.h"
#include "airlock/log.h"
#include "airlock/sql.h"

#define MAX_FILE_SIZE (16 * 1024 * 1024)
#define MAX_NAME 128

static const char *const migrate_usage =
    "usage: airlockctl migrate [--db URL] [--dir MIGRATIONS_DIR]\n"
    "\n"
    "Applies the migrations (files NNNN_name.sql) in numeric order, each in its own\n"
    "transaction with its row in airlock.schema_migrations, under an advisory lock so\n"
    "concurrent runs wait for each other.  Says \"up to date\" when nothing is pending.\n"
    "Refuses (exit 65) when an applied file has changed or is missing, or a file is\n"
    "badly named: migrations are forward-only, so add a new file instead.\n"
    "\n"
    "options:\n"
    "  --db URL     the database (default: $AIRLOCK_DB, else the dev-db's operator URL,\n"
    "               else libpq's environment)\n"
    "  --dir DIR    the migrations (default: $AIRLOCK_MIGRATIONS, else ./migrations)\n"
    "  -h, --help   this text\n";

struct mfile {
	int version;
	char name[MAX_NAME + 1];
	char checksum[SHA256_DIGEST_STRING_LENGTH];
	char *sql;
};

struct mset {
	struct mfile *files;
	size_t n;
};

static void
free_set(struct mset *set)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		free(set->files[i].sql);
	free(set->files);
	set->files = NULL;
	set->n = 0;
}

/* Whether name is NNNN_name.sql with a lowercase name; sets *version. */
static int
parse_name(const char *name, int *version)
{
	char digits[5];
	size_t len = strlen(name), i;
	const char *errstr;

	if (len < 10 || len > MAX_NAME || strcmp(name + len - 4, ".sql") != 0)
		return 0;
	for (i = 0; i < 4; i++)
		if (!isdigit((unsigned char)name[i]))
			return 0;
	if (name[4] != '_')
		return 0;
	for (i = 5; i < len - 4; i++)
		if (!islower((unsigned char)name[i]) && !isdigit((unsigned char)name[i]) &&
		    name[i] != '_')
			return 0;
	memcpy(digits, name, 4);
	digits[4] = '\0';
	*version = (int)strtonum(digits, 1, 9999, &errstr);
	return errstr == NULL;
}

/* Reads path into a new NUL-terminated buffer; refuses NUL bytes and huge files. */
static char *
read_sql(const char *path, size_t *lenp, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t off = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 || fstat(fd, &st) == -1) {
		log_seterr(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_FILE_SIZE) {
		log_seterr(err, errlen, "%s: not a regular file of at most %d bytes", path,
		    MAX_FILE_SIZE);
		goto fail;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		log_seterr(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	while (
	    off < (size_t)st.st_size && (n = read(fd, buf + off, (size_t)st.st_size - off)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_seterr(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	buf[off] = '\0';
	if (memchr(buf, '\0', off) != NULL) {
		log_seterr(err, errlen, "%s: contains a NUL byte", path);
		goto fail;
	}
	close(fd);
	*lenp = off;
	return buf;
fail:
	if (fd != -1)
		close(fd);
	free(buf);
	return NULL;
}

static int
by_version(const void *a, const void *b)
{
	const struct mfile *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

/* Loads every migration in dir, sorted; returns MIGRATE_OK or an error status. */
static int
load_dir(const char *dir, struct mset *set, char *err, size_t errlen)
{
	DIR *d;
	struct dirent *de;
	struct mfile *f, *grown;
	char path[PATH_MAX];
	size_t cap = 0, len, i;
	int version, rc = MIGRATE_BAD_FILE;

	if ((d = opendir(dir)) == NULL) {
		log_seterr(err, errlen, "cannot read the migrations directory %s: %s", dir,
		    strerror(errno));
		return MIGRATE_NO_DIR;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 4 || strcmp(de->d_name + len - 4, ".sql") != 0)
			continue;
		if (!parse_name(de->d_name, &version)) {
			log_seterr(err, errlen,
			    "%s/%s: badly named; a migration is NNNN_name.sql "
			    "(four digits from 0001, then lowercase letters, digits and _)",
			    dir, de->d_name);
			goto fail;
		}
		if (set->n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((grown = reallocarray(set->files, cap, sizeof(*grown))) == NULL) {
				log_seterr(err, errlen, "out of memory");
				goto fail;
			}
			set->files = grown;
		}
		f = &set->files[set->n];
		memset(f, 0, sizeof(*f));
		f->version = version;
		if (strlcpy(f->name, de->d_name, sizeof(f->name)) >= sizeof(f->name) ||
		    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path)) {
			log_seterr(err, errlen, "%s/%s: path too long", dir, de->d_name);
			goto fail;
		}
		if ((f->sql = read_sql(path, &len, err, errlen)) == NULL)
			goto fail;
		set->n++;
		SHA256Data((const unsigned char *)f->sql, len, f->checksum);
	}
	if (set->n > 0)
		qsort(set->files, set->n, sizeof(*set->files), by_version);
	for (i = 1; i < set->n; i++)
		if (set->files[i].version == set->files[i - 1].version) {
			log_seterr(err, errlen, "%s/%s and %s/%s have the same number", dir,
			    set->files[i - 1].name, dir, set->files[i].name);
			goto fail;
		}
	closedir(d);
	return MIGRATE_OK;
fail:
	closedir(d);
	free_set(set);
	return rc;
}

static int
db_status(PGconn *conn)
{
	return sql_is_connected(conn) ? MIGRATE_FAILED : MIGRATE_DB;
}

/* Runs a statement without parameters, its result dropped; MIGRATE_OK or MIGRATE_DB.  (The
 * statements here run quietly, sql_query's label NULL: the caller says what failed.) */
static int
exec_cmd(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	if (sql_exec(conn, NULL, sql, 0, NULL) == EX_OK)
		return MIGRATE_OK;
	log_seterr(err, errlen, "%s", sql_conn_error(conn));
	return MIGRATE_DB;
}

static const struct mfile *
find_version(const struct mset *set, int version)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		if (set->files[i].version == version)
			return &set->files[i];
	return NULL;
}

/*
 * Checks the applied migrations against the files; marks the applied ones in done[].
 * Returns MIGRATE_OK or an error status.
 */
static int
check_applied(PGconn *conn, const char *dir, const struct mset *set, char *done, int *last,
    char *err, size_t errlen)
{
	PGresult *res;
	const struct mfile *f;
	const char *name, *sum, *errstr;
	int i, version, rc = MIGRATE_OK;

	*last = 0;
	if (sql_query(conn, NULL,
		"SELECT version, name, checksum FROM "
		"airlock.schema_migrations ORDER BY version",
		0, NULL, &res) != EX_OK) {
		log_seterr(err, errlen, "reading airlock.schema_migrations: %s",
		    sql_conn_error(conn));
		rc = MIGRATE_DB;
		goto fail;
	}
	for (i = 0; i < sql_rows(res); i++) {
		version = (int)strtonum(db_text(res, i, "version"), 1, 9999, &errstr);
		name = db_text(res, i, "name");
		sum = db_text(res, i, "checksum");
		if (errstr != NULL) {
			log_seterr(err, errlen,
			    "airlock.schema_migrations holds version %s, "
			    "outside 1..9999",
			    db_text(res, i, "version"));
			rc = MIGRATE_CHANGED;
			goto fail;
		}
		if ((f = find_version(set, version)) == NULL) {
			log_seterr(err, errlen,
			    "%s/%s was applied but is missing; migrations are "
			    "forward-only: restore it",
			    dir, name);
			rc = MIGRATE_CHANGED;
			goto fail;
		}
		if (strcmp(f->name, name) != 0) {
			log_seterr(err, errlen, "%s/%s was applied as %s; restore its name", dir,
			    f->name, name);
			rc = MIGRATE_CHANGED;
			goto fail;
		}
		if (strcmp(f->checksum, sum) != 0) {
			log_seterr(err, errlen,
			    "%s/%s has changed since it was applied (sha256 %.12s, "
			    "applied %.12s); migrations are forward-only: restore it and add a new "
			    "migration instead",
			    dir, f->name, f->checksum, sum);
			rc = MIGRATE_CHANGED;
			goto fail;
		}
		done[f - set->files] = 1;
		if (version > *last)
			*last = version;
	}
fail:
	sql_clear(res);
	return rc;
}

/* Applies one migration with its bookkeeping row in one transaction. */
static int
apply_one(PGconn *conn, const char *dir, const struct mfile *f, char *err, size_t errlen)
{
	PGresult *res = NULL;
	char version[16];
	const char *params[3];
	int rc;

	if ((rc = exec_cmd(conn, "BEGIN", err, errlen)) != MIGRATE_OK)
		return rc;
	if (sql_query(conn, NULL, f->sql, 0, NULL, &res) != EX_OK) {
		log_seterr(err, errlen, "%s/%s failed, nothing of it was applied: %s", dir, f->name,
		    sql_conn_error(conn));
		rc = db_status(conn);
		goto fail;
	}
	sql_clear(res);
	res = NULL;
	if (!sql_in_transaction(conn)) {
		log_seterr(err, errlen,
		    "%s/%s ends the transaction it runs in (COMMIT or ROLLBACK); "
		    "remove its transaction control",
		    dir, f->name);
		rc = MIGRATE_FAILED;
		goto fail;
	}
	snprintf(version, sizeof(version), "%d", f->version);
	params[0] = version;
	params[1] = f->name;
	params[2] = f->checksum;
	if (sql_query(conn, NULL,
		"INSERT INTO airlock.schema_migrations (version, name, "
		"checksum) VALUES ($1, $2, $3)",
		3, params, &res) != EX_OK) {
		log_seterr(err, errlen, "recording %s: %s", f->name, sql_conn_error(conn));
		rc = MIGRATE_DB;
		goto fail;
	}
	sql_clear(res);
	res = NULL;
	if (sql_query(conn, NULL, "COMMIT", 0, NULL, &res) != EX_OK) {
		log_seterr(err, errlen, "%s/%s could not commit: %s", dir, f->name,
		    sql_conn_error(conn));
		rc = db_status(conn);
		goto fail;
	}
	sql_clear(res);
	return MIGRATE_OK;
fail:
	sql_clear(res);
	if (sql_is_connected(conn) && sql_in_transaction(conn))
		sql_exec_quiet(conn, "ROLLBACK");
	return rc;
}

int
migrate_apply(PGconn *conn, const char *dir, FILE *out, char *err, size_t errlen)
{
	struct mset set = { NULL, 0 };
	PGresult *res = NULL;
	char *done = NULL;
	int rc, last, locked = 0, applied = 0;
	size_t i;

	if ((rc = load_dir(dir, &set, err, errlen)) != MIGRATE_OK)
		return rc;
	if (set.n == 0) {
		log_seterr(err, errlen, "no migrations (NNNN_name.sql) in %s", dir);
		rc = MIGRATE_NO_DIR;
		goto fail;
	}
	if ((done = calloc(set.n, 1)) == NULL) {
		log_seterr(err, errlen, "out of memory");
		rc = MIGRATE_DB;
		goto fail;
	}

	/* One migrate at a time; a second waits, then finds the work done. */
	if (sql_query(conn, NULL,
		"SELECT pg_try_advisory_lock(hashtextextended("
		"'airlock.migrate', 0)) AS locked",
		0, NULL, &res) != EX_OK) {
		log_seterr(err, errlen, "taking the migration lock: %s", sql_conn_error(conn));
		rc = MIGRATE_DB;
		goto fail;
	}
	locked = strcmp(db_text(res, 0, "locked"), "t") == 0;
	sql_clear(res);
	res = NULL;
	if (!locked) {
		fprintf(out, "waiting for another migrate to finish\n");
		fflush(out);
		if ((rc = exec_cmd(conn,
			 "SELECT pg_advisory_lock(hashtextextended("
			 "'airlock.migrate', 0))",
			 err, errlen)) != MIGRATE_OK)
			goto fail;
		locked = 1;
	}
	if ((rc = exec_cmd(conn, "CREATE SCHEMA IF NOT EXISTS airlock", err, errlen)) !=
		MIGRATE_OK ||
	    (rc = exec_cmd(conn,
		 "CREATE TABLE IF NOT EXISTS airlock.schema_migrations ("
		 "version integer PRIMARY KEY CHECK (version BETWEEN 1 AND 9999), "
		 "name text NOT NULL, "
		 "checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'), "
		 "applied_at timestamptz NOT NULL DEFAULT now())",
		 err, errlen)) != MIGRATE_OK)
		goto fail;

	if ((rc = check_applied(conn, dir, &set, done, &last, err, errlen)) != MIGRATE_OK)
		goto fail;
	for (i = 0; i < set.n; i++)
		if (!done[i] && set.files[i].version < last) {
			log_seterr(err, errlen,
			    "%s/%s is numbered below the last applied migration "
			    "(%04d); renumber it after that one",
			    dir, set.files[i].name, last);
			rc = MIGRATE_BAD_FILE;
			goto fail;
		}
	for (i = 0; i < set.n; i++) {
		if (done[i])
			continue;
		if ((rc = apply_one(conn, dir, &set.files[i], err, errlen)) != MIGRATE_OK)
			goto fail;
		fprintf(out, "applied %s\n", set.files[i].name);
		fflush(out);
		applied++;
	}
	if (applied == 0)
		fprintf(out, "up to date (%zu migrations applied)\n", set.n);
	rc = MIGRATE_OK;
fail:
	sql_clear(res);
	if (locked && sql_is_connected(conn))
		sql_exec_quiet(conn,
		    "SELECT pg_advisory_unlock(hashtextextended('airlock.migrate', "
		    "0))");
	free(done);
	free_set(&set);
	return rc;
}

int
cmd_migrate(int argc, char **argv)
{
	static const struct option longopts[] = { { "db", required_argument, NULL, 'D' },
		{ "dir", required_argument, NULL, 'd' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 } };
	const char *db = NULL, *dir = NULL, *env;
	char err[4096];
	PGconn *conn;
	int c, rc;

	while ((c = cli_getopt(argc, argv, "h", longopts)) != -1) {
		switch (c) {
		case 'D':
			db = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'h':
			fputs(migrate_usage, stdout);
			return EX_OK;
		default:
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		cli_warnx(argv[0], "unexpected argument '%s' (see %s %s --help)", argv[optind],
		    CLI_PROG, argv[0]);
		return EX_USAGE;
	}
	if (dir == NULL)
		dir = (env = getenv("AIRLOCK_MIGRATIONS")) != NULL && *env != '\0' ? env
										   : "migrations";
	if ((conn = cli_connect(argv[0], db)) == NULL)
		return EX_UNAVAILABLE;
	rc = migrate_apply(conn, dir, stdout, err, sizeof(err));
	sql_close(conn);
	if (rc == MIGRATE_OK)
		return EX_OK;
	cli_warnx(argv[0], "%s", err);
	switch (rc) {
	case MIGRATE_NO_DIR:
		return EX_NOINPUT;
	case MIGRATE_DB:
		return EX_UNAVAILABLE;
	default:
		return EX_DATAERR;
	}
}
