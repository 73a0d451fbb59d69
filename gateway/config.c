/*
 * config.c: airlockd's settings, with defaults that are safe on a laptop, from a
 * configuration file, the environment and flags, in that order, each overriding the one
 * before.  The file holds `key = value` lines whose keys are the long flags' names.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "airlock/config.h"
#include "airlock/db.h"
#include "airlock/version.h"

static const char usage[] =
    "usage: airlockd [--config FILE] [--check-config] [options]\n"
    "  --config FILE          read settings from FILE first: `key = value` lines, a key for\n"
    "                         every option below (listen = 127.0.0.1:8080, verbose = true);\n"
    "                         the environment and flags override it (AIRLOCK_CONFIG)\n"
    "  --check-config         check the settings and the files they name, then exit: 0 when\n"
    "                         airlockd would start with them, 78 when not\n"
    "  --version              print the version and exit\n"
    "  --listen HOST:PORT     address to serve (AIRLOCK_LISTEN; default 127.0.0.1:8080)\n"
    "  --db CONNINFO          libpq URL or conninfo of the gateway role (AIRLOCK_DB;\n"
    "                         default: libpq's PGHOST, PGUSER, ... environment).  Never\n"
    "                         put a password here (any local user reads the command\n"
    "                         line): use a passfile (passfile=, PGPASSFILE) or --db-file\n"
    "  --db-file FILE         read the conninfo from FILE, which only its owner may read\n"
    "                         or write (AIRLOCK_DB_FILE)\n"
    "  --tools DIR            tool catalog (AIRLOCK_TOOLS; default ./tools)\n"
    "  --admin-key-file FILE  admin credential, re-read on change; only its owner may read\n"
    "                         or write it (AIRLOCK_ADMIN_KEY_FILE)\n"
    "  --trust-proxy ADDR     a TLS-terminating proxy's address: for its requests the client\n"
    "                         is the last address in X-Forwarded-For (AIRLOCK_TRUST_PROXY)\n"
    "  --allow-origin ORIGIN  an Origin /mcp accepts; repeatable (AIRLOCK_ALLOW_ORIGINS,\n"
    "                         comma-separated). A request without Origin is always accepted\n"
    "  --max-body BYTES       largest request body (default 1048576)\n"
    "  --max-depth N          deepest JSON nesting (default 32)\n"
    "  --max-batch N          most calls in one batch (default 50)\n"
    "  --conn-timeout SEC     idle connection timeout (default 30)\n"
    "  --grace SEC            at SIGTERM, how long in-flight requests may take (default 10)\n"
    "  --max-conns N          concurrent connections (default 1024)\n"
    "  --max-conns-per-client N  concurrent connections from one address (default 64;\n"
    "                         behind a proxy every client shares the proxy's address)\n"
    "  --threads N            HTTP threads (default 2)\n"
    "  --workers N            database workers, one connection each (default 8)\n"
    "  --queue N              calls waiting for a worker, in all (default 4096)\n"
    "  --queue-per-tenant N   calls waiting for a worker, per tenant (per token until the\n"
    "                         gateway has seen the token's tenant; default 64)\n"
    "  --key-ttl SEC          how long an idempotency key is remembered (default 86400)\n"
    "  --key-waiters K/T      calls on one key at once (the first and its waiting duplicates),\n"
    "                         and keyed writes in flight per tenant, in this instance (default\n"
    "                         8/64); more get 409/429 at once\n"
    "  --sandboxes N          code steps running at once (default 4)\n"
    "  --sandboxes-per-tenant N  code steps running at once per tenant (default 2)\n"
    "  --warm N               sandboxes started ahead for code tools that ask for them\n"
    "                         (code.warm), in all (default 4; 0 turns warm pools off)\n"
    "  --warm-per-tenant N    warm sandboxes one tenant may take at once (default 1)\n"
    "  --rate-client R/B      requests per second and burst per client address, before\n"
    "                         authentication (default 100/200; 0/0 turns it off)\n"
    "  --rate-token R/B       calls per second and burst per token (default 20/40)\n"
    "  --rate-tenant R/B      calls per second and burst per tenant, unless the tenant has\n"
    "                         its own (airlock.tenants.rate_per_sec; default 100/200)\n"
    "  -v, --verbose          debug logging\n"
    "  -h, --help             this text\n";

enum {
	O_LISTEN = 256,
	O_DB,
	O_TOOLS,
	O_ADMIN,
	O_ORIGIN,
	O_BODY,
	O_DEPTH,
	O_BATCH,
	O_TIMEOUT,
	O_CONNS,
	O_THREADS,
	O_WORKERS,
	O_QUEUE,
	O_QUEUE_KEY,
	O_RATE_CLIENT,
	O_RATE_TOKEN,
	O_RATE_TENANT,
	O_SANDBOXES,
	O_SANDBOXES_TENANT,
	O_KEY_TTL,
	O_KEY_WAITERS,
	O_GRACE,
	O_CONNS_CLIENT,
	O_TRUST,
	O_DB_FILE,
	O_CONFIG,
	O_CHECK,
	O_VERSION,
	O_WARM,
	O_WARM_TENANT
};

static const struct option options[] = {
	{ "listen", required_argument, NULL, O_LISTEN },
	{ "db", required_argument, NULL, O_DB },
	{ "db-file", required_argument, NULL, O_DB_FILE },
	{ "tools", required_argument, NULL, O_TOOLS },
	{ "admin-key-file", required_argument, NULL, O_ADMIN },
	{ "allow-origin", required_argument, NULL, O_ORIGIN },
	{ "max-body", required_argument, NULL, O_BODY },
	{ "max-depth", required_argument, NULL, O_DEPTH },
	{ "max-batch", required_argument, NULL, O_BATCH },
	{ "conn-timeout", required_argument, NULL, O_TIMEOUT },
	{ "max-conns", required_argument, NULL, O_CONNS },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "workers", required_argument, NULL, O_WORKERS },
	{ "queue", required_argument, NULL, O_QUEUE },
	{ "queue-per-tenant", required_argument, NULL, O_QUEUE_KEY },
	{ "key-ttl", required_argument, NULL, O_KEY_TTL },
	{ "grace", required_argument, NULL, O_GRACE },
	{ "trust-proxy", required_argument, NULL, O_TRUST },
	{ "max-conns-per-client", required_argument, NULL, O_CONNS_CLIENT },
	{ "key-waiters", required_argument, NULL, O_KEY_WAITERS },
	{ "sandboxes", required_argument, NULL, O_SANDBOXES },
	{ "sandboxes-per-tenant", required_argument, NULL, O_SANDBOXES_TENANT },
	{ "warm", required_argument, NULL, O_WARM },
	{ "warm-per-tenant", required_argument, NULL, O_WARM_TENANT },
	{ "rate-client", required_argument, NULL, O_RATE_CLIENT },
	{ "rate-token", required_argument, NULL, O_RATE_TOKEN },
	{ "rate-tenant", required_argument, NULL, O_RATE_TENANT },
	{ "verbose", no_argument, NULL, 'v' },
	{ "config", required_argument, NULL, O_CONFIG },
	{ "check-config", no_argument, NULL, O_CHECK },
	{ "version", no_argument, NULL, O_VERSION },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int
set_string(char *dst, size_t size, const char *src, const char *what)
{
	if (strlcpy(dst, src, size) >= size) {
		fprintf(stderr, "airlockd: %s is too long\n", what);
		return -1;
	}
	return 0;
}

static int
set_number(long long *out, const char *s, long long lo, long long hi, const char *what)
{
	const char *errstr;

	*out = strtonum(s, lo, hi, &errstr);
	if (errstr != NULL) {
		fprintf(stderr, "airlockd: %s %s: %s (%lld..%lld)\n", what, s, errstr, lo, hi);
		return -1;
	}
	return 0;
}

static int
set_listen(struct config *cfg, const char *s)
{
	const char *colon = strrchr(s, ':');
	long long port;
	size_t hlen;

	if (colon == NULL || colon == s) {
		fprintf(stderr, "airlockd: --listen wants HOST:PORT, not %s\n", s);
		return -1;
	}
	hlen = (size_t)(colon - s);
	if (hlen >= sizeof(cfg->listen_host)) {
		fprintf(stderr, "airlockd: --listen host is too long\n");
		return -1;
	}
	if (set_number(&port, colon + 1, 1, 65535, "port") == -1)
		return -1;
	memcpy(cfg->listen_host, s, hlen);
	cfg->listen_host[hlen] = '\0';
	cfg->listen_port = (unsigned short)port;
	return 0;
}

/* "K/T": two whole numbers, 1 to 100000 each. */
static int
set_pair(unsigned *a, unsigned *b, const char *s, const char *what)
{
	char buf[64], *slash;
	long long x, y;

	if (strlcpy(buf, s, sizeof(buf)) >= sizeof(buf) || (slash = strchr(buf, '/')) == NULL) {
		fprintf(stderr, "airlockd: %s wants N/M, e.g. 8/64\n", what);
		return -1;
	}
	*slash = '\0';
	if (set_number(&x, buf, 1, 100000, what) == -1 ||
	    set_number(&y, slash + 1, 1, 100000, what) == -1)
		return -1;
	*a = (unsigned)x;
	*b = (unsigned)y;
	return 0;
}

