/*
 * metrics.c: what /metrics shows.  Counters and histograms live here, in fixed tables under
 * one mutex (a call adds to a few numbers; no allocation on the request path), and are
 * rendered in the Prometheus text exposition format.  Label values come from the code (a
 * method of the table, a tool of the catalog, a reason of the documented set), never raw
 * from a request, and are escaped all the same.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/metrics.h"

#define CALL_SLOTS 2048 /* (method, tool, outcome, reason) series */
#define LAT_SLOTS 512	/* (method, tool) latency histograms */
#define TOOL_SLOTS 512	/* per-tool counters of results */
#define FULL(n, slots) ((n) >= (slots)*3 / 4)

static const double lat_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
	2.5, 5, 10 };
#define LAT_N (sizeof(lat_bounds) / sizeof(lat_bounds[0]))
static const double batch_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512 };
#define BATCH_N (sizeof(batch_bounds) / sizeof(batch_bounds[0]))
static const double flush_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
	0.5, 1, 2.5 };
#define FLUSH_N (sizeof(flush_bounds) / sizeof(flush_bounds[0]))

struct histogram {
	unsigned long bucket[16]; /* per bound, not cumulative; rendered cumulative */
	unsigned long count;
	double sum;
};

struct call_series {
	int is_used;
	char method[40], tool[72], outcome[16], reason[32];
	unsigned long n;
};

struct lat_series {
	int is_used;
	char method[40], tool[72];
	struct histogram h;
};

struct tool_series {
	int is_used;
	char tool[72];
	unsigned long dry_runs, plans_made, plans_committed, replays;
};

static const char *const scopes[] = { "client", "token", "tenant", "other" };
#define N_SCOPES (sizeof(scopes) / sizeof(scopes[0]))
static const char *const limits[] = { "none", "wall", "cpu", "memory", "pids", "fsize", "output",
	"other" };
#define N_LIMITS (sizeof(limits) / sizeof(limits[0]))

static struct {
	pthread_mutex_t lock;
	struct call_series calls[CALL_SLOTS];
	size_t n_calls;
	struct lat_series lat[LAT_SLOTS];
	size_t n_lat;
	struct tool_series tools[TOOL_SLOTS];
	size_t n_tools;
	unsigned long counters[METRICS_COUNTER_MAX];
	unsigned long rate_limited[N_SCOPES];
	unsigned long sandbox_runs[N_LIMITS];
	struct histogram batch, flush;
} m = { .lock = PTHREAD_MUTEX_INITIALIZER };

static atomic_ulong served[6]; /* by status class: 1xx..5xx, index 0 unused */

/* FNV-1a over the labels, each followed by a separator. */
static uint32_t
hash_labels(const char *const *labels, size_t n)
{
	uint32_t h = 2166136261u;
	const char *p;
	size_t i;

	for (i = 0; i < n; i++) {
		for (p = labels[i]; *p != '\0'; p++)
			h = (h ^ (unsigned char)*p) * 16777619u;
		h = (h ^ 0xff) * 16777619u;
	}
	return h;
}

static void
observe(struct histogram *h, const double *bounds, size_t nb, double v)
{
	size_t i;

	for (i = 0; i < nb && v > bounds[i]; i++)
		;
	if (i < nb)
		h->bucket[i]++;
	h->count++;
	h->sum += v;
}

