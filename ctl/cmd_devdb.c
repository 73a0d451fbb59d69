/* airlockctl dev-db: a private PostgreSQL cluster on a Unix socket for development and tests. */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sha256.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "airlock/cli.h"
#include "airlock/devdb.h"
#include "airlock/hex.h"

#define PASSWORD_BYTES 24
#define PASSWORD_LEN (PASSWORD_BYTES * 2)

static const char *const devdb_usage =
    "usage: airlockctl dev-db start|stop|status|url [--dir DIR] [--role operator|gateway]\n"
    "\n"
    "A private PostgreSQL cluster for development and tests, reachable on a Unix socket only.\n"
    "\n"
    "  start   create the cluster on first use (roles, database, passwords), then start it;\n"
    "          an already running cluster is reused\n"
    "  stop    stop it (fast shutdown); fine when it is not running\n"
    "  status  one line; exit 0 when running, 69 otherwise\n"
    "  url     print a libpq URL for the operator role (or --role gateway); it holds no\n"
    "          password but names DIR/pgpass, libpq's password file, which libpq reads\n"
    "\n"
    "options:\n"
    "  --dir DIR     where the cluster lives (default: $AIRLOCK_DEV_DIR, else ./var when the\n"
    "                postgres account can reach it, else /tmp/airlock-<hash of the checkout>)\n"
    "  --role ROLE   operator (default) or gateway, for url\n"
    "  -h, --help    this text\n"
    "\n"
    "DIR holds data/ (PGDATA), sock/ (the socket directory, 0700: only the server's\n"
    "account, and root, may connect), pgpass (0600, libpq's password file) and\n"
    "postgres.log.  Run as root, the server runs as the postgres account.\n";

static int
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* devdb_account, its fault on stderr.  Returns 0 or -1. */
static int
account(struct devdb_account *a)
{
	char err[256];

	if (devdb_account(a, err, sizeof(err)) == -1) {
		cli_warnx("dev-db", "%s", err);
		return -1;
	}
	return 0;
}

/*
 * Runs argv (argv[0] an absolute path) as the account, in cwd, with a minimal environment
 * and no inherited descriptors beyond stdio; stdout goes to /dev/null when quiet.
 * Returns the exit status, or -1 when it could not run or died of a signal.
 */
