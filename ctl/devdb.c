/* devdb.c: where a dev-db lives and how to reach it: its paths, its URL, its passfile. */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "airlock/devdb.h"

#define SOCKET_NAME ".s.PGSQL." DEVDB_PORT
/* sun_path holds 107 bytes and a NUL; stay well under. */
#define SOCKET_MAX 96
#define PG_ACCOUNT "postgres"

int
devdb_join(char *buf, size_t len, const char *dir, const char *name)
{
	int n;

	n = snprintf(buf, len, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
devdb_layout(struct devdb_layout *l, const char *dir, char *err, size_t errlen)
{
	if (strlcpy(l->dir, dir, sizeof(l->dir)) >= sizeof(l->dir) ||
	    devdb_join(l->data, sizeof(l->data), dir, "data") == -1 ||
	    devdb_join(l->version, sizeof(l->version), l->data, "PG_VERSION") == -1 ||
	    devdb_join(l->conf, sizeof(l->conf), l->data, "postgresql.conf") == -1 ||
	    devdb_join(l->sock, sizeof(l->sock), dir, "sock") == -1 ||
	    devdb_join(l->log, sizeof(l->log), dir, "postgres.log") == -1 ||
	    devdb_join(l->pgpass, sizeof(l->pgpass), dir, "pgpass") == -1 ||
	    devdb_join(l->legacy, sizeof(l->legacy), dir, "passwords") == -1 ||
	    devdb_join(l->bootstrap, sizeof(l->bootstrap), dir, "bootstrap.pw") == -1) {
		snprintf(err, errlen, "path too long: %s", dir);
		return -1;
	}
	return 0;
}

int
devdb_account(struct devdb_account *a, char *err, size_t errlen)
{
	struct passwd *pw;

	memset(a, 0, sizeof(*a));
	if (geteuid() != 0) {
		a->uid = getuid();
		a->gid = getgid();
		return 0;
	}
	errno = 0;
	if ((pw = getpwnam(PG_ACCOUNT)) == NULL) {
		snprintf(err, errlen,
		    "running as root, but there is no '%s' account to run the "
		    "server as (PostgreSQL refuses root)",
		    PG_ACCOUNT);
		return -1;
	}
	if (pw->pw_uid == 0 || strlcpy(a->name, pw->pw_name, sizeof(a->name)) >= sizeof(a->name)) {
		snprintf(err, errlen, "the '%s' account is unusable", PG_ACCOUNT);
		return -1;
	}
	a->must_drop = 1;
	a->uid = pw->pw_uid;
	a->gid = pw->pw_gid;
	return 0;
}

/* In a child process: become the account; returns -1 when any step fails. */
int
devdb_become(const struct devdb_account *a)
{
	if (!a->must_drop)
		return 0;
	if (initgroups(a->name, a->gid) == -1 || setgid(a->gid) == -1 || setuid(a->uid) == -1)
		return -1;
	if (setuid(0) != -1)
		return -1;
	return 0;
}

/* Whether the account can traverse every component of path (and write there if asked). */
int
devdb_can_reach(const struct devdb_account *a, const char *path, int mode)
{
	pid_t pid;
	int status;

	if (!a->must_drop)
		return access(path, mode) == 0;
	fflush(NULL);
	if ((pid = fork()) == -1)
		return 0;
	if (pid == 0) {
		if (devdb_become(a) == -1)
			_exit(2);
		_exit(access(path, mode) == 0 ? 0 : 1);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return 0;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int
socket_fits(const char *dir)
{
	return strlen(dir) + strlen("/sock/" SOCKET_NAME) <= SOCKET_MAX;
}

static int
absolute(const char *path, char *buf, size_t len)
{
	char cwd[PATH_MAX], real[PATH_MAX];
	int n;

	if (realpath(path, real) != NULL)
		return strlcpy(buf, real, len) < len ? 0 : -1;
	if (path[0] == '/')
		return strlcpy(buf, path, len) < len ? 0 : -1;
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -1;
	n = snprintf(buf, len, "%s/%s", cwd, path);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
devdb_dir(const char *dir, char *buf, size_t len, char *err, size_t errlen)
{
	struct devdb_account a;
	char cwd[PATH_MAX], var[PATH_MAX], hex[SHA256_DIGEST_STRING_LENGTH], why[256];
	SHA2_CTX ctx;
	const char *env;
	int n;

	if (dir == NULL && (env = getenv("AIRLOCK_DEV_DIR")) != NULL && *env != '\0')
		dir = env;
	if (dir != NULL) {
		if (absolute(dir, buf, len) == -1) {
			snprintf(err, errlen, "path too long: %s", dir);
			return -1;
		}
		if (!socket_fits(buf)) {
			snprintf(err, errlen,
			    "%s is too long for a Unix socket path under it "
			    "(at most %zu bytes); choose a shorter directory",
			    buf, (size_t)SOCKET_MAX - strlen("/sock/" SOCKET_NAME));
			return -1;
		}
		return 0;
	}
	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		snprintf(err, errlen, "getcwd: %s", strerror(errno));
		return -1;
	}
	if (devdb_join(var, sizeof(var), strcmp(cwd, "/") == 0 ? "" : cwd, "var") == 0 &&
	    socket_fits(var) && devdb_account(&a, why, sizeof(why)) == 0 &&
	    (a.must_drop ? devdb_can_reach(&a, cwd, X_OK)
			 : devdb_can_reach(&a, cwd, W_OK | X_OK) ||
			devdb_can_reach(&a, var, W_OK | X_OK)))
		return strlcpy(buf, var, len) < len ? 0 : -1;

	SHA256Init(&ctx);
	SHA256Update(&ctx, (const unsigned char *)cwd, strlen(cwd));
	SHA256End(&ctx, hex);
	n = snprintf(buf, len, "/tmp/airlock-%.12s", hex);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/*
 * Reads role's password into pw, from a libpq password file (host:port:database:user:password,
 * as written by write_pgpass: the last two fields hold no colon) or, when is_legacy, from
 * the older "role password" lines.  Returns 0 or -1.
 */
int
devdb_read_password(const char *path, const char *role, int is_legacy, char *pw, size_t len)
{
	FILE *f;
	char line[PATH_MAX + 256], *sep, *user, *nl;
	int rc = -1;

	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if (line[0] == '#' || (sep = strrchr(line, is_legacy ? ' ' : ':')) == NULL)
			continue;
		*sep = '\0';
		if (is_legacy)
			user = line;
		else if ((user = strrchr(line, ':')) != NULL)
			user++;
		else
			continue;
		if (strcmp(user, role) == 0) {
			rc = strlcpy(pw, sep + 1, len) < len ? 0 : -1;
			break;
		}
	}
	explicit_bzero(line, sizeof(line));
	fclose(f);
	return rc;
}

/* Percent-encodes s for a URL query value, leaving '/' as is. */
static int
url_encode(const char *s, char *buf, size_t len)
{
	static const char hexd[] = "0123456789ABCDEF";
	size_t o = 0;
	unsigned char c;

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
			if (o + 1 >= len)
				return -1;
			buf[o++] = (char)c;
		} else {
			if (o + 3 >= len)
				return -1;
			buf[o++] = '%';
			buf[o++] = hexd[c >> 4];
			buf[o++] = hexd[c & 15];
		}
	}
	if (o >= len)
		return -1;
	buf[o] = '\0';
	return 0;
}

int
devdb_url(const char *dir, enum devdb_role role, char *buf, size_t len)
{
	struct devdb_layout l;
	char abs[PATH_MAX], pw[128], host[3 * PATH_MAX], passfile[3 * PATH_MAX], why[256];
	const char *name;
	int n;

	name = role == DEVDB_GATEWAY ? DEVDB_GATEWAY_ROLE : DEVDB_OPERATOR_ROLE;
	if (devdb_dir(dir, abs, sizeof(abs), why, sizeof(why)) == -1 ||
	    devdb_layout(&l, abs, why, sizeof(why)) == -1)
		return -1;
	/* Only a provisioned dev-db has a URL: its passfile must know the role. */
	n = devdb_read_password(l.pgpass, name, 0, pw, sizeof(pw));
	explicit_bzero(pw, sizeof(pw));
	if (n == -1)
		return -1;
	if (url_encode(l.sock, host, sizeof(host)) == -1 ||
	    url_encode(l.pgpass, passfile, sizeof(passfile)) == -1)
		return -1;
	/* No password in the URL: it ends up on command lines, which every local user can
	 * read; libpq takes it from the passfile the URL names. */
	n = snprintf(buf, len, "postgresql://%s@/%s?host=%s&port=%s&passfile=%s", name,
	    DEVDB_DATABASE, host, DEVDB_PORT, passfile);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Copies s into buf with the passfile's escapes (backslash before ':' and '\\'). */
int
devdb_pgpass_escape(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (; *s != '\0'; s++) {
		if ((*s == ':' || *s == '\\') && o + 1 < len)
			buf[o++] = '\\';
		if (o + 1 >= len)
			return -1;
		buf[o++] = *s;
	}
	buf[o] = '\0';
	return 0;
}
