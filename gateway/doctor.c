/* doctor.c: the containment self-check: the database's grants, policies and keys, the host. */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "airlock/db.h"
#include "airlock/doctor.h"
#include "airlock/gvisor.h"

#define NOBODY_ID 65534 /* who the user-namespace probe runs as when we are root */

void
doc_report_init(struct doc_report *r)
{
	memset(r, 0, sizeof(*r));
}

void
doc_report_free(struct doc_report *r)
{
	free(r->rows);
	memset(r, 0, sizeof(*r));
}

const char *
doc_status_name(enum doc_status st)
{
	switch (st) {
	case DOC_OK:
		return "ok";
	case DOC_SKIP:
		return "skip";
	case DOC_WARN:
		return "warn";
	case DOC_FAIL:
		break;
	}
	return "FAIL";
}

static void add(struct doc_report *r, const char *check, enum doc_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Adds a row; a row that cannot be stored still counts as a failure, so none is lost. */
static void
add(struct doc_report *r, const char *check, enum doc_status st, const char *fmt, ...)
{
	struct doc_row *row;
	va_list ap;

	if (st == DOC_FAIL)
		r->has_failure = 1;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 32;
		struct doc_row *v = reallocarray(r->rows, cap, sizeof(*v));

		if (v == NULL) {
			r->has_failure = 1;
			return;
		}
		r->rows = v;
		r->cap = cap;
	}
	row = &r->rows[r->n++];
	row->check = check;
	row->status = st;
	va_start(ap, fmt);
	vsnprintf(row->detail, sizeof(row->detail), fmt, ap);
	va_end(ap);
}

/*
 * The database checks.  Each query takes the gateway role's name as $1 and returns one
 * row per fault, its one text column (problem) naming the object.  Tenant tables are those listed in
 * airlock.tenant_tables; a listed table that is gone is itself a fault (of "rls").
 */
/* A superuser is a member of every role: what it can become says nothing more. */
#define IS_SUPERUSER "(SELECT rolsuper FROM pg_roles WHERE rolname = $1)"

#define ROLE_ATTR_SQL(attr, word)                                                       \
	"SELECT CASE WHEN r.rolname = $1 THEN format('role %I is " word "', r.rolname)" \
	" ELSE format('role %I can SET ROLE to %I, which is " word                      \
	"', $1::text, r.rolname) END AS problem"                                        \
	" FROM pg_roles r WHERE r." attr " AND pg_has_role($1::name, r.oid, 'MEMBER')"  \
	" AND (r.rolname = $1 OR NOT " IS_SUPERUSER ") ORDER BY r.rolname <> $1, 1"

#define TENANT_TABLES                                                         \
	"WITH t AS (SELECT format('%I.%I', schema_name, table_name) AS name," \
	" to_regclass(format('%I.%I', schema_name, table_name)) AS oid"       \
	" FROM airlock.tenant_tables) "

