/* config.c: airlockd's flags and environment, with defaults that are safe on a laptop. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/config.h"

static const char usage[] =
"usage: airlockd [options]\n"
"  --listen HOST:PORT     address to serve (AIRLOCK_LISTEN; default 127.0.0.1:8080)\n"
"  --db CONNINFO          libpq URL or conninfo of the gateway role (AIRLOCK_DB;\n"
"                         default: libpq's PGHOST, PGUSER, ... environment)\n"
"  --tools DIR            tool catalog (AIRLOCK_TOOLS; default ./tools)\n"
"  --admin-key-file FILE  admin credential, re-read on change (AIRLOCK_ADMIN_KEY_FILE)\n"
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
"  --key-waiters K/T      duplicates waiting on one key, and keyed writes in flight per\n"
"                         tenant, in this instance (default 8/64); more get 409/429 at once\n"
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

enum { O_LISTEN = 256, O_DB, O_TOOLS, O_ADMIN, O_ORIGIN, O_BODY, O_DEPTH, O_BATCH, O_TIMEOUT,
	O_CONNS, O_THREADS, O_WORKERS, O_QUEUE, O_QUEUE_KEY, O_RATE_CLIENT, O_RATE_TOKEN,
	O_RATE_TENANT, O_SANDBOXES, O_SANDBOXES_TENANT, O_KEY_TTL, O_KEY_WAITERS, O_GRACE, O_CONNS_CLIENT, O_TRUST,
	O_WARM, O_WARM_TENANT };

static const struct option options[] = {
	{ "listen", required_argument, NULL, O_LISTEN },
	{ "db", required_argument, NULL, O_DB },
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
	if (end == s || *end != '\0' || *burst < 0 || *burst > 1e6 ||
	    (*rate > 0 && *burst < 1))
		goto bad;
	return 0;
bad:
	fprintf(stderr, "airlockd: %s wants RATE/BURST, e.g. 20/40\n", what);
	return -1;
}

static int
add_origins(struct config *cfg, const char *list)
{
	char buf[4096], *p, *tok, *save = NULL;

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
		return set_string(cfg->db, sizeof(cfg->db), arg, "--db");
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
		if (set_pair(&cfg->key_waiters, &cfg->key_waiters_tenant, arg, "--key-waiters") == -1)
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

int
config_parse(struct config *cfg, int argc, char **argv)
{
	static const struct { const char *name; int opt; } env[] = {
		{ "AIRLOCK_LISTEN", O_LISTEN }, { "AIRLOCK_DB", O_DB },
		{ "AIRLOCK_TOOLS", O_TOOLS }, { "AIRLOCK_ADMIN_KEY_FILE", O_ADMIN },
		{ "AIRLOCK_ALLOW_ORIGINS", O_ORIGIN }, { "AIRLOCK_TRUST_PROXY", O_TRUST },
	};
	const char *v;
	size_t i;
	int opt;

	memset(cfg, 0, sizeof(*cfg));
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

	for (i = 0; i < sizeof(env) / sizeof(env[0]); i++)
		if ((v = getenv(env[i].name)) != NULL && apply(cfg, env[i].opt, v) == -1)
			return -1;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "vh", options, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage, stdout);
			return 1;
		}
		if (opt == '?' || apply(cfg, opt, optarg) == -1) {
			fputs(usage, stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "airlockd: unexpected argument %s\n", argv[optind]);
		return -1;
	}
	return 0;
}
