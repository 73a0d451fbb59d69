/* code.c: code tools: the model's program, run in a fresh sandbox under the caller's token. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/code.h"
#include "airlock/log.h"
#include "airlock/metrics.h"
#include "airlock/read.h"
#include "airlock/sandbox.h"
#include "code_int.h"

#define EGRESS_MAX 256 /* attempts kept per call; the rest are only counted in the log */
#define HOST_MAX 255   /* bytes of a requested host name kept in the record */
#define RETRY_BUSY_S 1 /* retryAfterSeconds when the tenant's sandboxes are all busy */
#define RETRY_DOWN_S 5 /* retryAfterSeconds when the sandbox cannot start */

/* What the proxy reports during one run; on_egress appends from the proxy's thread. */
struct egress_log {
	pthread_mutex_t lock;
	json_t *list;
	unsigned long dropped;
};

/* The manifest's limit names, and where each goes in struct sb_limits (with its unit). */
enum { L_WALL, L_CPU, L_MEM, L_PIDS, L_STDOUT, L_STDERR, L_COUNT };
static const struct {
	const char *key;
	int64_t unit;
} limit_names[L_COUNT] = {
	{ "time_s", 1000 },
	{ "cpu_s", 1000 },
	{ "mem_mb", 1024 * 1024 },
	{ "pids", 1 },
	{ "stdout_max", 1 },
	{ "stderr_max", 1 },
};

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0 when it is not one. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/*
 * A program's bytes as a JSON string: invalid UTF-8 and NUL bytes become U+FFFD, so any
 * output can be answered and recorded.  Returns a new reference, or NULL when out of memory.
 */
static json_t *
text_json(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	char *buf;
	size_t i, k, o = 0;
	json_t *v;

	if ((buf = malloc(n * 3 + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i += k) {
		k = u[i] == 0 ? 0 : utf8_len(u + i, n - i);
		if (k == 0) {
			memcpy(buf + o, "\xef\xbf\xbd", 3);
			o += 3;
			k = 1;
		} else {
			memcpy(buf + o, s + i, k);
			o += k;
		}
	}
	v = json_stringn(buf, o);
	free(buf);
	return v;
}

/* Records one egress attempt.  Runs on the proxy's thread. */
static void
on_egress(void *arg, const struct sb_egress *ev)
{
	struct egress_log *log = arg;
	const char *host = ev->host != NULL ? ev->host : "";
	json_t *entry;

	entry = json_pack("{s:o, s:i, s:b, s:s}", "host", text_json(host, strnlen(host, HOST_MAX)),
	    "port", (int)ev->port, "allowed", ev->is_allowed, "reason",
	    ev->reason != NULL ? ev->reason : "");
	pthread_mutex_lock(&log->lock);
	if (entry != NULL && json_array_size(log->list) < EGRESS_MAX)
		json_array_append(log->list, entry);
	else
		log->dropped++;
	pthread_mutex_unlock(&log->lock);
	json_decref(entry);
}

/* The tool's limits: the sandbox's defaults, overridden by the manifest's code.limits. */
void
code_limits(json_t *code, struct sb_limits *l)
{
	json_t *limits = json_object_get(code, "limits"), *v;
	int64_t n;
	int i;

	sb_limits_default(l);
	for (i = 0; i < L_COUNT; i++) {
		if (!json_is_integer(v = json_object_get(limits, limit_names[i].key)))
			continue;
		n = (int64_t)json_integer_value(v) * limit_names[i].unit;
		switch (i) {
		case L_WALL:
			l->wall_ms = n;
			break;
		case L_CPU:
			l->cpu_ms = n;
			break;
		case L_MEM:
			l->mem_bytes = n;
			break;
		case L_PIDS:
			l->pids = n;
			break;
		case L_STDOUT:
			l->stdout_max = (size_t)n;
			break;
		default:
			l->stderr_max = (size_t)n;
			break;
		}
	}
}

/* The limits in the manifest's names and units, for the plan.  Returns a new reference. */
static void
tool_limits(const struct tool *t, struct sb_limits *l)
{
	code_limits(t->code, l);
}

static json_t *
limits_json(const struct sb_limits *l)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "time_s",
	    (json_int_t)(l->wall_ms / 1000), "cpu_s", (json_int_t)(l->cpu_ms / 1000), "mem_mb",
	    (json_int_t)(l->mem_bytes / (1024 * 1024)), "pids", (json_int_t)l->pids, "stdout_max",
	    (json_int_t)l->stdout_max, "stderr_max", (json_int_t)l->stderr_max);
}