static const struct db_check {
	const char *check;
	const char *ok; /* the detail of an ok row */
	const char *sql;
} db_checks[] = {
	{ "superuser", "not SUPERUSER, nor able to become one",
	    ROLE_ATTR_SQL("rolsuper", "SUPERUSER") },
	{ "bypassrls", "not BYPASSRLS, nor able to become one",
	    ROLE_ATTR_SQL("rolbypassrls", "BYPASSRLS") },
	{ "createrole", "not CREATEROLE, nor able to become one",
	    ROLE_ATTR_SQL("rolcreaterole", "CREATEROLE") },
	{ "inherit", "NOINHERIT: tenant privileges only after SET ROLE",
	    "SELECT format('role %I is INHERIT: it holds every tenant role''s privileges at once',"
	    " rolname) AS problem FROM pg_roles WHERE rolname = $1 AND rolinherit" },
	/* Owning a table, or being able to become its owner, means being able to turn its
	 * row-level security off. */
	{ "table owner", "owns no tenant table, nor can become an owner",
	    TENANT_TABLES
	    "SELECT format('%s is owned by %I, %s', t.name, pg_get_userbyid(c.relowner),"
	    " CASE WHEN pg_get_userbyid(c.relowner) = $1 THEN 'the gateway role'"
	    " ELSE format('which %I can become', $1::text) END) AS problem"
	    " FROM t JOIN pg_class c ON c.oid = t.oid"
	    " WHERE pg_has_role($1::name, c.relowner, 'MEMBER')"
	    "  AND (pg_get_userbyid(c.relowner) = $1 OR NOT " IS_SUPERUSER ") ORDER BY 1" },
	/* Privileges granted to the role itself or to PUBLIC, on the table or its columns:
	 * the gateway reaches tenant rows only through a tenant role it sets per call. */
	{ "direct grant", "no privilege on a tenant table but through a tenant role",
	    TENANT_TABLES
	    ", g AS (SELECT oid FROM pg_roles WHERE rolname = $1 UNION ALL SELECT 0)"
	    " SELECT format('%s grants %s to %s', t.name,"
	    "  string_agg(DISTINCT a.privilege_type, ', '),"
	    "  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident($1) END) AS problem"
	    " FROM t JOIN pg_class c ON c.oid = t.oid, aclexplode(c.relacl) a"
	    " WHERE a.grantee IN (SELECT oid FROM g) GROUP BY t.name, a.grantee"
	    " UNION ALL"
	    " SELECT format('%s column %I grants %s to %s', t.name, at.attname,"
	    "  string_agg(DISTINCT a.privilege_type, ', '),"
	    "  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident($1) END)"
	    " FROM t JOIN pg_attribute at ON at.attrelid = t.oid AND NOT at.attisdropped,"
	    "  aclexplode(at.attacl) a"
	    " WHERE a.grantee IN (SELECT oid FROM g) GROUP BY t.name, at.attname, a.grantee"
	    " ORDER BY 1" },
	{ "rls", "row-level security enabled and forced on every tenant table",
	    TENANT_TABLES
	    "SELECT CASE WHEN c.oid IS NULL THEN"
	    "  format('%s is listed in airlock.tenant_tables but does not exist', t.name)"
	    " WHEN NOT c.relrowsecurity THEN format('%s: row-level security is not enabled', t.name)"
	    " ELSE format('%s: row-level security is not forced (its owner bypasses it)', t.name) END"
	    " AS problem"
	    " FROM t LEFT JOIN pg_class c ON c.oid = t.oid"
	    " WHERE $1::text IS NOT NULL AND (c.oid IS NULL OR NOT (c.relrowsecurity AND c.relforcerowsecurity))"
	    " ORDER BY 1" },
	/* A setting is chosen by whoever holds the session: a policy keyed on one isolates
	 * nothing from the gateway.  Permissive policies are OR'ed: any besides
	 * tenant_isolation widens what a tenant sees. */
	{ "policy", "every policy keyed on the role, none on a setting",
	    TENANT_TABLES
	    "SELECT CASE WHEN concat(pg_get_expr(p.polqual, p.polrelid), ' ',"
	    "  pg_get_expr(p.polwithcheck, p.polrelid)) ~* '(current_setting|set_config)\\s*\\('"
	    " THEN format('%s: policy %I is keyed on a setting: %s', t.name, p.polname,"
	    "  concat_ws(' WITH CHECK ', pg_get_expr(p.polqual, p.polrelid),"
	    "  pg_get_expr(p.polwithcheck, p.polrelid)))"
	    " ELSE format('%s: permissive policy %I besides tenant_isolation widens what a"
	    " tenant sees', t.name, p.polname) END AS problem"
	    " FROM t JOIN pg_policy p ON p.polrelid = t.oid"
	    " WHERE $1::text IS NOT NULL AND (concat(pg_get_expr(p.polqual, p.polrelid), ' ',"
	    "  pg_get_expr(p.polwithcheck, p.polrelid)) ~* '(current_setting|set_config)\\s*\\('"
	    "  OR (p.polpermissive AND p.polname <> 'tenant_isolation'))"
	    " ORDER BY 1" },
	/* A view runs as its owner unless security_invoker: the owner's row-level security,
	 * not the reader's.  A materialized view holds rows read as whoever refreshed it. */
	{ "view", "every view over a tenant table is security_invoker",
	    TENANT_TABLES
	    "SELECT DISTINCT format('%s %s reads %s and is not security_invoker',"
	    "  CASE v.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END,"
	    "  v.oid::regclass, t.name) AS problem"
	    " FROM t JOIN pg_depend d ON d.refobjid = t.oid AND d.refclassid = 'pg_class'::regclass"
	    "  AND d.classid = 'pg_rewrite'::regclass"
	    " JOIN pg_rewrite rw ON rw.oid = d.objid"
	    " JOIN pg_class v ON v.oid = rw.ev_class AND v.oid <> t.oid AND v.relkind IN ('v', 'm')"
	    " WHERE $1::text IS NOT NULL AND (v.relkind = 'm' OR NOT EXISTS (SELECT 1"
	    "  FROM pg_options_to_table(v.reloptions) o WHERE o.option_name = 'security_invoker'"
	    "  AND lower(o.option_value) IN ('true', 'on', 'yes', '1', 't', 'y')))"
	    " ORDER BY 1" },
	/* A SECURITY DEFINER function resolves names by the caller's search_path unless it
	 * pins its own: the caller could put a function of its own first. */
	{ "security definer", "every SECURITY DEFINER function pins its search_path",
	    "SELECT format('function %s is SECURITY DEFINER without a pinned search_path',"
	    "  p.oid::regprocedure) AS problem"
	    " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
	    " WHERE $1::text IS NOT NULL AND p.prosecdef"
	    "  AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	    "  AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%')"
	    " ORDER BY 1" },
	/* Constraints bypass row-level security: a key without the tenant column tells one
	 * tenant, by its error, whether another holds a value, and a foreign key without it
	 * can point at another tenant's row. */
	{ "tenant key", "every key and foreign key of a tenant table holds the tenant column",
	    TENANT_TABLES
	    ", ta AS (SELECT t.name, t.oid, a.attnum FROM t LEFT JOIN pg_attribute a"
	    "  ON a.attrelid = t.oid AND a.attname = 'tenant' AND NOT a.attisdropped"
	    "  WHERE t.oid IS NOT NULL AND $1::text IS NOT NULL)"
	    " SELECT format('%s has no tenant column', ta.name) AS problem FROM ta"
	    " WHERE ta.attnum IS NULL"
	    " UNION ALL"
	    " SELECT format('%s: %s %s leaves out the tenant column', ta.name,"
	    "  CASE WHEN i.indisprimary THEN 'primary key' WHEN con.oid IS NOT NULL"
	    "  THEN 'unique constraint' ELSE 'unique index' END, coalesce(con.conname, ic.relname))"
	    " FROM ta JOIN pg_index i ON i.indrelid = ta.oid AND i.indisunique"
	    " JOIN pg_class ic ON ic.oid = i.indexrelid"
	    " LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid"
	    "  AND con.contype IN ('p', 'u')"
	    " WHERE ta.attnum IS NOT NULL AND NOT EXISTS (SELECT 1"
	    "  FROM generate_series(0, i.indnkeyatts - 1) k WHERE i.indkey[k] = ta.attnum)"
	    " UNION ALL"
	    " SELECT format('%s: exclusion constraint %I leaves out the tenant column', ta.name,"
	    "  con.conname)"
	    " FROM ta JOIN pg_constraint con ON con.conrelid = ta.oid AND con.contype = 'x'"
	    " WHERE ta.attnum IS NOT NULL AND NOT (ta.attnum = ANY (con.conkey))"
	    " UNION ALL"
	    " SELECT DISTINCT format('%s: foreign key %I (%s references %s) leaves out the tenant"
	    " column', ta.name, con.conname, con.conrelid::regclass, con.confrelid::regclass)"
	    " FROM ta JOIN pg_constraint con ON con.contype = 'f'"
	    "  AND (con.conrelid = ta.oid OR con.confrelid = ta.oid)"
	    " WHERE NOT EXISTS (SELECT 1 FROM generate_subscripts(con.conkey, 1) k"
	    "  JOIN pg_attribute sa ON sa.attrelid = con.conrelid AND sa.attnum = con.conkey[k]"
	    "  JOIN pg_attribute da ON da.attrelid = con.confrelid AND da.attnum = con.confkey[k]"
	    "  WHERE sa.attname = 'tenant' AND da.attname = 'tenant')"
	    " ORDER BY 1" },
};