/* The slot of (method, tool, outcome, reason), made when new; NULL when full.  Under m.lock. */
static struct call_series *
call_slot(const char *method, const char *tool, const char *outcome, const char *reason)
{
	const char *labels[4] = { method, tool, outcome, reason };
	struct call_series *s;
	uint32_t i, h = hash_labels(labels, 4);
	size_t probe;

	for (probe = 0; probe < CALL_SLOTS; probe++) {
		i = (h + (uint32_t)probe) % CALL_SLOTS;
		s = &m.calls[i];
		if (!s->is_used) {
			if (m.n_calls == CALL_SLOTS - 1)
				return NULL;
			s->is_used = 1;
			m.n_calls++;
			strlcpy(s->method, method, sizeof(s->method));
			strlcpy(s->tool, tool, sizeof(s->tool));
			strlcpy(s->outcome, outcome, sizeof(s->outcome));
			strlcpy(s->reason, reason, sizeof(s->reason));
			return s;
		}
		if (strcmp(s->method, method) == 0 && strcmp(s->tool, tool) == 0 &&
		    strcmp(s->outcome, outcome) == 0 && strcmp(s->reason, reason) == 0)
			return s;
	}
	return NULL;
}

static struct lat_series *
lat_slot(const char *method, const char *tool)
{
	const char *labels[2] = { method, tool };
	struct lat_series *s;
	uint32_t i, h = hash_labels(labels, 2);
	size_t probe;

	for (probe = 0; probe < LAT_SLOTS; probe++) {
		i = (h + (uint32_t)probe) % LAT_SLOTS;
		s = &m.lat[i];
		if (!s->is_used) {
			if (m.n_lat == LAT_SLOTS - 1)
				return NULL;
			s->is_used = 1;
			m.n_lat++;
			strlcpy(s->method, method, sizeof(s->method));
			strlcpy(s->tool, tool, sizeof(s->tool));
			return s;
		}
		if (strcmp(s->method, method) == 0 && strcmp(s->tool, tool) == 0)
			return s;
	}
	return NULL;
}

static struct tool_series *
tool_slot(const char *tool)
{
	const char *labels[1] = { tool };
	struct tool_series *s;
	uint32_t i, h = hash_labels(labels, 1);
	size_t probe;

	for (probe = 0; probe < TOOL_SLOTS; probe++) {
		i = (h + (uint32_t)probe) % TOOL_SLOTS;
		s = &m.tools[i];
		if (!s->is_used) {
			if (m.n_tools == TOOL_SLOTS - 1)
				return NULL;
			s->is_used = 1;
			m.n_tools++;
			strlcpy(s->tool, tool, sizeof(s->tool));
			return s;
		}
		if (strcmp(s->tool, tool) == 0)
			return s;
	}
	return NULL;
}

void
metrics_http_answered(int status)
{
	if (status >= 100 && status < 600)
		atomic_fetch_add(&served[status / 100], 1);
}

void
metrics_call(const char *method, const char *tool, const char *outcome, const char *reason,
    double seconds)
{
	struct call_series *c;
	struct lat_series *l;

	tool = tool ? tool : "";
	reason = reason ? reason : "";
	pthread_mutex_lock(&m.lock);
	/* Past three quarters of the table, new tools share one series: the catalog, not the
	 * callers, bounds the label values, but a catalog reloaded many times could grow. */
	if (FULL(m.n_calls, CALL_SLOTS) && *tool != '\0')
		tool = "_other";
	if ((c = call_slot(method, tool, outcome, reason)) != NULL)
		c->n++;
	if (FULL(m.n_lat, LAT_SLOTS) && *tool != '\0')
		tool = "_other";
	if ((l = lat_slot(method, tool)) != NULL)
		observe(&l->h, lat_bounds, LAT_N, seconds < 0 ? 0 : seconds);
	pthread_mutex_unlock(&m.lock);
}

void
metrics_call_result(const char *tool, int is_dry_run, int has_plan, int is_replayed)
{
	struct tool_series *s;

	tool = tool ? tool : "";
	pthread_mutex_lock(&m.lock);
	if (FULL(m.n_tools, TOOL_SLOTS))
		tool = "_other";
	if ((s = tool_slot(tool)) != NULL) {
		if (is_replayed)
			s->replays++;
		else if (is_dry_run) {
			s->dry_runs++;
			if (has_plan)
				s->plans_made++;
		} else if (has_plan)
			s->plans_committed++;
	}
	pthread_mutex_unlock(&m.lock);
}