/* "RATE/BURST": both decimal, 0/0 for no limit. */
static int
set_rate(double *rate, double *burst, const char *s, const char *what)
{
	char *end;

	*rate = strtod(s, &end);
	if (end == s || *end != '/' || *rate < 0 || *rate > 1e6)
		goto bad;
	s = end + 1;
	*burst = strtod(s, &end);
	if (end == s || *end != '\0' || *burst < 0 || *burst > 1e6 || (*rate > 0 && *burst < 1))
		goto bad;
	return 0;
bad:
	fprintf(stderr, "airlockd: %s wants RATE/BURST, e.g. 20/40\n", what);
	return -1;
}

/* Where the settings being applied come from: the file, the environment, the flags.  A
 * repeatable setting (allow-origin) from one source replaces what an earlier source set. */
enum source { SRC_DEFAULT, SRC_FILE, SRC_ENV, SRC_FLAGS };
static enum source applying, origins_from;

static int
add_origins(struct config *cfg, const char *list)
{
	char buf[4096], *p, *tok, *save = NULL;

	if (origins_from != applying) {
		cfg->n_origins = 0;
		origins_from = applying;
	}

	if (set_string(buf, sizeof(buf), list, "origin list") == -1)
		return -1;
	for (p = buf; (tok = strtok_r(p, ",", &save)) != NULL; p = NULL) {
		while (*tok == ' ')
			tok++;
		if (*tok == '\0')
			continue;
		if (cfg->n_origins == CONFIG_MAX_ORIGINS) {
			fprintf(stderr, "airlockd: more than %d origins\n", CONFIG_MAX_ORIGINS);
			return -1;
		}
		if (set_string(cfg->origins[cfg->n_origins++], sizeof(cfg->origins[0]), tok,
			"origin") == -1)
			return -1;
	}
	return 0;
}

