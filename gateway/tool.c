/* tool.c: the tool catalog: loads the manifests in tools/, hands each part to its checker. */
/*
 * A manifest is tools/NAME.json, one JSON object:
 *
 *   name         [a-z][a-z0-9_]{0,63}, equal to the file's basename (required)
 *   description  what the tool does, for the model (required, non-empty)
 *   kind         "read" | "write" | "code" (required)
 *   arguments    the arguments' JSON Schema, a strict subset (required; see below)
 *   statement    read: one SELECT; write: one INSERT or UPDATE with RETURNING (required for
 *                read and write, refused for code).  Arguments bind by name: $customer_id.
 *   max_rows     read: row cap (more rows: truncated); write: change cap.  1..100000,
 *                default 100 (refused for code)
 *   timeout_ms   statement timeout, 1..60000, default 5000
 *   title        optional human title (default: the name with its first letter capitalised
 *                and underscores as spaces, "lookup_invoices" -> "Lookup invoices")
 *   destructive  write only, optional boolean, default true
 *   idempotent   write only, optional boolean, default false: whether calling it again
 *                with the same arguments has no further effect (idempotentHint)
 *   call_options write only, optional boolean, default true: whether tools/list shows the
 *                call options (airlock_dry_run, airlock_idempotency_key, airlock_plan_id) as
 *                arguments, for hosts that pass nothing but a tool's arguments
 *   code         code only (required there): {"interpreter": "python3" | "sh",
 *                "limits": {time_s, cpu_s, mem_mb, pids, stdout_max, stderr_max: positive
 *                integers, each optional}, "allow": ["host:port", ...] (egress allowlist),
 *                "isolation": "namespace" (bubblewrap, the default) | "gvisor" (runsc;
 *                refused when gVisor cannot start a sandbox here, which one real start,
 *                once per process, tells; checked with a connection only), "warm": 0..16
 *                sandboxes kept started ahead (default 0)}
 *   approval     write only, optional: "required", or {"above_rows": N, "argument": NAME,
 *                "above": NUMBER, "four_eyes": BOOLEAN}, each member optional (no threshold:
 *                always; argument and above go together, and NAME is an integer, number
 *                or string argument).  A commit that needs it goes through only with a plan
 *                an approver approved.
 *
 * Any other key is refused.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "airlock/log.h"
#include "airlock/tool.h"
#include "tool_int.h"

#define MAX_MANIFEST (1024 * 1024)
#define MAX_STATEMENT (64 * 1024)
#define MAX_ROWS_CAP 100000
#define DEFAULT_ROWS 100
#define DEFAULT_TIMEOUT 5000
#define MAX_TIMEOUT 60000

static const char *const manifest_keys[] = { "name", "description", "kind", "arguments",
	"statement", "max_rows", "timeout_ms", "title", "destructive", "idempotent", "call_options",
	"code", "approval", NULL };
static const char *const approval_keys[] = { "above_rows", "argument", "above", "four_eyes", NULL };

static unsigned long last_version;

/* Frees what a tool owns. */
static void
free_tool(struct tool *t)
{
	size_t k;

	free(t->description);
	free(t->title);
	free(t->approval_arg);
	json_decref(t->schema);
	json_decref(t->input_schema);
	json_decref(t->listed_schema);
	json_decref(t->output_schema);
	json_decref(t->annotations);
	json_decref(t->code);
	free(t->sql);
	for (k = 0; k < t->n_params; k++)
		free(t->params[k]);
	free(t->params);
	free(t->col_types);
	for (k = 0; t->col_names != NULL && k < t->n_cols; k++)
		free(t->col_names[k]);
	free(t->col_names);
	memset(t, 0, sizeof(*t));
}

/* "lookup_invoices" -> "Lookup invoices": a title for people when the manifest gives
 * none.  Returns a new string, or NULL when out of memory. */
static char *
humanised(const char *name)
{
	char *s = strdup(name), *p;

	if (s == NULL)
		return NULL;
	for (p = s; *p != '\0'; p++)
		if (*p == '_')
			*p = ' ';
	s[0] = (char)toupper((unsigned char)s[0]);
	return s;
}

/*
 * Reads an optional boolean key that only a write tool may carry into *out (def when
 * absent).  Returns 0, or -1 with err set.
 */