void
metrics_count(enum metrics_counter c)
{
	if ((unsigned)c >= METRICS_COUNTER_MAX)
		return;
	pthread_mutex_lock(&m.lock);
	m.counters[c]++;
	pthread_mutex_unlock(&m.lock);
}

void
metrics_rate_limited(const char *key, unsigned n)
{
	size_t i, len = strcspn(key, ":");

	for (i = 0; i < N_SCOPES - 1; i++)
		if (strlen(scopes[i]) == len && strncmp(key, scopes[i], len) == 0)
			break;
	pthread_mutex_lock(&m.lock);
	m.rate_limited[i] += n;
	pthread_mutex_unlock(&m.lock);
}

void
metrics_sandbox_run(const char *limit)
{
	size_t i = 0;

	if (limit != NULL)
		for (i = 1; i < N_LIMITS - 1; i++)
			if (strcmp(limit, limits[i]) == 0)
				break;
	pthread_mutex_lock(&m.lock);
	m.sandbox_runs[i]++;
	pthread_mutex_unlock(&m.lock);
}

void
metrics_audit_flush(size_t records, double seconds)
{
	pthread_mutex_lock(&m.lock);
	observe(&m.batch, batch_bounds, BATCH_N, (double)records);
	observe(&m.flush, flush_bounds, FLUSH_N, seconds < 0 ? 0 : seconds);
	pthread_mutex_unlock(&m.lock);
}

void
metrics_escape(const char *v, char *out, size_t len)
{
	size_t o = 0;

	if (len == 0)
		return;
	for (; *v != '\0'; v++) {
		const char *rep = *v == '\\' ? "\\\\"
		    : *v == '"'		     ? "\\\""
		    : *v == '\n'	     ? "\\n"
					     : NULL;
		size_t n = rep ? 2 : 1;

		if (o + n >= len)
			break;
		if (rep != NULL)
			memcpy(out + o, rep, 2);
		else
			out[o] = *v;
		o += n;
	}
	out[o] = '\0';
}

static void
head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A histogram's samples; labels is "" or `a="x",` (escaped, with the trailing comma). */
static void
put_histogram(FILE *f, const char *name, const char *labels, const struct histogram *h,
    const double *bounds, size_t nb)
{
	unsigned long cum = 0;
	size_t i;

	for (i = 0; i < nb; i++) {
		cum += h->bucket[i];
		fprintf(f, "%s_bucket{%sle=\"%g\"} %lu\n", name, labels, bounds[i], cum);
	}
	fprintf(f, "%s_bucket{%sle=\"+Inf\"} %lu\n", name, labels, h->count);
	if (labels[0] != '\0') {
		/* Drop the trailing comma for the plain series. */
		fprintf(f, "%s_sum{%.*s} %.6f\n%s_count{%.*s} %lu\n", name, (int)strlen(labels) - 1,
		    labels, h->sum, name, (int)strlen(labels) - 1, labels, h->count);
	} else
		fprintf(f, "%s_sum %.6f\n%s_count %lu\n", name, h->sum, name, h->count);
}

static void
render_pools(FILE *f, const struct metrics_gauges *g)
{
	static const char *const families[][2] = {
		{ "airlock_pool_workers",
		    "Workers of each pool (db: database calls; sandbox: "
		    "code tools), each with its own database connection." },
		{ "airlock_pool_busy", "Workers running a call now." },
		{ "airlock_pool_waiting", "Calls queued for a worker." },
	};
	static const char *const pools[] = { "db", "sandbox" };
	size_t i, k;

	head(f, "airlock_db_pending", "gauge",
	    "Calls waiting for or running on a database "
	    "worker.");
	fprintf(f, "airlock_db_pending %zu\n", g->pool[0][1] + g->pool[0][2]);
	for (i = 0; i < 3; i++) {
		head(f, families[i][0], "gauge", families[i][1]);
		for (k = 0; k < 2; k++)
			if (g->has_pool[k])
				fprintf(f, "%s{pool=\"%s\"} %zu\n", families[i][0], pools[k],
				    g->pool[k][i]);
	}
}