static int
apply(struct config *cfg, int opt, const char *arg)
{
	long long n;

	switch (opt) {
	case O_LISTEN:
		return set_listen(cfg, arg);
	case O_DB:
		/* The last of --db and --db-file given wins. */
		cfg->db_file[0] = '\0';
		return set_string(cfg->db, sizeof(cfg->db), arg, "--db");
	case O_DB_FILE:
		cfg->db[0] = '\0';
		return set_string(cfg->db_file, sizeof(cfg->db_file), arg, "--db-file");
	case O_TOOLS:
		return set_string(cfg->tools_dir, sizeof(cfg->tools_dir), arg, "--tools");
	case O_ADMIN:
		return set_string(cfg->admin_key_file, sizeof(cfg->admin_key_file), arg,
		    "--admin-key-file");
	case O_ORIGIN:
		return add_origins(cfg, arg);
	case O_TRUST:
		return set_string(cfg->trust_proxy, sizeof(cfg->trust_proxy), arg, "--trust-proxy");
	case O_RATE_CLIENT:
		return set_rate(&cfg->rate_client, &cfg->burst_client, arg, "--rate-client");
	case O_RATE_TOKEN:
		return set_rate(&cfg->rate_token, &cfg->burst_token, arg, "--rate-token");
	case O_RATE_TENANT:
		return set_rate(&cfg->rate_tenant, &cfg->burst_tenant, arg, "--rate-tenant");
	case 'v':
		cfg->verbose = 1;
		return 0;
	}
	switch (opt) {
	case O_BODY:
		if (set_number(&n, arg, 64, 64LL << 20, "--max-body") == -1)
			return -1;
		cfg->max_body = (size_t)n;
		break;
	case O_DEPTH:
		if (set_number(&n, arg, 2, 512, "--max-depth") == -1)
			return -1;
		cfg->max_depth = (size_t)n;
		break;
	case O_BATCH:
		if (set_number(&n, arg, 1, 10000, "--max-batch") == -1)
			return -1;
		cfg->max_batch = (size_t)n;
		break;
	case O_TIMEOUT:
		if (set_number(&n, arg, 1, 3600, "--conn-timeout") == -1)
			return -1;
		cfg->conn_timeout = (unsigned)n;
		break;
	case O_CONNS:
		if (set_number(&n, arg, 1, 100000, "--max-conns") == -1)
			return -1;
		cfg->max_conns = (unsigned)n;
		break;
	case O_THREADS:
		if (set_number(&n, arg, 1, 256, "--threads") == -1)
			return -1;
		cfg->http_threads = (unsigned)n;
		break;
	case O_WORKERS:
		if (set_number(&n, arg, 1, 256, "--workers") == -1)
			return -1;
		cfg->db_workers = (unsigned)n;
		break;
	case O_QUEUE:
		if (set_number(&n, arg, 1, 1000000, "--queue") == -1)
			return -1;
		cfg->queue_max = (unsigned)n;
		break;
	case O_QUEUE_KEY:
		if (set_number(&n, arg, 1, 1000000, "--queue-per-tenant") == -1)
			return -1;
		cfg->queue_per_key = (unsigned)n;
		break;
	case O_CONNS_CLIENT:
		if (set_number(&n, arg, 1, 100000, "--max-conns-per-client") == -1)
			return -1;
		cfg->max_conns_per_client = (unsigned)n;
		break;
	case O_GRACE:
		if (set_number(&n, arg, 0, 3600, "--grace") == -1)
			return -1;
		cfg->grace = (unsigned)n;
		break;
	case O_KEY_TTL:
		if (set_number(&n, arg, 1, 90LL * 86400, "--key-ttl") == -1)
			return -1;
		cfg->key_ttl = n;
		break;
	case O_KEY_WAITERS:
		if (set_pair(&cfg->key_waiters, &cfg->key_waiters_tenant, arg, "--key-waiters") ==
		    -1)
			return -1;
		break;
	case O_SANDBOXES:
		if (set_number(&n, arg, 1, 256, "--sandboxes") == -1)
			return -1;
		cfg->sandboxes = (unsigned)n;
		break;
	case O_SANDBOXES_TENANT:
		if (set_number(&n, arg, 1, 256, "--sandboxes-per-tenant") == -1)
			return -1;
		cfg->sandboxes_per_tenant = (unsigned)n;
		break;
	case O_WARM:
		if (set_number(&n, arg, 0, 256, "--warm") == -1)
			return -1;
		cfg->warm_max = (unsigned)n;
		break;
	case O_WARM_TENANT:
		if (set_number(&n, arg, 1, 256, "--warm-per-tenant") == -1)
			return -1;
		cfg->warm_per_tenant = (unsigned)n;
		break;
	default:
		return -1;
	}
	return 0;
}