static int
write_flag(json_t *m, const char *key, int def, const struct tool *t, int *out, char *err,
    size_t errlen)
{
	json_t *v = json_object_get(m, key);

	*out = t->kind == TOOL_WRITE ? def : 0;
	if (v == NULL)
		return 0;
	if (t->kind != TOOL_WRITE) {
		log_seterr(err, errlen, "%s: %s applies to write tools only", t->file, key);
		return -1;
	}
	if (!json_is_boolean(v)) {
		log_seterr(err, errlen, "%s: %s must be true or false", t->file, key);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

/* Reads an optional integer key within lo..hi; 0, or -1 with err set. */
static int
get_uint(json_t *m, const char *key, unsigned def, unsigned lo, unsigned hi, unsigned *out,
    const char *file, char *err, size_t errlen)
{
	json_t *v = json_object_get(m, key);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		log_seterr(err, errlen, "%s: %s must be an integer from %u to %u", file, key, lo,
		    hi);
		return -1;
	}
	*out = (unsigned)json_integer_value(v);
	return 0;
}

/*
 * Reads a write's approval policy v into t: "required", or an object of approval_keys.
 * Returns 0, or -1 with the fault in err.
 */
static int
check_approval(struct tool *t, json_t *v, char *err, size_t errlen)
{
	json_t *x, *prop;
	const char *k;
	int bits;

	if (t->kind != TOOL_WRITE) {
		snprintf(err, errlen, "approval applies to write tools only");
		return -1;
	}
	t->has_approval = 1;
	if (json_is_string(v) && strcmp(json_string_value(v), "required") == 0) {
		t->is_approval_always = 1;
		return 0;
	}
	if (!json_is_object(v)) {
		snprintf(err, errlen,
		    "approval must be \"required\" or an object of above_rows, "
		    "argument and above, four_eyes");
		return -1;
	}
	json_object_foreach (v, k, x)
		if (!in_list(k, approval_keys)) {
			snprintf(err, errlen,
			    "approval: unknown key '%.64s' (known: above_rows, "
			    "argument, above, four_eyes)",
			    k);
			return -1;
		}
	if ((x = json_object_get(v, "four_eyes")) != NULL) {
		if (!json_is_boolean(x)) {
			snprintf(err, errlen, "approval: four_eyes must be true or false");
			return -1;
		}
		t->is_four_eyes = json_is_true(x);
	}
	if ((x = json_object_get(v, "above_rows")) != NULL) {
		if (!json_is_integer(x) || json_integer_value(x) < 0 ||
		    json_integer_value(x) > MAX_ROWS_CAP) {
			snprintf(err, errlen,
			    "approval: above_rows must be an integer from 0 to %d", MAX_ROWS_CAP);
			return -1;
		}
		/* Stored plus one, so that 0 (every write that changes a row) is not "none". */
		t->approval_rows = (unsigned)json_integer_value(x) + 1;
	}
	x = json_object_get(v, "argument");
	if ((x == NULL) != (json_object_get(v, "above") == NULL)) {
		snprintf(err, errlen, "approval: argument and above go together");
		return -1;
	}
	if (x != NULL) {
		prop = json_object_get(json_object_get(t->schema, "properties"),
		    json_string_value(x) ? json_string_value(x) : "");
		bits = prop != NULL ? tool_schema_type_bits(prop) : 0;
		if (!json_is_string(x) || prop == NULL ||
		    (bits & (T_INTEGER | T_NUMBER | T_STRING)) == 0) {
			snprintf(err, errlen,
			    "approval: argument must name an integer, number or "
			    "string argument of the tool");
			return -1;
		}
		if (!json_is_number(json_object_get(v, "above"))) {
			snprintf(err, errlen, "approval: above must be a number");
			return -1;
		}
		if ((t->approval_arg = strdup(json_string_value(x))) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		t->approval_above = json_number_value(json_object_get(v, "above"));
	}
	t->is_approval_always = t->approval_rows == 0 && t->approval_arg == NULL;
	return 0;
}

int
tool_needs_approval(const struct tool *t, json_t *args)
{
	json_t *v;
	const char *s;
	char *end;
	double d;

	if (!t->has_approval)
		return 0;
	if (t->is_approval_always)
		return 1;
	if (t->approval_arg == NULL)
		return 0;
	v = json_object_get(args, t->approval_arg);
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_number(v))
		return json_number_value(v) > t->approval_above;
	if (!json_is_string(v))
		return 1;
	s = json_string_value(v);
	errno = 0;
	d = strtod(s, &end);
	/* A value that does not read as a number cannot be shown to be under the threshold. */
	if (end == s || *end != '\0' || errno != 0 || isnan(d))
		return 1;
	return d > t->approval_above;
}

/*
 * Reads dir/fname into a new object, having set t->file: a regular file of known keys.
 * Returns it, or NULL with "FILE: fault" in err.
 */
static json_t *
read_manifest(const char *dir, const char *fname, struct tool *t, char *err, size_t errlen)
{
	struct stat st;
	json_error_t jerr;
	json_t *m, *v;
	const char *key;

	if (snprintf(t->file, sizeof(t->file), "%s/%s", dir, fname) >= (int)sizeof(t->file)) {
		log_seterr(err, errlen, "%s/%s: path too long", dir, fname);
		return NULL;
	}
	if (stat(t->file, &st) == -1) {
		log_seterr(err, errlen, "%s: %s", t->file, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_MANIFEST) {
		log_seterr(err, errlen, "%s: not a regular file of at most %d bytes", t->file,
		    MAX_MANIFEST);
		return NULL;
	}
	if ((m = json_load_file(t->file, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		log_seterr(err, errlen, "%s: line %d, column %d: %s", t->file, jerr.line,
		    jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(m)) {
		log_seterr(err, errlen, "%s: a manifest must be a JSON object", t->file);
		json_decref(m);
		return NULL;
	}
	json_object_foreach (m, key, v) {
		if (!in_list(key, manifest_keys)) {
			log_seterr(err, errlen,
			    "%s: unknown key '%s' (known: name, description, kind, "
			    "arguments, statement, max_rows, timeout_ms, title, destructive, idempotent, "
			    "call_options, code, approval)",
			    t->file, key);
			json_decref(m);
			return NULL;
		}
	}
	return m;
}

/*
 * Reads the name (the file's basename), description and title of manifest m into t.
 * Returns 0, or -1 with "FILE: fault" in err, or with err untouched when out of memory.
 */
static int
load_names(json_t *m, const char *fname, struct tool *t, char *err, size_t errlen)
{
	json_t *v;
	char base[80];
	size_t n;

	n = strlen(fname) - strlen(".json");
	if (n >= sizeof(base)) {
		log_seterr(err, errlen, "%s: the file name is too long for a tool name", t->file);
		return -1;
	}
	memcpy(base, fname, n);
	base[n] = '\0';
	v = json_object_get(m, "name");
	if (!json_is_string(v) || !is_tool_name(json_string_value(v))) {
		log_seterr(err, errlen, "%s: name must match [a-z][a-z0-9_]{0,63}", t->file);
		return -1;
	}
	if (strcmp(json_string_value(v), base) != 0) {
		log_seterr(err, errlen,
		    "%s: name '%s' differs from the file's name; call the file "
		    "%s.json",
		    t->file, json_string_value(v), json_string_value(v));
		return -1;
	}
	strlcpy(t->name, json_string_value(v), sizeof(t->name));

	v = json_object_get(m, "description");
	if (!json_is_string(v) || json_string_length(v) == 0) {
		log_seterr(err, errlen, "%s: description must be a non-empty string", t->file);
		return -1;
	}
	if ((t->description = strdup(json_string_value(v))) == NULL)
		return -1;
	if ((v = json_object_get(m, "title")) != NULL) {
		if (!json_is_string(v)) {
			log_seterr(err, errlen, "%s: title must be a string", t->file);
			return -1;
		}
		if ((t->title = strdup(json_string_value(v))) == NULL)
			return -1;
	} else if ((t->title = humanised(t->name)) == NULL)
		return -1;
	return 0;
}

/* Reads the kind of manifest m, and the flags that depend on it, into t.  Returns 0, or -1
 * with "FILE: fault" in err. */
static int
load_kind(json_t *m, struct tool *t, char *err, size_t errlen)
{
	const char *kind = json_string_value(json_object_get(m, "kind"));
	json_t *v;

	if (kind != NULL && strcmp(kind, "read") == 0)
		t->kind = TOOL_READ;
	else if (kind != NULL && strcmp(kind, "write") == 0)
		t->kind = TOOL_WRITE;
	else if (kind != NULL && strcmp(kind, "code") == 0)
		t->kind = TOOL_CODE;
	else {
		log_seterr(err, errlen, "%s: kind must be \"read\", \"write\" or \"code\"",
		    t->file);
		return -1;
	}
	if ((v = json_object_get(m, "destructive")) != NULL) {
		if (t->kind != TOOL_WRITE) {
			log_seterr(err, errlen, "%s: destructive applies to write tools only",
			    t->file);
			return -1;
		}
		if (!json_is_boolean(v)) {
			log_seterr(err, errlen, "%s: destructive must be true or false", t->file);
			return -1;
		}
		t->is_destructive = json_is_true(v);
	} else
		t->is_destructive = t->kind == TOOL_WRITE;
	if (write_flag(m, "idempotent", 0, t, &t->is_idempotent, err, errlen) == -1 ||
	    write_flag(m, "call_options", 1, t, &t->has_call_options, err, errlen) == -1)
		return -1;
	return 0;
}

/*
 * Reads the statement of the read or write t from manifest m, rewrites it, checks it on conn
 * (NULL: offline, unchecked) under the prepared-statement name stmt, and caps a read's.
 * Returns 0, or -1 with "FILE: fault" in err, or with err untouched when out of memory.
 */
static int
load_statement(json_t *m, PGconn *conn, const char *stmt, struct tool *t, char *err, size_t errlen)
{
	json_t *v;

	if (json_object_get(m, "code") != NULL) {
		log_seterr(err, errlen, "%s: code applies to code tools only", t->file);
		return -1;
	}
	if (get_uint(m, "max_rows", DEFAULT_ROWS, 1, MAX_ROWS_CAP, &t->max_rows, t->file, err,
		errlen) == -1)
		return -1;
	v = json_object_get(m, "statement");
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > MAX_STATEMENT) {
		log_seterr(err, errlen,
		    "%s: statement must be a non-empty string of at most "
		    "%d bytes",
		    t->file, MAX_STATEMENT);
		return -1;
	}
	if (tool_sql_rewrite(t, json_string_value(v), err, errlen) == -1)
		return -1;
	if (conn != NULL &&
	    tool_check_statement(conn, t, json_string_value(v), stmt, err, errlen) == -1)
		return -1;
	/* Checked as written, so its faults are named as written; then capped. */
	if (t->kind == TOOL_READ && tool_sql_cap_read(&t->sql, t->max_rows) == -1)
		return -1;
	return 0;
}

/*
 * The tool's annotations for MCP clients.  A read changes nothing, so it is idempotent; a
 * write is when its manifest says so; a program is not (it may reach the world, or keep
 * state in it).  The world beyond the gateway's own database is open only to a code tool
 * with an egress allowlist.  Returns a new reference, or NULL when out of memory.
 */
static json_t *
annotations(const struct tool *t)
{
	return json_pack("{s:s, s:b, s:b, s:b, s:b}", "title", t->title, "readOnlyHint",
	    t->kind == TOOL_READ, "destructiveHint", t->kind == TOOL_WRITE && t->is_destructive,
	    "idempotentHint", t->kind == TOOL_READ || (t->kind == TOOL_WRITE && t->is_idempotent),
	    "openWorldHint",
	    t->kind == TOOL_CODE && json_array_size(json_object_get(t->code, "allow")) > 0);
}

/*
 * Loads and checks one manifest into t (zeroed), in the order its faults are reported.
 * Returns 0, or -1 with "FILE: fault" in err; on failure t owns nothing.
 */
static int
load_one(const char *dir, const char *fname, PGconn *conn, const char *stmt, struct tool *t,
    char *err, size_t errlen)
{
	json_t *m = NULL, *v;
	char fault[1024];

	if (errlen > 0)
		err[0] = '\0';
	if ((m = read_manifest(dir, fname, t, err, errlen)) == NULL ||
	    load_names(m, fname, t, err, errlen) == -1 || load_kind(m, t, err, errlen) == -1)
		goto fail;
	if ((v = json_object_get(m, "arguments")) == NULL) {
		log_seterr(err, errlen, "%s: arguments (a JSON Schema) is required", t->file);
		goto fail;
	}
	if (tool_schema_load(t, v, err, errlen) == -1)
		goto fail;
	if (get_uint(m, "timeout_ms", DEFAULT_TIMEOUT, 1, MAX_TIMEOUT, &t->timeout_ms, t->file, err,
		errlen) == -1)
		goto fail;
	if ((v = json_object_get(m, "approval")) != NULL &&
	    check_approval(t, v, fault, sizeof(fault)) == -1) {
		log_seterr(err, errlen, "%s: %s", t->file, fault);
		goto fail;
	}
	if (t->kind == TOOL_CODE ? tool_code_load(t, m, conn != NULL, err, errlen) == -1
				 : load_statement(m, conn, stmt, t, err, errlen) == -1)
		goto fail;
	if ((t->output_schema = tool_output_schema(t)) == NULL ||
	    (t->annotations = annotations(t)) == NULL)
		goto fail;
	json_decref(m);
	return 0;
fail:
	/* Every fault but an allocation's has set err by now. */
	if (errlen > 0 && err[0] == '\0')
		log_seterr(err, errlen, "%s: out of memory", t->file);
	json_decref(m);
	free_tool(t);
	return -1;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct catalog *
tool_load(const char *dir, PGconn *conn, char *err, size_t errlen)
{
	struct catalog *cat = NULL;
	struct dirent *de;
	DIR *d = NULL;
	char **names = NULL, **grown, stmt[64];
	size_t n = 0, cap = 0, i, j, len;

	if (errlen > 0)
		err[0] = '\0';
	if (conn != NULL &&
	    (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE)) {
		log_seterr(err, errlen, "%s: the database connection is not idle", dir);
		return NULL;
	}
	if ((d = opendir(dir)) == NULL) {
		log_seterr(err, errlen, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((grown = reallocarray(names, cap, sizeof(*grown))) == NULL)
				goto fail;
			names = grown;
		}
		if ((names[n] = strdup(de->d_name)) == NULL)
			goto fail;
		n++;
	}
	closedir(d);
	d = NULL;
	if (n > 0)
		qsort(names, n, sizeof(*names), by_name);

	if ((cat = calloc(1, sizeof(*cat))) == NULL ||
	    (n > 0 && (cat->tools = calloc(n, sizeof(*cat->tools))) == NULL))
		goto fail;
	cat->version = __atomic_add_fetch(&last_version, 1, __ATOMIC_RELAXED);
	for (i = 0; i < n; i++) {
		snprintf(stmt, sizeof(stmt), "airlock_check_%lu_%zu", cat->version, i);
		if (load_one(dir, names[i], conn, stmt, &cat->tools[i], err, errlen) == -1)
			goto fail;
		cat->n++;
		for (j = 0; j < i; j++)
			if (strcmp(cat->tools[j].name, cat->tools[i].name) == 0) {
				log_seterr(err, errlen, "%s: tool name '%s' is also used by %s",
				    cat->tools[i].file, cat->tools[i].name, cat->tools[j].file);
				goto fail;
			}
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return cat;
fail:
	/* Every fault but an allocation's has set err by now. */
	if (errlen > 0 && err[0] == '\0')
		log_seterr(err, errlen, "%s: out of memory", dir);
	if (d != NULL)
		closedir(d);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	tool_catalog_free(cat);
	return NULL;
}

void
tool_catalog_free(struct catalog *cat)
{
	size_t i;

	if (cat == NULL)
		return;
	for (i = 0; i < cat->n; i++)
		free_tool(&cat->tools[i]);
	free(cat->tools);
	free(cat);
}

const struct tool *
tool_find(const struct catalog *cat, const char *name)
{
	size_t i;

	if (cat == NULL || name == NULL)
		return NULL;
	for (i = 0; i < cat->n; i++)
		if (strcmp(cat->tools[i].name, name) == 0)
			return &cat->tools[i];
	return NULL;
}