/* The tables, copied under the lock and rendered outside it. */
static void
render_calls(FILE *f)
{
	char meth[96], tool[160], reason[80], labels[400];
	struct call_series *calls = NULL;
	struct lat_series *lat = NULL;
	struct tool_series *tools = NULL;
	size_t i;

	calls = malloc(sizeof(m.calls));
	lat = malloc(sizeof(m.lat));
	tools = malloc(sizeof(m.tools));
	if (calls == NULL || lat == NULL || tools == NULL)
		goto done;
	pthread_mutex_lock(&m.lock);
	memcpy(calls, m.calls, sizeof(m.calls));
	memcpy(lat, m.lat, sizeof(m.lat));
	memcpy(tools, m.tools, sizeof(m.tools));
	pthread_mutex_unlock(&m.lock);

	head(f, "airlock_calls_total", "counter",
	    "JSON-RPC calls by method, tool and outcome "
	    "(ok, tool_error, refused, error), with the reason of each that is not ok.");
	for (i = 0; i < CALL_SLOTS; i++) {
		if (!calls[i].is_used)
			continue;
		metrics_escape(calls[i].method, meth, sizeof(meth));
		metrics_escape(calls[i].tool, tool, sizeof(tool));
		metrics_escape(calls[i].reason, reason, sizeof(reason));
		fprintf(f,
		    "airlock_calls_total{method=\"%s\",tool=\"%s\",outcome=\"%s\","
		    "reason=\"%s\"} %lu\n",
		    meth, tool, calls[i].outcome, reason, calls[i].n);
	}
	head(f, "airlock_call_duration_seconds", "histogram",
	    "How long calls took, from "
	    "their start on a worker to their answer, by method and tool.");
	for (i = 0; i < LAT_SLOTS; i++) {
		if (!lat[i].is_used)
			continue;
		metrics_escape(lat[i].method, meth, sizeof(meth));
		metrics_escape(lat[i].tool, tool, sizeof(tool));
		snprintf(labels, sizeof(labels), "method=\"%s\",tool=\"%s\",", meth, tool);
		put_histogram(f, "airlock_call_duration_seconds", labels, &lat[i].h, lat_bounds,
		    LAT_N);
	}
	{
		static const struct {
			const char *name, *help;
			size_t off;
		} fam[] = {
			{ "airlock_dry_runs_total",
			    "Calls answered as previews (dry-runs), by "
			    "tool.",
			    offsetof(struct tool_series, dry_runs) },
			{ "airlock_plans_made_total",
			    "Write previews that returned a plan_id, by "
			    "tool.",
			    offsetof(struct tool_series, plans_made) },
			{ "airlock_plans_committed_total",
			    "Writes committed against a plan_id, by "
			    "tool.",
			    offsetof(struct tool_series, plans_committed) },
			{ "airlock_idempotent_replays_total",
			    "Keyed writes answered from their "
			    "stored response (a retry), by tool.",
			    offsetof(struct tool_series, replays) },
		};
		size_t k;

		for (k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
			head(f, fam[k].name, "counter", fam[k].help);
			for (i = 0; i < TOOL_SLOTS; i++) {
				if (!tools[i].is_used)
					continue;
				metrics_escape(tools[i].tool, tool, sizeof(tool));
				fprintf(f, "%s{tool=\"%s\"} %lu\n", fam[k].name, tool,
				    *(const unsigned long *)(const void *)((const char *)&tools[i] +
					fam[k].off));
			}
		}
	}
done:
	free(calls);
	free(lat);
	free(tools);
}