#define NDB_CHECKS (sizeof(db_checks) / sizeof(db_checks[0]))

/* Runs one check; returns 0, or -1 when its query failed (a FAIL row says why). */
static int
run_check(struct doc_report *r, PGconn *conn, const struct db_check *c, const char *role)
{
	const char *values[1] = { role };
	PGresult *res;
	char *nl;
	int i, n;

	res = PQexecParams(conn, c->sql, 1, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		add(r, c->check, DOC_FAIL, "cannot check: %s", PQresultErrorMessage(res));
		/* libpq's messages end with a newline the table does not want. */
		if (r->n > 0 && (nl = strchr(r->rows[r->n - 1].detail, '\n')) != NULL)
			*nl = '\0';
		r->has_db_error = 1;
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		add(r, c->check, DOC_FAIL, "%s", db_text(res, i, "problem"));
	if (n == 0)
		add(r, c->check, DOC_OK, "%s", c->ok);
	PQclear(res);
	return 0;
}

int
doc_check_db(struct doc_report *r, PGconn *conn, const char *role)
{
	const char *values[1] = { role };
	char name[64];
	PGresult *res;
	size_t i;
	int rc = 0;

	res = role != NULL ? PQexecParams(conn, "SELECT rolname FROM pg_roles WHERE rolname = $1",
				 1, NULL, values, NULL, NULL, 0)
			   : PQexec(conn, "SELECT current_user::text AS rolname");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		add(r, "role", DOC_FAIL, "cannot check: %s", PQresultErrorMessage(res));
		r->has_db_error = 1;
		PQclear(res);
		return -1;
	}
	if (PQntuples(res) == 0) {
		add(r, "role", DOC_FAIL, "role %s does not exist", role);
		PQclear(res);
		return 0;
	}
	strlcpy(name, db_text(res, 0, "rolname"), sizeof(name));
	PQclear(res);
	add(r, "role", DOC_OK, "gateway role %s", name);
	for (i = 0; i < NDB_CHECKS; i++)
		if (run_check(r, conn, &db_checks[i], name) == -1)
			rc = -1;
	return rc;
}