static int
run(const struct devdb_account *a, const char *cwd, const char *const argv[], int quiet)
{
	static char env_path[] = "PATH=/usr/bin:/bin";
	static char env_lc[] = "LC_ALL=C";
	char *envp[] = { env_path, env_lc, NULL };
	pid_t pid;
	int fd, status;

	fflush(NULL);
	if ((pid = fork()) == -1) {
		cli_warnx("dev-db", "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		if (quiet && (fd = open("/dev/null", O_WRONLY)) != -1) {
			dup2(fd, STDOUT_FILENO);
			close(fd);
		}
		closefrom(STDERR_FILENO + 1);
		if (devdb_become(a) == -1) {
			fprintf(stderr, "%s dev-db: cannot switch to the %s account\n", CLI_PROG,
			    a->name);
			_exit(127);
		}
		if (chdir(cwd) == -1) {
			fprintf(stderr, "%s dev-db: chdir %s: %s\n", CLI_PROG, cwd,
			    strerror(errno));
			_exit(127);
		}
		/* execve takes char *const[] for historical reasons; it does not write. */
		execve(argv[0], (char *const *)(uintptr_t)argv, envp);
		fprintf(stderr, "%s dev-db: %s: %s\n", CLI_PROG, argv[0], strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Finds the newest PostgreSQL's bin directory ($AIRLOCK_PG_BINDIR overrides). */
static int
find_bindir(char *buf, size_t len)
{
	const char *env;
	glob_t g;
	long long best = -1, v;
	size_t i, best_i = 0;
	char ver[32], *slash;
	const char *p;

	if ((env = getenv("AIRLOCK_PG_BINDIR")) != NULL && *env != '\0')
		return strlcpy(buf, env, len) < len ? 0 : -1;
	if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0) {
		cli_warnx("dev-db",
		    "no PostgreSQL server found in /usr/lib/postgresql "
		    "(install the postgresql package, or set AIRLOCK_PG_BINDIR)");
		return -1;
	}
	for (i = 0; i < g.gl_pathc; i++) {
		p = g.gl_pathv[i] + strlen("/usr/lib/postgresql/");
		if (strlcpy(ver, p, sizeof(ver)) >= sizeof(ver))
			continue;
		if ((slash = strchr(ver, '/')) != NULL)
			*slash = '\0';
		v = strtonum(ver, 1, 1000, NULL);
		if (v > best) {
			best = v;
			best_i = i;
		}
	}
	if (best == -1 || strlcpy(buf, g.gl_pathv[best_i], len) >= len) {
		globfree(&g);
		cli_warnx("dev-db", "no usable PostgreSQL server found in /usr/lib/postgresql");
		return -1;
	}
	globfree(&g);
	*strrchr(buf, '/') = '\0';
	return 0;
}

/* Reads the first line of path, without its newline, into buf. Returns 0 or -1. */
static int
read_line(const char *path, char *buf, size_t len)
{
	FILE *f;
	char *nl;
	int rc = -1;

	if ((f = fopen(path, "re")) == NULL)
		return -1;
	if (fgets(buf, (int)len, f) != NULL && (nl = strchr(buf, '\n')) != NULL) {
		*nl = '\0';
		rc = 0;
	}
	fclose(f);
	return rc;
}

static void
new_password(char *buf, size_t len)
{
	unsigned char raw[PASSWORD_BYTES];

	arc4random_buf(raw, sizeof(raw));
	if (len == 0)
		return;
	hex_encode(raw, sizeof(raw) < (len - 1) / 2 ? sizeof(raw) : (len - 1) / 2, buf);
	explicit_bzero(raw, sizeof(raw));
}

/*
 * Writes text to path through a temporary file and a rename, mode 0600, owned by uid/gid
 * (-1 keeps ours).  Returns 0 or -1 with a message.
 */
static int
write_secret(const char *path, const char *text, uid_t uid, gid_t gid)
{
	char tmp[PATH_MAX];
	size_t n = strlen(text);
	int fd = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp))
		goto fail;
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) == -1)
		goto fail;
	if (write(fd, text, n) != (ssize_t)n || fsync(fd) == -1)
		goto fail;
	if (uid != (uid_t)-1 && fchown(fd, uid, gid) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto fail;
	return 0;
fail:
	cli_warnx("dev-db", "cannot write %s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	(void)unlink(tmp);
	return -1;
}

/* Makes dir and its missing parents, mode 0755. */
static int
mkdir_p(const char *dir)
{
	char buf[PATH_MAX], *p;

	if (strlcpy(buf, dir, sizeof(buf)) >= sizeof(buf))
		return -1;
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0755) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

/* Makes a directory owned by the server account with mode, when missing. */
static int
server_dir(const struct devdb_account *a, const char *path, mode_t mode)
{
	struct stat st;

	if (mkdir(path, mode) == -1 && errno != EEXIST)
		goto fail;
	if (lstat(path, &st) == -1)
		goto fail;
	if (!S_ISDIR(st.st_mode)) {
		cli_warnx("dev-db", "%s is not a directory", path);
		return -1;
	}
	if (a->must_drop && st.st_uid != a->uid && chown(path, a->uid, a->gid) == -1)
		goto fail;
	/* A directory made by an older version, or under another umask, is brought to mode. */
	if ((st.st_mode & 07777) != mode && chmod(path, mode) == -1)
		goto fail;
	return 0;
fail:
	cli_warnx("dev-db", "%s: %s", path, strerror(errno));
	return -1;
}

/*
 * Creates DIR and what the server needs in it: DIR itself (ours, traversable by the server
 * account), data/ and sock/ (the server's, 0700), postgres.log (the server's, 0600).  The
 * socket directory is closed to every other account: a password that leaked would not let
 * another local user connect.  The account that made the dev-db connects either as the
 * server's own account or as root, which the mode does not stop.
 */
static int
prepare_dir(const struct devdb_account *a, const struct devdb_layout *l)
{
	struct stat st;
	int fd;

	if (mkdir_p(l->dir) == -1) {
		cli_warnx("dev-db", "cannot create %s: %s", l->dir, strerror(errno));
		return -1;
	}
	if (lstat(l->dir, &st) == -1 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
		cli_warnx("dev-db", "%s must be a directory owned by you (not a symlink)", l->dir);
		return -1;
	}
	/* A directory from mktemp is 0700: the server account must get through it. */
	if (a->must_drop && (st.st_mode & 0005) != 0005 && chmod(l->dir, 0755) == -1) {
		cli_warnx("dev-db", "chmod %s: %s", l->dir, strerror(errno));
		return -1;
	}
	if (!devdb_can_reach(a, l->dir, X_OK)) {
		cli_warnx("dev-db",
		    "the %s account cannot reach %s (a parent directory is "
		    "closed to it); choose another --dir",
		    a->name, l->dir);
		return -1;
	}
	if (server_dir(a, l->data, 0700) == -1 || server_dir(a, l->sock, 0700) == -1)
		return -1;
	fd = open(l->log, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1 || (a->must_drop && fchown(fd, a->uid, a->gid) == -1)) {
		cli_warnx("dev-db", "%s: %s", l->log, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Prints the last lines of the server log on stderr. */
static void
print_log_tail(const char *path)
{
	char buf[4096];
	ssize_t n;
	off_t size;
	int fd, lines = 0;
	char *p;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size > (off_t)sizeof(buf) - 1)
		(void)lseek(fd, size - (off_t)sizeof(buf) + 1, SEEK_SET);
	else
		(void)lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (p = buf + n - 1; p > buf; p--)
		if (*p == '\n' && ++lines > 15) {
			p++;
			break;
		}
	fprintf(stderr, "--- last lines of %s ---\n%s", path, p);
	if (buf[n - 1] != '\n')
		fputc('\n', stderr);
}

/* Appends the settings that keep the server on its Unix socket. */
static int
write_conf(const struct devdb_layout *l)
{
	FILE *f;

	if (strpbrk(l->sock, "'\\\n") != NULL) {
		cli_warnx("dev-db",
		    "%s: quotes, backslashes and newlines are not allowed in "
		    "the directory name",
		    l->dir);
		return -1;
	}
	if ((f = fopen(l->conf, "ae")) == NULL) {
		cli_warnx("dev-db", "%s: %s", l->conf, strerror(errno));
		return -1;
	}
	fprintf(f,
	    "\n# airlockctl dev-db: Unix socket only, no TCP.\n"
	    "listen_addresses = ''\n"
	    "port = " DEVDB_PORT "\n"
	    "unix_socket_directories = '%s'\n"
	    "password_encryption = 'scram-sha-256'\n",
	    l->sock);
	if (fclose(f) == EOF) {
		cli_warnx("dev-db", "%s: %s", l->conf, strerror(errno));
		return -1;
	}
	return 0;
}

static int
init_cluster(const struct devdb_account *a, const char *bindir, const struct devdb_layout *l)
{
	char pw[PASSWORD_LEN + 2], initdb[PATH_MAX], pwopt[PATH_MAX + 16];
	const char *argv[16];
	int i = 0, rc;

	new_password(pw, sizeof(pw));
	strlcat(pw, "\n", sizeof(pw));
	rc = write_secret(l->bootstrap, pw, a->must_drop ? a->uid : (uid_t)-1, a->gid);
	explicit_bzero(pw, sizeof(pw));
	if (rc == -1)
		return -1;
	if (devdb_join(initdb, sizeof(initdb), bindir, "initdb") == -1 ||
	    snprintf(pwopt, sizeof(pwopt), "--pwfile=%s", l->bootstrap) >= (int)sizeof(pwopt))
		goto fail;
	argv[i++] = initdb;
	argv[i++] = "--pgdata";
	argv[i++] = l->data;
	argv[i++] = "--username=" DEVDB_BOOTSTRAP_ROLE;
	argv[i++] = pwopt;
	argv[i++] = "--auth-local=scram-sha-256";
	argv[i++] = "--auth-host=scram-sha-256";
	argv[i++] = "--encoding=UTF8";
	argv[i++] = "--locale=C";
	argv[i++] = "--no-instructions";
	argv[i] = NULL;
	printf("dev-db: creating a cluster in %s\n", l->data);
	if ((rc = run(a, l->dir, argv, 1)) != 0) {
		cli_warnx("dev-db", "initdb failed (exit %d)", rc);
		goto fail;
	}
	if (write_conf(l) == -1)
		goto fail;
	return 0;
fail:
	(void)unlink(l->bootstrap);
	return -1;
}

/* pg_ctl ACTION -D data [extra...]; returns pg_ctl's exit status or -1. */
static int
pg_ctl(const struct devdb_account *a, const char *bindir, const struct devdb_layout *l,
    const char *action, int quiet)
{
	char path[PATH_MAX];
	const char *argv[16];
	int i = 0;

	if (devdb_join(path, sizeof(path), bindir, "pg_ctl") == -1)
		return -1;
	argv[i++] = path;
	argv[i++] = action;
	argv[i++] = "-D";
	argv[i++] = l->data;
	if (strcmp(action, "start") == 0) {
		argv[i++] = "-l";
		argv[i++] = l->log;
	}
	if (strcmp(action, "stop") == 0) {
		argv[i++] = "-m";
		argv[i++] = "fast";
	}
	if (strcmp(action, "status") != 0) {
		argv[i++] = "-w";
		argv[i++] = "-t";
		argv[i++] = "60";
		argv[i++] = "-s";
	}
	argv[i] = NULL;
	return run(a, l->dir, argv, quiet);
}

static int
is_running(const struct devdb_account *a, const char *bindir, const struct devdb_layout *l)
{
	return pg_ctl(a, bindir, l, "status", 1) == 0;
}

/* Runs one statement; returns 0 or -1 with a message. */
static int
exec_sql(PGconn *conn, const char *sql)
{
	PGresult *res;
	int rc = 0;

	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		fprintf(stderr, "%s dev-db: provisioning failed: %s", CLI_PROG,
		    PQerrorMessage(conn));
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* Whether a row exists for the catalog query with one parameter; -1 on error. */
static int
catalog_has(PGconn *conn, const char *sql, const char *name)
{
	PGresult *res;
	int rc;

	res = PQexecParams(conn, sql, 1, NULL, &name, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "%s dev-db: %s", CLI_PROG, PQerrorMessage(conn));
		rc = -1;
	} else
		rc = PQntuples(res) > 0;
	PQclear(res);
	return rc;
}

/*
 * Creates role (or brings it to these attributes) with a password, sent as a SCRAM verifier
 * so the clear text never reaches the server.
 */
static int
ensure_role(PGconn *conn, const char *role, const char *attrs, const char *password)
{
	char *verifier = NULL, *literal = NULL, sql[1024];
	int has, rc = -1;

	if ((has = catalog_has(conn, "SELECT 1 FROM pg_roles WHERE rolname = $1", role)) == -1)
		goto fail;
	verifier = PQencryptPasswordConn(conn, password, role, "scram-sha-256");
	if (verifier == NULL ||
	    (literal = PQescapeLiteral(conn, verifier, strlen(verifier))) == NULL) {
		fprintf(stderr, "%s dev-db: %s", CLI_PROG, PQerrorMessage(conn));
		goto fail;
	}
	if (snprintf(sql, sizeof(sql), "%s ROLE %s WITH %s PASSWORD %s", has ? "ALTER" : "CREATE",
		role, attrs, literal) >= (int)sizeof(sql)) {
		cli_warnx("dev-db", "statement too long");
		goto fail;
	}
	rc = exec_sql(conn, sql);
fail:
	PQfreemem(verifier);
	PQfreemem(literal);
	return rc;
}

/*
 * Writes DIR/pgpass (0600, ours): libpq's password file, one line per login role, for
 * this dev-db's socket directory, port and database only.  Returns 0 or -1 with a message.
 */
static int
write_pgpass(const struct devdb_layout *l, const char *op, const char *gw)
{
	char host[2 * PATH_MAX], text[2 * (2 * PATH_MAX + 256)];
	int n, rc;

	if (devdb_pgpass_escape(l->sock, host, sizeof(host)) == -1) {
		cli_warnx("dev-db", "path too long: %s", l->sock);
		return -1;
	}
	n = snprintf(text, sizeof(text),
	    "# libpq password file of this dev-db "
	    "(host:port:database:user:password)\n"
	    "%s:%s:%s:%s:%s\n%s:%s:%s:%s:%s\n",
	    host, DEVDB_PORT, DEVDB_DATABASE, DEVDB_OPERATOR_ROLE, op, host, DEVDB_PORT,
	    DEVDB_DATABASE, DEVDB_GATEWAY_ROLE, gw);
	rc = n < 0 || (size_t)n >= sizeof(text)
	    ? -1
	    : write_secret(l->pgpass, text, (uid_t)-1, (gid_t)-1);
	explicit_bzero(text, sizeof(text));
	return rc;
}

/*
 * A dev-db made before the passfile kept "role password" lines in DIR/passwords: writes
 * the passfile from them and removes the old file.  Returns 0 (also when there is nothing
 * to do) or -1 with a message.
 */
static int
upgrade_legacy(const struct devdb_layout *l)
{
	char op[128], gw[128];
	int rc = 0;

	if (exists(l->pgpass) || !exists(l->legacy))
		return 0;
	if (devdb_read_password(l->legacy, DEVDB_OPERATOR_ROLE, 1, op, sizeof(op)) == -1 ||
	    devdb_read_password(l->legacy, DEVDB_GATEWAY_ROLE, 1, gw, sizeof(gw)) == -1) {
		cli_warnx("dev-db",
		    "%s is unreadable; stop the dev-db, remove %s and start "
		    "again",
		    l->legacy, l->dir);
		rc = -1;
	} else if ((rc = write_pgpass(l, op, gw)) == 0)
		(void)unlink(l->legacy);
	explicit_bzero(op, sizeof(op));
	explicit_bzero(gw, sizeof(gw));
	return rc;
}

static PGconn *
connect_bootstrap(const struct devdb_layout *l, const char *dbname, const char *password)
{
	const char *keys[] = { "host", "port", "dbname", "user", "password", "connect_timeout",
		"application_name", NULL };
	const char *vals[] = { l->sock, DEVDB_PORT, dbname, DEVDB_BOOTSTRAP_ROLE, password, "10",
		"airlockctl dev-db", NULL };
	PGconn *conn;

	conn = PQconnectdbParams(keys, vals, 0);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "%s dev-db: cannot connect as %s: %s", CLI_PROG,
		    DEVDB_BOOTSTRAP_ROLE, conn ? PQerrorMessage(conn) : "out of memory\n");
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/*
 * Connected as the bootstrap superuser, creates the operator and gateway roles and the
 * database, then writes DIR/pgpass and forgets the superuser's password.  Safe to
 * repeat after a failure half way.
 */
static int
provision(const struct devdb_layout *l)
{
	char boot[128], op[PASSWORD_LEN + 1], gw[PASSWORD_LEN + 1];
	PGconn *conn = NULL;
	int has, rc = -1;

	if (read_line(l->bootstrap, boot, sizeof(boot)) == -1) {
		cli_warnx("dev-db",
		    "%s holds a cluster that was never provisioned and its "
		    "bootstrap password (%s) is gone; stop it, remove %s and start again",
		    l->dir, l->bootstrap, l->dir);
		return -1;
	}
	new_password(op, sizeof(op));
	new_password(gw, sizeof(gw));

	if ((conn = connect_bootstrap(l, "postgres", boot)) == NULL)
		goto out;
	if (exec_sql(conn, "SET client_min_messages = warning") == -1 ||
	    ensure_role(conn, DEVDB_OPERATOR_ROLE,
		"LOGIN NOSUPERUSER CREATEROLE NOCREATEDB "
		"NOREPLICATION NOBYPASSRLS INHERIT",
		op) == -1 ||
	    ensure_role(conn, DEVDB_GATEWAY_ROLE,
		"LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB "
		"NOREPLICATION NOBYPASSRLS NOINHERIT",
		gw) == -1)
		goto out;
	has = catalog_has(conn, "SELECT 1 FROM pg_database WHERE datname = $1", DEVDB_DATABASE);
	if (has == -1)
		goto out;
	if (!has &&
	    exec_sql(conn, "CREATE DATABASE " DEVDB_DATABASE " OWNER " DEVDB_OPERATOR_ROLE) == -1)
		goto out;
	/* Only the two login roles connect; nobody gets temporary tables by default. */
	if (exec_sql(conn, "REVOKE ALL ON DATABASE " DEVDB_DATABASE " FROM PUBLIC") == -1 ||
	    exec_sql(conn, "GRANT CONNECT ON DATABASE " DEVDB_DATABASE " TO " DEVDB_GATEWAY_ROLE) ==
		-1 ||
	    exec_sql(conn, "REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC") == -1)
		goto out;
	PQfinish(conn);
	if ((conn = connect_bootstrap(l, DEVDB_DATABASE, boot)) == NULL)
		goto out;
	if (exec_sql(conn, "SET client_min_messages = warning") == -1 ||
	    exec_sql(conn, "REVOKE CREATE ON SCHEMA public FROM PUBLIC") == -1 ||
	    exec_sql(conn, "ALTER SCHEMA public OWNER TO " DEVDB_OPERATOR_ROLE) == -1)
		goto out;
	PQfinish(conn);
	conn = NULL;

	if (write_pgpass(l, op, gw) == -1)
		goto out;
	(void)unlink(l->bootstrap);
	rc = 0;
out:
	PQfinish(conn);
	explicit_bzero(boot, sizeof(boot));
	explicit_bzero(op, sizeof(op));
	explicit_bzero(gw, sizeof(gw));
	return rc;
}

static int
start(const struct devdb_layout *l)
{
	struct devdb_account a;
	char bindir[PATH_MAX];
	int rc;

	if (account(&a) == -1)
		return EX_NOUSER;
	if (find_bindir(bindir, sizeof(bindir)) == -1)
		return EX_UNAVAILABLE;
	if (prepare_dir(&a, l) == -1)
		return EX_CANTCREAT;
	if (!exists(l->version) && init_cluster(&a, bindir, l) == -1)
		return EX_CANTCREAT;
	if (upgrade_legacy(l) == -1)
		return EX_CANTCREAT;
	if (is_running(&a, bindir, l)) {
		if (!exists(l->pgpass) && provision(l) == -1)
			return EX_UNAVAILABLE;
		printf("dev-db: already running in %s (socket %s)\n", l->dir, l->sock);
		return EX_OK;
	}
	if ((rc = pg_ctl(&a, bindir, l, "start", 1)) != 0) {
		cli_warnx("dev-db", "the server did not start (pg_ctl exit %d)", rc);
		print_log_tail(l->log);
		return EX_UNAVAILABLE;
	}
	if (!exists(l->pgpass) && provision(l) == -1)
		return EX_UNAVAILABLE;
	printf("dev-db: started in %s (socket %s)\n", l->dir, l->sock);
	return EX_OK;
}

static int
stop(const struct devdb_layout *l)
{
	struct devdb_account a;
	char bindir[PATH_MAX];
	int rc;

	if (!exists(l->version)) {
		printf("dev-db: no cluster in %s, nothing to stop\n", l->dir);
		return EX_OK;
	}
	if (account(&a) == -1)
		return EX_NOUSER;
	if (find_bindir(bindir, sizeof(bindir)) == -1)
		return EX_UNAVAILABLE;
	if (!is_running(&a, bindir, l)) {
		printf("dev-db: not running in %s\n", l->dir);
		return EX_OK;
	}
	if ((rc = pg_ctl(&a, bindir, l, "stop", 1)) != 0) {
		cli_warnx("dev-db", "pg_ctl stop failed (exit %d)", rc);
		print_log_tail(l->log);
		return EX_TEMPFAIL;
	}
	printf("dev-db: stopped in %s\n", l->dir);
	return EX_OK;
}

static int
status(const struct devdb_layout *l)
{
	struct devdb_account a;
	char bindir[PATH_MAX];

	if (!exists(l->version)) {
		printf("dev-db: no cluster in %s\n", l->dir);
		return EX_UNAVAILABLE;
	}
	if (account(&a) == -1)
		return EX_NOUSER;
	if (find_bindir(bindir, sizeof(bindir)) == -1)
		return EX_UNAVAILABLE;
	if (!is_running(&a, bindir, l)) {
		printf("dev-db: stopped in %s\n", l->dir);
		return EX_UNAVAILABLE;
	}
	printf("dev-db: running in %s (socket %s)\n", l->dir, l->sock);
	return EX_OK;
}

static int
url(const struct devdb_layout *l, enum devdb_role role)
{
	char buf[4096];

	if (devdb_url(l->dir, role, buf, sizeof(buf)) == -1) {
		cli_warnx("dev-db", "no dev-db in %s (run: %s dev-db start)", l->dir, CLI_PROG);
		return EX_UNAVAILABLE;
	}
	printf("%s\n", buf);
	return EX_OK;
}

int
cmd_devdb(int argc, char **argv)
{
	static const struct option longopts[] = { { "dir", required_argument, NULL, 'd' },
		{ "role", required_argument, NULL, 'r' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 } };
	struct devdb_layout l;
	enum devdb_role role = DEVDB_OPERATOR;
	const char *dir = NULL, *action;
	char abs[PATH_MAX], err[PATH_MAX + 128];
	int c;

	while ((c = cli_getopt(argc, argv, "h", longopts)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'r':
			if (strcmp(optarg, "operator") == 0)
				role = DEVDB_OPERATOR;
			else if (strcmp(optarg, "gateway") == 0)
				role = DEVDB_GATEWAY;
			else {
				cli_warnx(argv[0], "unknown role '%s' (operator or gateway)",
				    optarg);
				return EX_USAGE;
			}
			break;
		case 'h':
			fputs(devdb_usage, stdout);
			return EX_OK;
		default:
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		cli_warnx(argv[0], "missing action: start, stop, status or url (see %s %s --help)",
		    CLI_PROG, argv[0]);
		return EX_USAGE;
	}
	if (optind + 1 < argc) {
		cli_warnx(argv[0], "unexpected argument '%s'", argv[optind + 1]);
		return EX_USAGE;
	}
	action = argv[optind];
	if (strcmp(action, "start") != 0 && strcmp(action, "stop") != 0 &&
	    strcmp(action, "status") != 0 && strcmp(action, "url") != 0) {
		cli_warnx(argv[0], "unknown action '%s': start, stop, status or url", action);
		return EX_USAGE;
	}
	if (devdb_dir(dir, abs, sizeof(abs), err, sizeof(err)) == -1 ||
	    devdb_layout(&l, abs, err, sizeof(err)) == -1) {
		cli_warnx("dev-db", "%s", err);
		return EX_USAGE;
	}
	if (strcmp(action, "start") == 0)
		return start(&l);
	if (strcmp(action, "stop") == 0)
		return stop(&l);
	if (strcmp(action, "status") == 0)
		return status(&l);
	return url(&l, role);
}