/*
 * Opens a file that holds a secret and checks, as ssh does for keys, that neither group
 * nor others may read or write it.  Returns the descriptor (the caller closes it), -2 when
 * it does not exist (and may_be_missing), or -1 after a message naming the file.
 */
static int
open_secret(const char *path, const char *what, int may_be_missing)
{
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		if (errno == ENOENT && may_be_missing)
			return -2;
		fprintf(stderr, "airlockd: %s %s: %s\n", what, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "airlockd: %s %s is not a regular file\n", what, path);
		goto fail;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		fprintf(stderr,
		    "airlockd: %s %s is open to group or others (mode %04o): it holds "
		    "a secret; chmod 600 it\n",
		    what, path, (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

int
config_load_secrets(struct config *cfg)
{
	char buf[sizeof(cfg->db) + 8];
	ssize_t n;
	size_t len;
	int fd, rc = -1;

	/* A missing admin key file only leaves the admin methods off until it appears. */
	if (cfg->admin_key_file[0] != '\0') {
		if ((fd = open_secret(cfg->admin_key_file, "admin key file", 1)) == -1)
			return -1;
		if (fd >= 0)
			close(fd);
	}
	if (cfg->db_file[0] == '\0')
		return 0;
	if ((fd = open_secret(cfg->db_file, "database file", 0)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		fprintf(stderr, "airlockd: database file %s: %s\n", cfg->db_file, strerror(errno));
		goto out;
	}
	buf[n] = '\0';
	/* One conninfo; the trailing newline an editor leaves is not part of it. */
	len = strlen(buf);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
		buf[--len] = '\0';
	if ((size_t)n == sizeof(buf) - 1 || len >= sizeof(cfg->db)) {
		fprintf(stderr, "airlockd: database file %s: longer than %zu bytes\n", cfg->db_file,
		    sizeof(cfg->db) - 1);
		goto out;
	}
	if (len == 0 || strchr(buf, '\n') != NULL) {
		fprintf(stderr,
		    "airlockd: database file %s must hold one libpq URL or conninfo "
		    "line\n",
		    cfg->db_file);
		goto out;
	}
	strlcpy(cfg->db, buf, sizeof(cfg->db));
	rc = 0;
out:
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

/* A boolean value of the file: true/false, yes/no, on/off, 1/0. */
static int
parse_bool(const char *v, int *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *out = 1, 0;
		if (strcasecmp(v, no[i]) == 0)
			return *out = 0, 0;
	}
	return -1;
}

/* Removes leading and trailing blanks in place; returns the first non-blank. */
static char *
trim(char *s)
{
	size_t n;

	s += strspn(s, " \t");
	n = strlen(s);
	while (
	    n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

/*
 * Reads FILE: `key = value` lines, blank lines and `#` comments; a value may be in double
 * quotes.  Keys are the long options' names (every option but config, check-config,
 * version and help).  A file whose db value holds a password must be one only its owner
 * may read or write, as --db-file.  Returns 0, or -1 after a message naming the file and
 * the line.
 */
static int
read_file(struct config *cfg, const char *path)
{
	char line[4096], *key, *val, *eq;
	const struct option *o;
	struct stat st;
	unsigned lineno = 0;
	int rc = -1, on;
	size_t n;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL) {
		fprintf(stderr, "airlockd: config file %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) == -1 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "airlockd: config file %s is not a regular file\n", path);
		goto out;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			fprintf(stderr, "airlockd: %s:%u: line too long\n", path, lineno);
			goto out;
		}
		key = trim(line);
		if (*key == '\0' || *key == '#')
			continue;
		if ((eq = strchr(key, '=')) == NULL) {
			fprintf(stderr, "airlockd: %s:%u: want key = value\n", path, lineno);
			goto out;
		}
		*eq = '\0';
		key = trim(key);
		val = trim(eq + 1);
		n = strlen(val);
		if (n >= 2 && val[0] == '"' && val[n - 1] == '"') {
			val[n - 1] = '\0';
			val++;
		}
		for (o = options; o->name != NULL; o++)
			if (strcmp(o->name, key) == 0)
				break;
		if (o->name == NULL || o->val == O_CONFIG || o->val == O_CHECK ||
		    o->val == O_VERSION || o->val == 'h') {
			fprintf(stderr, "airlockd: %s:%u: unknown key '%s'\n", path, lineno, key);
			goto out;
		}
		if (o->has_arg == no_argument) {
			if (parse_bool(val, &on) == -1) {
				fprintf(stderr, "airlockd: %s:%u: %s wants true or false\n", path,
				    lineno, key);
				goto out;
			}
			cfg->verbose = on;
			continue;
		}
		if (o->val == O_DB && db_has_password(val) &&
		    (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
			fprintf(stderr,
			    "airlockd: config file %s sets a database password but is open "
			    "to group or others (mode %04o): chmod 600 it, or use db-file\n",
			    path, (unsigned)(st.st_mode & 07777));
			goto out;
		}
		if (apply(cfg, o->val, val) == -1) {
			fprintf(stderr, "airlockd: %s:%u: bad value for %s\n", path, lineno, key);
			goto out;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "airlockd: config file %s: %s\n", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	explicit_bzero(line, sizeof(line));
	fclose(f);
	return rc;
}

int
config_parse(struct config *cfg, int argc, char **argv)
{
	static const struct {
		const char *name;
		int opt;
	} env[] = {
		{ "AIRLOCK_LISTEN", O_LISTEN },
		{ "AIRLOCK_DB", O_DB },
		{ "AIRLOCK_TOOLS", O_TOOLS },
		{ "AIRLOCK_ADMIN_KEY_FILE", O_ADMIN },
		{ "AIRLOCK_ALLOW_ORIGINS", O_ORIGIN },
		{ "AIRLOCK_TRUST_PROXY", O_TRUST },
		{ "AIRLOCK_DB_FILE", O_DB_FILE },
	};
	const char *v, *file = NULL;
	size_t i;
	int opt;

	memset(cfg, 0, sizeof(*cfg));
	applying = origins_from = SRC_DEFAULT;
	strlcpy(cfg->listen_host, "127.0.0.1", sizeof(cfg->listen_host));
	cfg->listen_port = 8080;
	strlcpy(cfg->tools_dir, "tools", sizeof(cfg->tools_dir));
	cfg->max_body = 1 << 20;
	cfg->max_depth = 32;
	cfg->max_batch = 50;
	cfg->conn_timeout = 30;
	cfg->max_conns = 1024;
	cfg->http_threads = 2;
	cfg->db_workers = 8;
	cfg->queue_max = 4096;
	cfg->queue_per_key = 64;
	cfg->grace = 10;
	cfg->max_conns_per_client = 64;
	cfg->key_ttl = 86400;
	cfg->key_waiters = 8;
	cfg->key_waiters_tenant = 64;
	cfg->sandboxes = 4;
	cfg->sandboxes_per_tenant = 2;
	cfg->warm_max = 4;
	cfg->warm_per_tenant = 1;
	cfg->rate_client = 100;
	cfg->burst_client = 200;
	cfg->rate_token = 20;
	cfg->burst_token = 40;
	cfg->rate_tenant = 100;
	cfg->burst_tenant = 200;

	/* The file first (--config, else AIRLOCK_CONFIG), then the environment, then the
	 * flags; --help and --version answer before anything is read. */
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "vh", options, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage, stdout);
			return 1;
		}
		if (opt == O_VERSION) {
			printf("airlockd %s\n", AIRLOCK_VERSION);
			return 1;
		}
		if (opt == O_CONFIG)
			file = optarg;
		else if (opt == O_CHECK)
			cfg->check_only = 1;
	}
	opterr = 1;
	if (file == NULL && (v = getenv("AIRLOCK_CONFIG")) != NULL && *v != '\0')
		file = v;
	if (file != NULL) {
		applying = SRC_FILE;
		if (set_string(cfg->config_file, sizeof(cfg->config_file), file, "--config") ==
			-1 ||
		    read_file(cfg, file) == -1)
			return -2;
	}
	applying = SRC_ENV;
	for (i = 0; i < sizeof(env) / sizeof(env[0]); i++)
		if ((v = getenv(env[i].name)) != NULL && apply(cfg, env[i].opt, v) == -1)
			return -1;
	applying = SRC_FLAGS;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "vh", options, NULL)) != -1) {
		if (opt == O_CONFIG || opt == O_CHECK)
			continue;
		if (opt == '?' || apply(cfg, opt, optarg) == -1) {
			fputs(usage, stderr);
			return -1;
		}
		/* A password on the command line is readable by every local user in
		 * /proc/PID/cmdline: wipe it from there now (main warns), as the copy is made. */
		if (opt == O_DB && db_has_password(optarg)) {
			cfg->db_password_in_argv = 1;
			explicit_bzero(optarg, strlen(optarg));
		}
	}
	if (optind < argc) {
		fprintf(stderr, "airlockd: unexpected argument %s\n", argv[optind]);
		return -1;
	}
	return 0;
}