/*
 * Whether an argument carries a password: a libpq keyword (password=...) or a URL's
 * user:password@ part.
 */
static int
has_password(const char *arg)
{
	const char *p, *at, *slash;

	if (strcasestr(arg, "password=") != NULL)
		return 1;
	if ((p = strstr(arg, "://")) == NULL)
		return 0;
	p += 3;
	at = strchr(p, '@');
	slash = strchr(p, '/');
	if (at == NULL || (slash != NULL && slash < at))
		return 0;
	return memchr(p, ':', (size_t)(at - p)) != NULL;
}

/* Reads up to len - 1 bytes of path into buf, NUL-terminated; returns the count or -1. */
static ssize_t
read_small(const char *path, char *buf, size_t len)
{
	ssize_t n, total = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while ((size_t)total < len - 1 && (n = read(fd, buf + total, len - 1 - (size_t)total)) > 0)
		total += n;
	close(fd);
	buf[total] = '\0';
	return total;
}

void
doc_check_argv(struct doc_report *r, int only_pid)
{
	static char cmdline[65536];
	char path[64], comm[64];
	struct dirent *de;
	const char *errstr;
	ssize_t n, off;
	DIR *d;
	int argi, found = 0, seen = 0;

	if ((d = opendir("/proc")) == NULL) {
		add(r, "argv", DOC_WARN, "cannot read /proc: %s", strerror(errno));
		return;
	}
	while ((de = readdir(d)) != NULL) {
		long long pid = strtonum(de->d_name, 1, INT_MAX, &errstr);

		if (errstr != NULL || (only_pid != 0 && pid != only_pid))
			continue;
		snprintf(path, sizeof(path), "/proc/%lld/comm", pid);
		if (read_small(path, comm, sizeof(comm)) <= 0)
			continue;
		comm[strcspn(comm, "\n")] = '\0';
		if (strcmp(comm, "airlockd") != 0)
			continue;
		seen++;
		snprintf(path, sizeof(path), "/proc/%lld/cmdline", pid);
		if ((n = read_small(path, cmdline, sizeof(cmdline))) <= 0)
			continue;
		for (off = 0, argi = 0; off < n; off += (ssize_t)strlen(cmdline + off) + 1, argi++)
			if (has_password(cmdline + off)) {
				add(r, "argv", DOC_FAIL,
				    "airlockd pid %lld has a password in its "
				    "argument %d, readable by every local user in /proc/%lld/cmdline",
				    pid, argi, pid);
				found = 1;
				break;
			}
	}
	closedir(d);
	if (!found)
		add(r, "argv", DOC_OK, "no password in the arguments of %d running airlockd", seen);
}