char *
metrics_render(const struct metrics_gauges *g, size_t *len)
{
	unsigned long counters[METRICS_COUNTER_MAX], rate[N_SCOPES], runs[N_LIMITS];
	struct histogram batch, flush;
	char *buf = NULL;
	size_t i;
	FILE *f;

	if ((f = open_memstream(&buf, len)) == NULL)
		return NULL;
	head(f, "airlock_http_requests_total", "counter",
	    "HTTP requests answered, by status "
	    "class.");
	fprintf(f,
	    "airlock_http_requests_total{class=\"2xx\"} %lu\n"
	    "airlock_http_requests_total{class=\"4xx\"} %lu\n"
	    "airlock_http_requests_total{class=\"5xx\"} %lu\n",
	    atomic_load(&served[2]), atomic_load(&served[4]), atomic_load(&served[5]));
	head(f, "airlock_requests_in_flight", "gauge", "Requests begun and not yet answered.");
	fprintf(f, "airlock_requests_in_flight %u\n", g->in_flight);
	head(f, "airlock_http_connections", "gauge", "Client connections open.");
	fprintf(f, "airlock_http_connections %u\n", g->connections);
	render_pools(f, g);
	head(f, "airlock_seal_lag_seconds", "gauge",
	    "Seconds since the audit sealer's last "
	    "round ran.");
	fprintf(f, "airlock_seal_lag_seconds %.3f\n", g->seal_lag);
	head(f, "airlock_seal_stalled", "gauge",
	    "1 while sealing has not run for too long "
	    "(the alarm).");
	fprintf(f, "airlock_seal_stalled %d\n", g->is_seal_stalled);
	render_calls(f);

	pthread_mutex_lock(&m.lock);
	memcpy(counters, m.counters, sizeof(counters));
	memcpy(rate, m.rate_limited, sizeof(rate));
	memcpy(runs, m.sandbox_runs, sizeof(runs));
	batch = m.batch;
	flush = m.flush;
	pthread_mutex_unlock(&m.lock);
	head(f, "airlock_db_reconnects_total", "counter",
	    "Worker connections replaced after "
	    "they broke.");
	fprintf(f, "airlock_db_reconnects_total %lu\n", counters[METRICS_DB_RECONNECTS]);
	head(f, "airlock_pool_rejected_total", "counter",
	    "Calls refused at once because a "
	    "worker queue was full (429 concurrency_limited).");
	fprintf(f, "airlock_pool_rejected_total %lu\n", counters[METRICS_POOL_REJECTED]);
	head(f, "airlock_reverts_total", "counter", "Reverts committed.");
	fprintf(f, "airlock_reverts_total %lu\n", counters[METRICS_REVERTS]);
	head(f, "airlock_rate_limited_total", "counter",
	    "Calls refused by a rate limit, by "
	    "scope (client address, token, tenant).");
	for (i = 0; i < N_SCOPES; i++)
		fprintf(f, "airlock_rate_limited_total{scope=\"%s\"} %lu\n", scopes[i], rate[i]);
	head(f, "airlock_sandbox_runs_total", "counter",
	    "Code tool sandboxes that ran to an "
	    "end, by the limit that stopped them (none: the program ended on its own).");
	for (i = 0; i < N_LIMITS; i++)
		fprintf(f, "airlock_sandbox_runs_total{limit=\"%s\"} %lu\n", limits[i], runs[i]);
	head(f, "airlock_sandbox_failures_total", "counter",
	    "Sandboxes that could not start "
	    "or be waited for (503 backend_unavailable).");
	fprintf(f, "airlock_sandbox_failures_total %lu\n", counters[METRICS_SANDBOX_FAILED]);
	head(f, "airlock_audit_batch_records", "histogram",
	    "Records per audit batch (one "
	    "flush makes a batch durable).");
	put_histogram(f, "airlock_audit_batch_records", "", &batch, batch_bounds, BATCH_N);
	head(f, "airlock_audit_flush_seconds", "histogram",
	    "How long writing one audit batch "
	    "took, commit included.");
	put_histogram(f, "airlock_audit_flush_seconds", "", &flush, flush_bounds, FLUSH_N);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