/* A tool error the model can correct, naming the argument at fault. */
static void
bad_argument(struct rpc_error *err, const char *argument, const char *msg)
{
	rpc_error_set(err, 0, "invalid_arguments", "%s", msg);
	err->data = json_pack("{s:s}", "argument", argument);
}

/*
 * Resolves and checks input_tool (borrowed) for p: a read tool of cat, granted, its
 * arguments valid and matching p's bindings.  Returns 0 with *it (borrowed from cat) and
 * *iargs (new), or -1 with err and nothing held.
 */
static int
check_input_tool(const struct catalog *cat, const struct principal *p, json_t *spec,
    const struct tool **it, json_t **iargs, struct rpc_error *err)
{
	const char *name, *key, *bad = NULL;
	char msg[200];
	json_t *v;

	*iargs = NULL;
	name = json_string_value(json_object_get(spec, "name"));
	json_object_foreach (spec, key, v) {
		if (strcmp(key, "name") != 0 && strcmp(key, "arguments") != 0)
			name = NULL;
	}
	v = json_object_get(spec, "arguments");
	if (!json_is_object(spec) || name == NULL || (v != NULL && !json_is_object(v))) {
		bad_argument(err, "input_tool",
		    "input_tool must be {\"name\": a read tool, "
		    "\"arguments\": its arguments}");
		return -1;
	}
	*it = tool_find(cat, name);
	if (*it == NULL || (*it)->kind != TOOL_READ) {
		snprintf(msg, sizeof(msg), "input_tool: no read tool named '%.64s'", name);
		bad_argument(err, "input_tool", msg);
		goto fail;
	}
	if (!auth_is_granted(p, (*it)->name)) {
		rpc_error_set(err, RPC_FORBIDDEN, "tool_not_granted",
		    "This token does not grant tool '%s' (input_tool)", (*it)->name);
		goto fail;
	}
	if ((*iargs = tool_check_args(*it, v, &bad, msg, sizeof(msg))) == NULL) {
		rpc_error_set(err, 0, "invalid_arguments", "input_tool '%s': %s", (*it)->name, msg);
		err->data =
		    json_pack("{s:s, s:s?}", "argument", "input_tool", "input_argument", bad);
		goto fail;
	}
	if (auth_check_bindings(p, *it, *iargs, err) == -1)
		goto fail;
	return 0;
fail:
	json_decref(*iargs);
	*iargs = NULL;
	return -1;
}

/*
 * Runs the input tool (checked by check_input_tool) as p's tenant, counting it against p's
 * quota.  Returns 0 with *input a new string (the rows as JSON) and *summary a new object
 * {name, row_count, truncated}, or -1 with err.
 */
static int
read_input(struct db *db, const struct principal *p, const struct catalog *cat,
    const struct tool *it, json_t *iargs, const char *call_id, char **input, json_t **summary,
    struct rpc_error *err)
{
	struct principal counted = *p; /* borrows p's JSON: never cleared */
	json_t *rows = NULL;
	int truncated;

	*input = NULL;
	*summary = NULL;
	if (auth_count_call(db, &counted, err) == -1)
		return -1;
	if (read_run(db, it, cat->version, p->role, call_id, iargs, NULL, &rows, &truncated, err) ==
	    -1)
		return -1;
	*input = json_dumps(rows, JSON_COMPACT);
	*summary = json_pack("{s:s, s:I, s:b}", "name", it->name, "row_count",
	    (json_int_t)json_array_size(rows), "truncated", truncated);
	json_decref(rows);
	if (*input == NULL || *summary == NULL) {
		free(*input);
		json_decref(*summary);
		*input = NULL;
		*summary = NULL;
		rpc_error_internal(err);
		return -1;
	}
	return 0;
}