void
doc_check_key_file(struct doc_report *r, const char *path)
{
	struct stat st;

	if (path == NULL) {
		add(r, "admin key file", DOC_SKIP, "not checked (--admin-key-file FILE)");
		return;
	}
	if (stat(path, &st) == -1)
		add(r, "admin key file", DOC_FAIL, "%s: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		add(r, "admin key file", DOC_FAIL, "%s is not a regular file", path);
	else if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		add(r, "admin key file", DOC_FAIL,
		    "%s is mode %04o: others than its owner may "
		    "read or change the admin credential",
		    path, (unsigned)(st.st_mode & 07777));
	else
		add(r, "admin key file", DOC_OK, "%s is mode %04o", path,
		    (unsigned)(st.st_mode & 07777));
}

/*
 * Whether an unprivileged user may make a user namespace, as bwrap will: a child drops to
 * nobody when we are root (root may even where users may not) and tries.  Returns 0 or the
 * errno of the failure.
 */
static int
probe_userns(void)
{
	pid_t pid;
	int status;

	if ((pid = fork()) == -1)
		return errno;
	if (pid == 0) {
		if (geteuid() == 0 &&
		    (setgroups(0, NULL) == -1 || setresgid(NOBODY_ID, NOBODY_ID, NOBODY_ID) == -1 ||
			setresuid(NOBODY_ID, NOBODY_ID, NOBODY_ID) == -1))
			_exit(errno & 0x7f);
		_exit(unshare(CLONE_NEWUSER) == -1 ? errno & 0x7f : 0);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
}

void
doc_check_sandbox(struct doc_report *r, const char *bwrap, int is_needed)
{
	enum doc_status bad = is_needed ? DOC_FAIL : DOC_WARN;
	const char *why = is_needed ? "" : " (no code tool in the catalog)";
	struct stat st;
	int e;

	if (stat(bwrap, &st) == -1)
		add(r, "bwrap", bad, "%s: %s%s", bwrap, strerror(errno), why);
	else if ((st.st_mode & (S_ISUID | S_ISGID)) != 0)
		add(r, "bwrap", bad,
		    "%s is setuid or setgid: it would not let airlock-sandbox "
		    "set the limits it needs, and a setuid bwrap is a root attack surface%s",
		    bwrap, why);
	else
		add(r, "bwrap", DOC_OK, "%s is not setuid", bwrap);

	if ((e = probe_userns()) != 0)
		add(r, "user namespaces", bad,
		    "an unprivileged user cannot make a user namespace: "
		    "%s%s",
		    strerror(e), why);
	else
		add(r, "user namespaces", DOC_OK, "available to an unprivileged user");

	/* With a NULL program the kernel answers EFAULT when it has seccomp filters and
	 * EINVAL when it has not; nothing is installed either way. */
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL, 0, 0) == 0 || errno != EFAULT)
		add(r, "seccomp", bad, "the kernel has no seccomp filters: %s%s", strerror(errno),
		    why);
	else
		add(r, "seccomp", DOC_OK, "seccomp filters available");
}

/* Whether manifest m asks for gVisor: "code": {"isolation": "gvisor"}. */
static int
is_gvisor(json_t *m)
{
	const char *iso =
	    json_string_value(json_object_get(json_object_get(m, "code"), "isolation"));

	return iso != NULL && strcmp(iso, "gvisor") == 0;
}

int
doc_catalog_needs(const char *dir, int *has_gvisor)
{
	char path[PATH_MAX];
	struct dirent *de;
	const char *kind;
	json_t *m;
	size_t len;
	DIR *d;
	int has = 0;

	if (has_gvisor != NULL)
		*has_gvisor = 0;
	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0 ||
		    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path))
			continue;
		if ((m = json_load_file(path, 0, NULL)) == NULL)
			continue;
		kind = json_string_value(json_object_get(m, "kind"));
		if (kind != NULL && strcmp(kind, "code") == 0) {
			has = 1;
			if (has_gvisor != NULL && is_gvisor(m))
				*has_gvisor = 1;
		}
		json_decref(m);
	}
	closedir(d);
	return has;
}

void
doc_check_gvisor(struct doc_report *r, const char *runsc, int is_needed)
{
	char err[512];

	if (sb_gvisor_check(runsc, err, sizeof(err)) == 0)
		add(r, "gvisor", DOC_OK, "runsc starts a sandbox here");
	else
		add(r, "gvisor", is_needed ? DOC_FAIL : DOC_WARN,
		    "the gVisor level cannot run: "
		    "%s%s",
		    err,
		    is_needed ? " (a code tool asks for \"isolation\": \"gvisor\")"
			      : " (no gvisor tool in the catalog)");
}

int
doc_gate(PGconn *conn, char *err, size_t len)
{
	struct doc_report r;
	size_t i, used = 0;
	int rc;

	doc_report_init(&r);
	if (len > 0)
		err[0] = '\0';
	rc = doc_check_db(&r, conn, NULL) == -1 || r.has_failure ? -1 : 0;
	for (i = 0; i < r.n && used < len; i++) {
		if (r.rows[i].status != DOC_FAIL)
			continue;
		used += (size_t)snprintf(err + used, len - used, "%s%s: %s", used ? "; " : "",
		    r.rows[i].check, r.rows[i].detail);
	}
	doc_report_free(&r);
	return rc;
}