/* stdout as the result carries it: parsed when the whole of it is JSON, else text. */
static json_t *
stdout_json(const struct sb_result *res)
{
	json_t *v;

	if (!res->out_truncated && res->out_len > 0 &&
	    (v = json_loadb(res->out, res->out_len, JSON_DECODE_ANY, NULL)) != NULL)
		return v;
	return text_json(res->out, res->out_len);
}

/* The structuredContent of a finished run (without call_id).  Returns a new reference. */
static json_t *
outcome_json(const struct sb_result *res)
{
	json_t *hit = json_array();
	int l;

	for (l = SB_LIMIT_WALL; l <= SB_LIMIT_OUTPUT; l++)
		if (res->limits_hit & SB_LIMIT_BIT(l))
			json_array_append_new(hit, json_string(sb_limit_name((enum sb_limit)l)));
	return json_pack("{s:b, s:o, s:i, s:o, s:o, s:o, s:b, s:o, s:b, s:I, s:o, s:o}", "dry_run",
	    0, "exit_code", res->signal != 0 ? json_null() : json_integer(res->exit_code), "signal",
	    res->signal, "limit",
	    res->limit != SB_LIMIT_NONE ? json_string(sb_limit_name(res->limit)) : json_null(),
	    "limits_hit", hit, "stdout", stdout_json(res), "stdout_truncated", res->out_truncated,
	    "stderr", text_json(res->err, res->err_len), "stderr_truncated", res->err_truncated,
	    "wall_ms", (json_int_t)(res->wall_us / 1000), "cpu_ms",
	    res->cpu_us < 0 ? json_null() : json_integer(res->cpu_us / 1000), "peak_memory_bytes",
	    res->mem_peak < 0 ? json_null() : json_integer(res->mem_peak));
}

static void
sandbox_unavailable(struct rpc_error *err)
{
	rpc_error_retry(err, RPC_UNAVAILABLE, "backend_unavailable", RETRY_DOWN_S,
	    "The sandbox is unavailable; retry later");
}

/*
 * The interpreters read the program from descriptor SB_PROGRAM_FD (3) rather than by
 * opening /dev/fd/3: reopening a pipe through /proc checks the pipe's owner, and a
 * launcher running as root creates it as root while the program runs as another uid.
 * Python runs it as __main__ under the name <program>; sh evaluates it with $0 "program".
 */
static const char py_boot[] =
    "import sys\n"
    "sys.argv[0] = '<program>'\n"
    "with open(3, encoding='utf-8') as f:\n"
    "    src = f.read()\n"
    "exec(compile(src, '<program>', 'exec'), {'__name__': '__main__', '__builtins__': __builtins__})\n";
static const char sh_boot[] =
    "__airlock_program=$(cat <&3) && exec 3<&- && eval \"unset __airlock_program; $__airlock_program\"";

static const char *const py_argv[] = { "python3", "-I", "-c", py_boot, NULL };
static const char *const sh_argv[] = { "sh", "-c", sh_boot, "program", NULL };

/* A new egress log, or NULL when out of memory. */
struct egress_log *
code_egress_new(void)
{
	struct egress_log *log = calloc(1, sizeof(*log));

	if (log == NULL)
		return NULL;
	if ((log->list = json_array()) == NULL || pthread_mutex_init(&log->lock, NULL) != 0) {
		json_decref(log->list);
		free(log);
		return NULL;
	}
	return log;
}

/* Frees log (its proxy stopped) and returns its attempts (a new reference). */
json_t *
code_egress_finish(struct egress_log *log, const char *tool)
{
	json_t *list;

	if (log == NULL)
		return NULL;
	if (log->dropped > 0)
		log_warn("code tool %s: %lu egress attempts beyond %d not recorded", tool,
		    log->dropped, EGRESS_MAX);
	list = log->list;
	pthread_mutex_destroy(&log->lock);
	free(log);
	return list;
}

/* The sandbox's configuration for a manifest's code object (borrowed by cfg, like allow,
 * which must hold SB_ALLOW_MAX + 1 entries). */
void
code_config(json_t *code, const struct sb_limits *lim, const char **allow, struct egress_log *log,
    struct sb_config *cfg)
{
	json_t *v;
	size_t i, n = 0;

	memset(cfg, 0, sizeof(*cfg));
	json_array_foreach (json_object_get(code, "allow"), i, v) {
		if (json_is_string(v) && n < SB_ALLOW_MAX)
			allow[n++] = json_string_value(v);
	}
	allow[n] = NULL;
	cfg->argv = strcmp(json_string_value(json_object_get(code, "interpreter")), "sh") == 0
	    ? sh_argv
	    : py_argv;
	cfg->limits = *lim;
	cfg->has_program = 1;
	cfg->stdin_fd = -1;
	cfg->allow = n > 0 ? allow : NULL;
	cfg->on_egress = on_egress;
	cfg->egress_arg = log;
	cfg->isolation = json_is_string(v = json_object_get(code, "isolation")) &&
		strcmp(json_string_value(v), "gvisor") == 0
	    ? SB_ISOLATION_GVISOR
	    : SB_ISOLATION_NAMESPACE;
}

/*
 * Runs code with t's interpreter, limits, allowlist and isolation level, input (may be
 * NULL) on its stdin, in a warm sandbox of tenant's when one is ready, else a cold one.
 * Returns 0 with *out the outcome (new), or -1 with err (503 when the launcher failed).
 * *egress receives the attempts (new array) once a spawn was tried.
 */
static int
run_sandbox(const struct tool *t, const struct sb_limits *lim, const char *tenant, const char *code,
    size_t code_len, const char *input, size_t input_len, json_t **out, json_t **egress,
    struct rpc_error *err)
{
	const char *allow[SB_ALLOW_MAX + 1];
	struct egress_log *log = NULL;
	struct sb_config cfg;
	struct sb_result res;
	struct sb_run *run = NULL;
	struct warm *w = NULL;
	char msg[512], *key;
	int rc = -1, is_warm = 0;

	*out = NULL;
	memset(&res, 0, sizeof(res));
	if ((key = code_warm_key(t->code, lim)) != NULL)
		w = code_warm_take(key, tenant);
	free(key);
	if (w != NULL) {
		is_warm = 1;
		run = w->run;
		log = w->log;
		free(w);
	} else {
		if ((log = code_egress_new()) == NULL) {
			rpc_error_internal(err);
			return -1;
		}
		code_config(t->code, lim, allow, log, &cfg);
		if (sb_spawn(&cfg, &run, msg, sizeof(msg)) == -1) {
			log_error("code tool %s: the sandbox did not start: %s", t->name, msg);
			metrics_count(METRICS_SANDBOX_FAILED);
			sandbox_unavailable(err);
			goto done;
		}
	}
	if (sb_feed(run, code, code_len, input, input_len) == -1) {
		log_error("code tool %s: cannot queue the program: out of memory", t->name);
		sandbox_unavailable(err);
		goto done;
	}
	if (sb_wait(run, &res, msg, sizeof(msg)) == -1) {
		log_error("code tool %s: the sandbox failed: %s", t->name, msg);
		metrics_count(METRICS_SANDBOX_FAILED);
		sandbox_unavailable(err);
		goto done;
	}
	metrics_sandbox_run(res.limit != SB_LIMIT_NONE ? sb_limit_name(res.limit) : NULL);
	if ((*out = outcome_json(&res)) == NULL) {
		rpc_error_internal(err);
		goto done;
	}
	rc = 0;
done:
	sb_result_release(&res);
	sb_free(run); /* stops the proxy: no callback runs after this */
	if (is_warm)
		code_warm_done(tenant);
	*egress = code_egress_finish(log, t->name);
	return rc;
}

/* Turns a finished run that failed into its tool error (err->data steals outcome). */
static void
program_error(json_t *outcome, struct rpc_error *err)
{
	const char *limit = json_string_value(json_object_get(outcome, "limit"));
	json_t *code = json_object_get(outcome, "exit_code");
	json_int_t sig = json_integer_value(json_object_get(outcome, "signal"));

	if (limit != NULL)
		rpc_error_set(err, 0, "sandbox_limit",
		    "The program was stopped by the sandbox's %s limit", limit);
	else if (json_is_integer(code))
		rpc_error_set(err, 0, "program_failed", "The program exited with status %lld",
		    (long long)json_integer_value(code));
	else
		rpc_error_set(err, 0, "program_failed", "The program was killed by signal %lld",
		    (long long)sig);
	err->data = outcome;
}

json_t *
code_run(const struct catalog *cat, const struct config *cfg, struct db *db,
    const struct principal *p, const struct tool *t, json_t *args, const char *call_id,
    int is_dry_run, json_t **egress, struct rpc_error *err)
{
	const struct tool *it = NULL;
	struct sb_limits lim;
	json_t *code, *input, *spec, *iargs = NULL, *summary = NULL, *out = NULL, *plan;
	char *input_text = NULL;
	int has_slot = 0;

	*egress = NULL;
	code = json_object_get(args, "code");
	input = json_object_get(args, "input");
	spec = json_object_get(args, "input_tool");
	if (!json_is_string(code)) {
		bad_argument(err, "code", "The program is missing: pass it as argument 'code'");
		return NULL;
	}
	if (input != NULL && spec != NULL) {
		bad_argument(err, "input_tool", "Pass either input or input_tool, not both");
		return NULL;
	}
	if (spec != NULL && check_input_tool(cat, p, spec, &it, &iargs, err) == -1)
		return NULL;
	if (input != NULL &&
	    (input_text = json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL) {
		rpc_error_internal(err);
		goto done;
	}
	tool_limits(t, &lim);
	if (is_dry_run) {
		plan = json_pack("{s:O, s:O, s:o, s:O, s:o}", "interpreter",
		    json_object_get(t->code, "interpreter"), "isolation",
		    json_object_get(t->code, "isolation"), "limits", limits_json(&lim), "allow",
		    json_object_get(t->code, "allow"), "input_bytes",
		    it != NULL
			? json_null()
			: json_integer(input_text != NULL ? (json_int_t)strlen(input_text) : 0));
		if (plan != NULL && it != NULL)
			json_object_set_new(plan, "input_tool", json_string(it->name));
		out = json_pack("{s:b, s:o}", "dry_run", 1, "plan", plan);
		if (out == NULL)
			rpc_error_internal(err);
		goto done;
	}
	if (code_slot_take(p->tenant, cfg->sandboxes_per_tenant) == -1) {
		rpc_error_retry(err, RPC_TOO_MANY, "concurrency_limited", RETRY_BUSY_S,
		    "This tenant already runs %u programs at once; retry shortly",
		    cfg->sandboxes_per_tenant);
		goto done;
	}
	has_slot = 1;
	if (it != NULL &&
	    read_input(db, p, cat, it, iargs, call_id, &input_text, &summary, err) == -1)
		goto done;
	if (run_sandbox(t, &lim, p->tenant, json_string_value(code), json_string_length(code),
		input_text, input_text != NULL ? strlen(input_text) : 0, &out, egress, err) == -1)
		goto done;
	if (summary != NULL) {
		json_object_set_new(out, "input_tool", summary);
		summary = NULL;
	}
	if (!json_is_integer(json_object_get(out, "exit_code")) ||
	    json_integer_value(json_object_get(out, "exit_code")) != 0 ||
	    !json_is_null(json_object_get(out, "limit"))) {
		program_error(out, err);
		out = NULL;
	}
done:
	if (has_slot)
		code_slot_release(p->tenant);
	free(input_text);
	json_decref(summary);
	json_decref(iargs);
	return out;
}
