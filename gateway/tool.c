/* tool.c: the tool catalog: loads and checks the manifests in tools/, checks call arguments. */
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
 * Any other key is refused.  The arguments schema: at the top, "type": "object",
 * "properties", "required" (names of properties), "additionalProperties": false (present and
 * false) and an optional "description".  Property names are [a-z][a-z0-9_]{0,63}.  Each
 * property has "type" (string, integer, number, boolean, object or array, or an array of
 * those plus "null") and may have enum, minimum, maximum (numbers), minLength, maxLength
 * (in characters), pattern (strings), description, title, default (applied when the argument
 * is absent; it must pass the property's own rules) and "sensitive": true (the audit log
 * keeps only a digest).  pattern is a POSIX extended regular expression (regcomp), searched
 * unanchored as JSON Schema does: write ^...$ to match the whole value; it matches bytes, so
 * use ASCII patterns.  object and array properties take no other keyword: the value reaches
 * the program as JSON text.  A null value passes whenever the type allows "null", enum or
 * not.  Any other keyword is refused, naming it.
 *
 * Statement parameters are named: $name outside string literals, quoted identifiers,
 * comments and dollar-quoted strings becomes $1..$n in order of first appearance, so a name
 * used twice binds once.  A positional $1 is refused, and so is a $name with no property.
 *
 * The database checks (tool_load with a connection): the statement prepares; it never
 * mentions set_config (membership is checked against the gateway's login role, so such a
 * statement could switch tenants; SET and RESET cannot be a tool's statement: the first
 * keyword must be SELECT/WITH/VALUES/TABLE for a read and INSERT/UPDATE for a write); a
 * read returns columns, and its plan (EXPLAIN EXECUTE, generic plan) neither modifies nor
 * locks rows; a write is one INSERT or UPDATE with RETURNING (no DELETE: there is no hard
 * delete; no MERGE); a read depends on no adopted tenant table directly (it must use the
 * <table>_live view), which PostgreSQL's dependency records of a temporary view made from
 * the statement tell, in a transaction that is rolled back.  The same temporary view tells
 * whether the statement locks rows (its stored query has row marks) when the connecting
 * role may not EXPLAIN the statement (airlockd's role holds no table privileges of its own).
 */
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "airlock/gvisor.h"
#include "airlock/tool.h"
#include "airlock/log.h"

#define MAX_MANIFEST	(1024 * 1024)
#define MAX_STATEMENT	(64 * 1024)
#define MAX_ROWS_CAP	100000
#define DEFAULT_ROWS	100
#define DEFAULT_TIMEOUT	5000
#define MAX_TIMEOUT	60000

/* Type OIDs from PostgreSQL's pg_type.dat; they are fixed. */
#define OID_BOOL	16
#define OID_INT8	20
#define OID_INT2	21
#define OID_INT4	23
#define OID_OID		26
#define OID_JSON	114
#define OID_FLOAT4	700
#define OID_FLOAT8	701
#define OID_DATE	1082
#define OID_TIMESTAMP	1114
#define OID_TIMESTAMPTZ	1184
#define OID_NUMERIC	1700
#define OID_UUID	2950
#define OID_JSONB	3802

/* Property type bits. */
enum {
	T_STRING = 1 << 0,
	T_INTEGER = 1 << 1,
	T_NUMBER = 1 << 2,
	T_BOOLEAN = 1 << 3,
	T_OBJECT = 1 << 4,
	T_ARRAY = 1 << 5,
	T_NULL = 1 << 6,
};

static const struct {
	const char *name;
	const char *phrase;
	int bit;
} type_table[] = {
	{ "string", "a string", T_STRING },
	{ "integer", "an integer", T_INTEGER },
	{ "number", "a number", T_NUMBER },
	{ "boolean", "a boolean", T_BOOLEAN },
	{ "object", "an object", T_OBJECT },
	{ "array", "an array", T_ARRAY },
	{ "null", "null", T_NULL },
};
#define NTYPES (sizeof(type_table) / sizeof(type_table[0]))

static const char *const manifest_keys[] = {
	"name", "description", "kind", "arguments", "statement", "max_rows", "timeout_ms",
	"title", "destructive", "idempotent", "call_options", "code", "approval", NULL
};
static const char *const approval_keys[] = { "above_rows", "argument", "above", "four_eyes",
    NULL };
static const char *const top_schema_keys[] = {
	"type", "properties", "required", "additionalProperties", "description", NULL
};
static const char *const property_keys[] = {
	"type", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern",
	"description", "title", "default", "sensitive", NULL
};
static const char *const code_keys[] = {
	"interpreter", "limits", "allow", "isolation", "warm", NULL
};
#define MAX_WARM 16
static const struct {
	const char *name;
	json_int_t max;
} limit_keys[] = {
	{ "time_s", 3600 },
	{ "cpu_s", 3600 },
	{ "mem_mb", 65536 },
	{ "pids", 4096 },
	{ "stdout_max", 64 * 1024 * 1024 },
	{ "stderr_max", 64 * 1024 * 1024 },
};
#define NLIMITS (sizeof(limit_keys) / sizeof(limit_keys[0]))

static unsigned long last_version;

static int
in_list(const char *key, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(key, *list) == 0)
			return 1;
	return 0;
}

/* Whether s is [a-z][a-z0-9_]{0,63}. */
static int
is_tool_name(const char *s)
{
	size_t i;

	if (s[0] < 'a' || s[0] > 'z')
		return 0;
	for (i = 1; s[i] != '\0'; i++)
		if (i > 63 || !((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '_'))
			return 0;
	return 1;
}

/* A growable string; on allocation failure it sets failed and stops growing. */
struct buf {
	char *s;
	size_t len, cap;
	int failed;
};

static void
buf_add(struct buf *b, const char *p, size_t n)
{
	char *grown;
	size_t cap;

	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((grown = realloc(b->s, cap)) == NULL) {
			b->failed = 1;
			return;
		}
		b->s = grown;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/*
 * Statement scanning.  A parameter callback appends the replacement for $name (name is not
 * NUL-terminated) and returns 0, or -1 after setting err.
 */
typedef int param_fn(void *arg, const char *name, size_t len, struct buf *out, char *err,
    size_t errlen);

/* Whether c can continue an identifier, so that a following $ belongs to it. */
static int
is_ident_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

static int
is_param_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '_';
}

/*
 * Copies sql to out, replacing each named parameter through fn and each comment (-- and
 * nested block comments) by a blank, as the server's lexer does.  Skips string literals
 * ('...' with '' and, after E, backslash escapes), quoted identifiers and dollar-quoted
 * strings.  Returns 0, or -1 with err set.
 */
static int
scan_sql(const char *sql, param_fn *fn, void *arg, struct buf *out, char *err, size_t errlen)
{
	size_t i = 0, j, n = strlen(sql), depth, taglen;
	const char *end;
	int is_e;
	char q;

	while (i < n) {
		if (sql[i] == '\'' || sql[i] == '"') {
			q = sql[i];
			is_e = q == '\'' && i > 0 && (sql[i - 1] == 'e' || sql[i - 1] == 'E') &&
			    (i < 2 || !is_ident_char((unsigned char)sql[i - 2]));
			j = i + 1;
			while (j < n) {
				if (is_e && sql[j] == '\\' && j + 1 < n) {
					j += 2;
					continue;
				}
				if (sql[j] == q) {
					if (j + 1 < n && sql[j + 1] == q) {
						j += 2;
						continue;
					}
					j++;
					break;
				}
				j++;
			}
			buf_add(out, sql + i, j - i);
			i = j;
		} else if (sql[i] == '-' && sql[i + 1] == '-') {
			j = i;
			while (j < n && sql[j] != '\n')
				j++;
			buf_add(out, " ", 1);
			i = j;
		} else if (sql[i] == '/' && sql[i + 1] == '*') {
			depth = 1;
			j = i + 2;
			while (j < n && depth > 0) {
				if (sql[j] == '/' && sql[j + 1] == '*') {
					depth++;
					j += 2;
				} else if (sql[j] == '*' && sql[j + 1] == '/') {
					depth--;
					j += 2;
				} else
					j++;
			}
			if (depth > 0) {
				log_seterr(err, errlen, "unterminated /* comment in the statement");
				return -1;
			}
			buf_add(out, " ", 1);
			i = j;
		} else if (sql[i] == '$' && i > 0 && is_ident_char((unsigned char)sql[i - 1])) {
			/* Part of an identifier such as a$b. */
			buf_add(out, sql + i, 1);
			i++;
		} else if (sql[i] == '$' && isdigit((unsigned char)sql[i + 1])) {
			j = i + 1;
			while (j < n && isdigit((unsigned char)sql[j]))
				j++;
			log_seterr(err, errlen, "positional parameter %.*s in the statement; name the "
			    "argument instead ($customer_id)", (int)(j - i), sql + i);
			return -1;
		} else if (sql[i] == '$') {
			j = i + 1;
			while (j < n && is_param_char((unsigned char)sql[j]))
				j++;
			if (j < n && sql[j] == '$') {
				/* A dollar quote $tag$...$tag$: copy through its end. */
				taglen = j + 1 - i;
				end = NULL;
				for (const char *p = sql + j + 1; (p = strchr(p, '$')) != NULL; p++)
					if (strncmp(p, sql + i, taglen) == 0) {
						end = p + taglen;
						break;
					}
				j = end != NULL ? (size_t)(end - sql) : n;
				buf_add(out, sql + i, j - i);
				i = j;
			} else if (j > i + 1) {
				if (fn(arg, sql + i + 1, j - i - 1, out, err, errlen) == -1)
					return -1;
				i = j;
			} else {
				buf_add(out, sql + i, 1);
				i++;
			}
		} else {
			buf_add(out, sql + i, 1);
			i++;
		}
	}
	if (out->failed) {
		log_seterr(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* Whether sql holds U&" or U&' (either case), PostgreSQL's Unicode escape syntax. */
static int
has_unicode_escape(const char *sql)
{
	const char *p;

	for (p = sql; (p = strchr(p, '&')) != NULL; p++)
		if (p > sql && (p[-1] == 'u' || p[-1] == 'U') && (p[1] == '"' || p[1] == '\''))
			return 1;
	return 0;
}

/*
 * A read runs as SELECT * FROM (statement) LIMIT max_rows + 1: the server stops after the
 * one row that tells the result was truncated, so a statement that matches millions of rows
 * costs neither the database nor the gateway's memory more than the cap.  The statement's
 * own ORDER BY still orders the rows kept.  Comments are gone by now (scan_sql); trailing
 * semicolons are dropped.
 */
static int
cap_read(char **sql, unsigned max_rows)
{
	struct buf q = { NULL, 0, 0, 0 };
	char limit[32];
	size_t len = strlen(*sql);

	while (len > 0 && (isspace((unsigned char)(*sql)[len - 1]) || (*sql)[len - 1] == ';'))
		len--;
	snprintf(limit, sizeof(limit), "\n) AS capped LIMIT %u", max_rows + 1);
	buf_str(&q, "SELECT * FROM (\n");
	buf_add(&q, *sql, len);
	buf_str(&q, limit);
	if (q.failed) {
		free(q.s);
		return -1;
	}
	free(*sql);
	*sql = q.s;
	return 0;
}

/* The statement's first keyword, lowercased, after blanks, comments and parentheses. */
static void
first_keyword(const char *sql, char *word, size_t len)
{
	size_t i = 0, k = 0;

	for (;;) {
		while (isspace((unsigned char)sql[i]) || sql[i] == '(')
			i++;
		if (sql[i] == '-' && sql[i + 1] == '-') {
			while (sql[i] != '\0' && sql[i] != '\n')
				i++;
		} else if (sql[i] == '/' && sql[i + 1] == '*') {
			int depth = 1;

			i += 2;
			while (sql[i] != '\0' && depth > 0) {
				if (sql[i] == '/' && sql[i + 1] == '*') {
					depth++;
					i += 2;
				} else if (sql[i] == '*' && sql[i + 1] == '/') {
					depth--;
					i += 2;
				} else
					i++;
			}
		} else
			break;
	}
	while (isalpha((unsigned char)sql[i]) && k + 1 < len)
		word[k++] = (char)tolower((unsigned char)sql[i++]);
	word[k] = '\0';
}

/* Rewriting $name to $k: the tool collects its parameters as it goes. */
struct rewrite {
	struct tool *t;
	json_t *props;
};

static int
rewrite_param(void *arg, const char *name, size_t len, struct buf *out, char *err,
    size_t errlen)
{
	struct rewrite *rw = arg;
	struct tool *t = rw->t;
	char num[32], key[128], **grown;
	size_t k;

	if (len >= sizeof(key)) {
		log_seterr(err, errlen, "statement parameter $%.*s... has no property in arguments",
		    40, name);
		return -1;
	}
	memcpy(key, name, len);
	key[len] = '\0';
	for (k = 0; k < t->n_params; k++)
		if (strcmp(t->params[k], key) == 0)
			break;
	if (k == t->n_params) {
		if (json_object_get(rw->props, key) == NULL) {
			log_seterr(err, errlen, "statement parameter $%s has no property in arguments",
			    key);
			return -1;
		}
		if ((grown = reallocarray(t->params, t->n_params + 1, sizeof(*grown))) == NULL) {
			log_seterr(err, errlen, "out of memory");
			return -1;
		}
		t->params = grown;
		if ((t->params[t->n_params] = strdup(key)) == NULL) {
			log_seterr(err, errlen, "out of memory");
			return -1;
		}
		t->n_params++;
	}
	snprintf(num, sizeof(num), "$%zu", k + 1);
	buf_str(out, num);
	return 0;
}

/* Replacing $name by (NULL::type) for the dependency check's temporary view. */
struct nullify {
	const struct tool *t;
	char **types;
};

static int
nullify_param(void *arg, const char *name, size_t len, struct buf *out, char *err,
    size_t errlen)
{
	struct nullify *nf = arg;
	size_t k;

	for (k = 0; k < nf->t->n_params; k++)
		if (strlen(nf->t->params[k]) == len && memcmp(nf->t->params[k], name, len) == 0) {
			buf_str(out, "(NULL::");
			buf_str(out, nf->types[k]);
			buf_str(out, ")");
			return 0;
		}
	log_seterr(err, errlen, "statement parameter $%.*s has no property in arguments", (int)len,
	    name);
	return -1;
}

/* Schema checks. */

/* The type bits of a checked property. */
static int
type_bits(json_t *prop)
{
	json_t *type = json_object_get(prop, "type"), *v;
	size_t i, k, n = json_is_array(type) ? json_array_size(type) : 1;
	int bits = 0;

	for (i = 0; i < n; i++) {
		v = json_is_array(type) ? json_array_get(type, i) : type;
		for (k = 0; k < NTYPES; k++)
			if (json_is_string(v) && strcmp(json_string_value(v), type_table[k].name) == 0)
				bits |= type_table[k].bit;
	}
	return bits;
}

/* "an integer or null" for the type bits. */
static void
type_phrase(int bits, char *out, size_t len)
{
	size_t k;

	out[0] = '\0';
	for (k = 0; k < NTYPES; k++)
		if (bits & type_table[k].bit) {
			if (out[0] != '\0')
				strlcat(out, " or ", len);
			strlcat(out, type_table[k].phrase, len);
		}
}

/* Number of characters in a UTF-8 string (jansson guarantees valid UTF-8). */
static size_t
utf8_length(const char *s, size_t n)
{
	size_t i, chars = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			chars++;
	return chars;
}

/* Compares two JSON numbers: <0, 0, >0. */
static int
num_cmp(json_t *a, json_t *b)
{
	double x, y;

	if (json_is_integer(a) && json_is_integer(b))
		return (json_integer_value(a) > json_integer_value(b)) -
		    (json_integer_value(a) < json_integer_value(b));
	x = json_number_value(a);
	y = json_number_value(b);
	return (x > y) - (x < y);
}

/*
 * Checks value (borrowed) against one checked property.  Returns a new reference to the
 * value as the tool receives it (an integral real for an integer property becomes an
 * integer), or NULL with msg set to "argument 'NAME' must ...".
 */
static json_t *
check_value(const char *name, json_t *prop, json_t *value, char *msg, size_t msglen)
{
	json_t *enm, *e, *bound;
	json_t *v = NULL;
	const char *s, *pattern;
	char phrase[128], list[512], *dump;
	size_t i, slen, chars;
	json_int_t lim;
	regex_t re;
	double d;
	int bits = type_bits(prop), rc;

	if (json_is_null(value)) {
		if (bits & T_NULL)
			return json_null();
		goto bad_type;
	}
	if (json_is_string(value) && (bits & T_STRING))
		v = json_incref(value);
	else if (json_is_integer(value) && (bits & (T_INTEGER | T_NUMBER)))
		v = json_incref(value);
	else if (json_is_real(value) && (bits & T_NUMBER))
		v = json_incref(value);
	else if (json_is_real(value) && (bits & T_INTEGER)) {
		d = json_real_value(value);
		if (d != floor(d) || fabs(d) > 9007199254740992.0)
			goto bad_type;
		v = json_integer((json_int_t)d);
	} else if (json_is_boolean(value) && (bits & T_BOOLEAN))
		v = json_incref(value);
	else if (json_is_object(value) && (bits & T_OBJECT))
		v = json_incref(value);
	else if (json_is_array(value) && (bits & T_ARRAY))
		v = json_incref(value);
	else
		goto bad_type;
	if (v == NULL) {
		log_seterr(msg, msglen, "out of memory");
		return NULL;
	}

	if ((enm = json_object_get(prop, "enum")) != NULL) {
		json_array_foreach(enm, i, e) {
			if (json_equal(e, v))
				break;
		}
		if (i == json_array_size(enm)) {
			list[0] = '\0';
			json_array_foreach(enm, i, e) {
				if (i > 0)
					strlcat(list, ", ", sizeof(list));
				if (json_is_string(e))
					strlcat(list, json_string_value(e), sizeof(list));
				else if ((dump = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY)) != NULL) {
					strlcat(list, dump, sizeof(list));
					free(dump);
				}
			}
			log_seterr(msg, msglen, "argument '%s' must be one of: %s", name, list);
			goto fail;
		}
	}
	if (json_is_string(v)) {
		s = json_string_value(v);
		slen = json_string_length(v);
		if (memchr(s, '\0', slen) != NULL) {
			log_seterr(msg, msglen, "argument '%s' must not contain NUL characters", name);
			goto fail;
		}
		chars = utf8_length(s, slen);
		if ((bound = json_object_get(prop, "minLength")) != NULL &&
		    (json_int_t)chars < (lim = json_integer_value(bound))) {
			log_seterr(msg, msglen, "argument '%s' must be at least %lld character%s long",
			    name, (long long)lim, lim == 1 ? "" : "s");
			goto fail;
		}
		if ((bound = json_object_get(prop, "maxLength")) != NULL &&
		    (json_int_t)chars > (lim = json_integer_value(bound))) {
			log_seterr(msg, msglen, "argument '%s' must be at most %lld character%s long",
			    name, (long long)lim, lim == 1 ? "" : "s");
			goto fail;
		}
		if ((pattern = json_string_value(json_object_get(prop, "pattern"))) != NULL) {
			if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
				log_seterr(msg, msglen, "argument '%s': its pattern does not compile", name);
				goto fail;
			}
			rc = regexec(&re, s, 0, NULL, 0);
			regfree(&re);
			if (rc != 0) {
				log_seterr(msg, msglen, "argument '%s' must match the pattern %s", name,
				    pattern);
				goto fail;
			}
		}
	}
	if (json_is_number(v)) {
		if ((bound = json_object_get(prop, "minimum")) != NULL && num_cmp(v, bound) < 0) {
			dump = json_dumps(bound, JSON_ENCODE_ANY);
			log_seterr(msg, msglen, "argument '%s' must be at least %s", name,
			    dump ? dump : "its minimum");
			free(dump);
			goto fail;
		}
		if ((bound = json_object_get(prop, "maximum")) != NULL && num_cmp(v, bound) > 0) {
			dump = json_dumps(bound, JSON_ENCODE_ANY);
			log_seterr(msg, msglen, "argument '%s' must be at most %s", name,
			    dump ? dump : "its maximum");
			free(dump);
			goto fail;
		}
	}
	return v;
bad_type:
	type_phrase(bits, phrase, sizeof(phrase));
	log_seterr(msg, msglen, "argument '%s' must be %s", name, phrase);
fail:
	json_decref(v);
	return NULL;
}

/* Checks one property's keywords; err gets "property 'NAME': fault". */
static int
check_property(const char *name, json_t *prop, char *err, size_t errlen)
{
	json_t *type, *v, *e, *checked;
	const char *key;
	char msg[512], rerr[256];
	size_t i, j, k;
	regex_t re;
	int bits = 0, rc;

	if (!is_tool_name(name)) {
		log_seterr(err, errlen, "property name '%s' must match [a-z][a-z0-9_]{0,63}", name);
		return -1;
	}
	if (!json_is_object(prop)) {
		log_seterr(err, errlen, "property '%s' must be an object", name);
		return -1;
	}
	json_object_foreach(prop, key, v) {
		if (!in_list(key, property_keys)) {
			log_seterr(err, errlen, "property '%s': unknown keyword '%s'", name, key);
			return -1;
		}
	}
	if ((type = json_object_get(prop, "type")) == NULL) {
		log_seterr(err, errlen, "property '%s': needs a type", name);
		return -1;
	}
	if (json_is_string(type) || (json_is_array(type) && json_array_size(type) > 0)) {
		for (i = 0; i < (json_is_string(type) ? 1 : json_array_size(type)); i++) {
			v = json_is_string(type) ? type : json_array_get(type, i);
			for (k = 0; k < NTYPES; k++)
				if (json_is_string(v) &&
				    strcmp(json_string_value(v), type_table[k].name) == 0)
					break;
			if (k == NTYPES) {
				log_seterr(err, errlen, "property '%s': keyword 'type' must name string, "
				    "integer, number, boolean, object, array or null", name);
				return -1;
			}
			if (bits & type_table[k].bit) {
				log_seterr(err, errlen, "property '%s': keyword 'type' names %s twice",
				    name, type_table[k].name);
				return -1;
			}
			bits |= type_table[k].bit;
		}
	} else {
		log_seterr(err, errlen, "property '%s': keyword 'type' must be a string or a "
		    "non-empty array of strings", name);
		return -1;
	}
	if (bits == T_NULL) {
		log_seterr(err, errlen, "property '%s': keyword 'type' must allow a value other than "
		    "null", name);
		return -1;
	}
	if ((bits & (T_OBJECT | T_ARRAY)) != 0) {
		json_object_foreach(prop, key, v) {
			if (!in_list(key, (const char *const[]){ "type", "description", "title",
			    "default", "sensitive", NULL })) {
				log_seterr(err, errlen, "property '%s': keyword '%s' does not apply to "
				    "object and array types (they take no nested keywords)", name, key);
				return -1;
			}
		}
	}
	for (i = 0; i < 2; i++) {
		key = i == 0 ? "minimum" : "maximum";
		if ((v = json_object_get(prop, key)) == NULL)
			continue;
		if (!json_is_number(v)) {
			log_seterr(err, errlen, "property '%s': keyword '%s' must be a number", name,
			    key);
			return -1;
		}
		if (!(bits & (T_INTEGER | T_NUMBER))) {
			log_seterr(err, errlen, "property '%s': keyword '%s' applies to integer and "
			    "number types only", name, key);
			return -1;
		}
	}
	if (json_object_get(prop, "minimum") != NULL && json_object_get(prop, "maximum") != NULL &&
	    num_cmp(json_object_get(prop, "minimum"), json_object_get(prop, "maximum")) > 0) {
		log_seterr(err, errlen, "property '%s': minimum is above maximum", name);
		return -1;
	}
	for (i = 0; i < 3; i++) {
		key = i == 0 ? "minLength" : i == 1 ? "maxLength" : "pattern";
		if ((v = json_object_get(prop, key)) == NULL)
			continue;
		if (i < 2 && (!json_is_integer(v) || json_integer_value(v) < 0)) {
			log_seterr(err, errlen, "property '%s': keyword '%s' must be a non-negative "
			    "integer", name, key);
			return -1;
		}
		if (i == 2 && !json_is_string(v)) {
			log_seterr(err, errlen, "property '%s': keyword 'pattern' must be a string",
			    name);
			return -1;
		}
		if (!(bits & T_STRING)) {
			log_seterr(err, errlen, "property '%s': keyword '%s' applies to string types "
			    "only", name, key);
			return -1;
		}
		if (i == 2) {
			if ((rc = regcomp(&re, json_string_value(v), REG_EXTENDED | REG_NOSUB)) != 0) {
				regerror(rc, &re, rerr, sizeof(rerr));
				log_seterr(err, errlen, "property '%s': pattern does not compile as a "
				    "POSIX extended regular expression: %s", name, rerr);
				return -1;
			}
			regfree(&re);
		}
	}
	if (json_object_get(prop, "minLength") != NULL && json_object_get(prop, "maxLength") != NULL &&
	    json_integer_value(json_object_get(prop, "minLength")) >
	    json_integer_value(json_object_get(prop, "maxLength"))) {
		log_seterr(err, errlen, "property '%s': minLength is above maxLength", name);
		return -1;
	}
	for (i = 0; i < 2; i++) {
		key = i == 0 ? "description" : "title";
		if ((v = json_object_get(prop, key)) != NULL && !json_is_string(v)) {
			log_seterr(err, errlen, "property '%s': keyword '%s' must be a string", name,
			    key);
			return -1;
		}
	}
	if ((v = json_object_get(prop, "sensitive")) != NULL && !json_is_boolean(v)) {
		log_seterr(err, errlen, "property '%s': keyword 'sensitive' must be true or false",
		    name);
		return -1;
	}
	if ((v = json_object_get(prop, "enum")) != NULL) {
		if (!json_is_array(v) || json_array_size(v) == 0) {
			log_seterr(err, errlen, "property '%s': keyword 'enum' must be a non-empty "
			    "array", name);
			return -1;
		}
		json_array_foreach(v, i, e) {
			if (json_is_object(e) || json_is_array(e)) {
				log_seterr(err, errlen, "property '%s': enum values must be strings, "
				    "numbers, booleans or null", name);
				return -1;
			}
			for (j = 0; j < i; j++)
				if (json_equal(e, json_array_get(v, j))) {
					log_seterr(err, errlen, "property '%s': enum lists a value twice",
					    name);
					return -1;
				}
		}
		/* Every listed value must pass the type and the other keywords. */
		json_array_foreach(v, i, e) {
			json_t *plain = json_deep_copy(prop);

			if (plain == NULL) {
				log_seterr(err, errlen, "out of memory");
				return -1;
			}
			json_object_del(plain, "enum");
			checked = check_value(name, plain, e, msg, sizeof(msg));
			json_decref(plain);
			if (checked == NULL) {
				log_seterr(err, errlen, "property '%s': enum value %zu: %s", name, i + 1,
				    msg);
				return -1;
			}
			json_decref(checked);
		}
	}
	if ((v = json_object_get(prop, "default")) != NULL) {
		if ((checked = check_value(name, prop, v, msg, sizeof(msg))) == NULL) {
			log_seterr(err, errlen, "property '%s': default does not pass its own rules: %s",
			    name, msg);
			return -1;
		}
		json_decref(checked);
	}
	return 0;
}

/* Checks the arguments schema; err gets the fault, without the file. */
static int
check_schema(json_t *schema, char *err, size_t errlen)
{
	json_t *props, *req, *v;
	const char *key;
	size_t i, j;

	if (!json_is_object(schema)) {
		log_seterr(err, errlen, "arguments must be a JSON Schema object");
		return -1;
	}
	json_object_foreach(schema, key, v) {
		if (!in_list(key, top_schema_keys)) {
			log_seterr(err, errlen, "arguments: unknown keyword '%s' (known: type, "
			    "properties, required, additionalProperties, description)", key);
			return -1;
		}
	}
	if (!json_is_string(json_object_get(schema, "type")) ||
	    strcmp(json_string_value(json_object_get(schema, "type")), "object") != 0) {
		log_seterr(err, errlen, "arguments: type must be \"object\"");
		return -1;
	}
	if (!json_is_false(json_object_get(schema, "additionalProperties"))) {
		log_seterr(err, errlen, "arguments: additionalProperties must be present and false");
		return -1;
	}
	if ((v = json_object_get(schema, "description")) != NULL && !json_is_string(v)) {
		log_seterr(err, errlen, "arguments: description must be a string");
		return -1;
	}
	props = json_object_get(schema, "properties");
	if (props != NULL && !json_is_object(props)) {
		log_seterr(err, errlen, "arguments: properties must be an object");
		return -1;
	}
	json_object_foreach(props, key, v) {
		/* The call options' argument names are the gateway's (tool_listed_schema). */
		if (strncmp(key, TOOL_OPTION_PREFIX, strlen(TOOL_OPTION_PREFIX)) == 0) {
			log_seterr(err, errlen, "arguments: property '%s': names starting with '%s' "
			    "are the gateway's call options", key, TOOL_OPTION_PREFIX);
			return -1;
		}
		if (check_property(key, v, err, errlen) == -1) {
			char fault[1024];

			strlcpy(fault, err, sizeof(fault));
			log_seterr(err, errlen, "arguments: %s", fault);
			return -1;
		}
	}
	if ((req = json_object_get(schema, "required")) != NULL) {
		if (!json_is_array(req)) {
			log_seterr(err, errlen, "arguments: required must be an array of property "
			    "names");
			return -1;
		}
		json_array_foreach(req, i, v) {
			if (!json_is_string(v)) {
				log_seterr(err, errlen, "arguments: required must be an array of "
				    "property names");
				return -1;
			}
			if (json_object_get(props, json_string_value(v)) == NULL) {
				log_seterr(err, errlen, "arguments: required names '%s', which is not a "
				    "property", json_string_value(v));
				return -1;
			}
			for (j = 0; j < i; j++)
				if (json_equal(v, json_array_get(req, j))) {
					log_seterr(err, errlen, "arguments: required names '%s' twice",
					    json_string_value(v));
					return -1;
				}
		}
	}
	return 0;
}

/* Whether name is listed in the schema's required array. */
static int
is_required(json_t *schema, const char *name)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(schema, "required"), i, v) {
		if (strcmp(json_string_value(v), name) == 0)
			return 1;
	}
	return 0;
}

json_t *
tool_check_args(const struct tool *t, json_t *args, const char **bad_arg, char *msg,
    size_t msglen)
{
	static _Thread_local char extra[128];
	json_t *props = json_object_get(t->schema, "properties"), *out = NULL, *prop, *v, *nv;
	const char *key;

	if (bad_arg != NULL)
		*bad_arg = NULL;
	if (args != NULL && !json_is_object(args)) {
		log_seterr(msg, msglen, "arguments must be an object");
		return NULL;
	}
	if ((out = json_object()) == NULL) {
		log_seterr(msg, msglen, "out of memory");
		return NULL;
	}
	json_object_foreach(args, key, v) {
		if (json_object_get(props, key) == NULL) {
			strlcpy(extra, key, sizeof(extra));
			log_seterr(msg, msglen, "unexpected argument '%s'", extra);
			if (bad_arg != NULL)
				*bad_arg = extra;
			goto fail;
		}
	}
	json_object_foreach(props, key, prop) {
		v = args != NULL ? json_object_get(args, key) : NULL;
		if (v == NULL) {
			if ((v = json_object_get(prop, "default")) != NULL) {
				if (json_object_set_new(out, key, json_deep_copy(v)) == -1) {
					log_seterr(msg, msglen, "out of memory");
					goto fail;
				}
			} else if (is_required(t->schema, key)) {
				log_seterr(msg, msglen, "missing required argument '%s'", key);
				if (bad_arg != NULL)
					*bad_arg = key;
				goto fail;
			}
			continue;
		}
		if ((nv = check_value(key, prop, v, msg, msglen)) == NULL) {
			if (bad_arg != NULL)
				*bad_arg = key;
			goto fail;
		}
		if (json_object_set_new(out, key, nv) == -1) {
			log_seterr(msg, msglen, "out of memory");
			goto fail;
		}
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

char *
tool_arg_text(json_t *value)
{
	char num[64];

	if (value == NULL)
		return NULL;
	switch (json_typeof(value)) {
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(value));
		return strdup(num);
	case JSON_REAL:
		snprintf(num, sizeof(num), "%.17g", json_real_value(value));
		return strdup(num);
	case JSON_TRUE:
		return strdup("true");
	case JSON_FALSE:
		return strdup("false");
	case JSON_STRING:
		return strndup(json_string_value(value), json_string_length(value));
	case JSON_OBJECT:
	case JSON_ARRAY:
		return json_dumps(value, JSON_COMPACT);
	case JSON_NULL:
	default:
		return NULL;
	}
}

int
tool_bind(const struct tool *t, json_t *args, char **values)
{
	json_t *v;
	size_t k;

	for (k = 0; k < t->n_params; k++) {
		v = json_object_get(args, t->params[k]);
		values[k] = NULL;
		if (v == NULL || json_is_null(v))
			continue;
		if ((values[k] = tool_arg_text(v)) == NULL)
			goto fail;
	}
	return 0;
fail:
	while (k > 0) {
		k--;
		free(values[k]);
		values[k] = NULL;
	}
	return -1;
}

void
tool_unbind(const struct tool *t, char **values)
{
	size_t k;

	for (k = 0; k < t->n_params; k++) {
		free(values[k]);
		values[k] = NULL;
	}
}

/* Whether s[0..n) are all digits. */
static int
all_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

/*
 * RFC 3339 from a DateStyle ISO timestamp: "2026-11-27 16:44:36.123+00" becomes
 * "2026-11-27T16:44:36.123+00:00", and without an offset (timestamp without time zone)
 * "2026-11-27 16:44:36" becomes "2026-11-27T16:44:36".  What RFC 3339 cannot say (infinity,
 * BC, years past 9999, an offset with seconds) is returned as PostgreSQL wrote it, which
 * tool_type_schema describes too.
 */
static json_t *
iso_timestamp(const char *text, int has_offset)
{
	char out[96];
	size_t n = strlen(text), i;

	if (n < 19 || n + 4 >= sizeof(out) || !all_digits(text, 4) || text[4] != '-' ||
	    !all_digits(text + 5, 2) || text[7] != '-' || !all_digits(text + 8, 2) ||
	    text[10] != ' ' || !all_digits(text + 11, 2) || text[13] != ':' ||
	    !all_digits(text + 14, 2) || text[16] != ':' || !all_digits(text + 17, 2))
		return json_string(text);
	memcpy(out, text, n + 1);
	out[10] = 'T';
	i = 19;
	if (out[i] == '.' && isdigit((unsigned char)out[i + 1]))
		for (i++; isdigit((unsigned char)out[i]); i++)
			;
	if (!has_offset)
		return out[i] == '\0' ? json_string(out) : json_string(text);
	if ((out[i] != '+' && out[i] != '-') || !all_digits(out + i + 1, 2))
		return json_string(text);
	if (out[i + 3] == '\0')
		strlcat(out, ":00", sizeof(out));
	else if (out[i + 3] != ':' || !all_digits(out + i + 4, 2) || out[i + 6] != '\0')
		return json_string(text);
	return json_string(out);
}

json_t *
tool_value_json(unsigned type_oid, const char *text, int is_null)
{
	const char *errstr;
	long long n;
	double d;
	char *end;
	json_t *v;

	if (is_null || text == NULL)
		return json_null();
	switch (type_oid) {
	case OID_INT2:
	case OID_INT4:
	case OID_OID:
		n = strtonum(text, LLONG_MIN, LLONG_MAX, &errstr);
		return errstr == NULL ? json_integer(n) : json_string(text);
	case OID_FLOAT4:
	case OID_FLOAT8:
		errno = 0;
		d = strtod(text, &end);
		if (*text == '\0' || *end != '\0' || !isfinite(d))
			return json_string(text);
		return json_real(d);
	case OID_BOOL:
		if (strcmp(text, "t") == 0)
			return json_true();
		if (strcmp(text, "f") == 0)
			return json_false();
		return json_string(text);
	case OID_JSON:
	case OID_JSONB:
		v = json_loads(text, JSON_DECODE_ANY, NULL);
		return v != NULL ? v : json_string(text);
	case OID_TIMESTAMPTZ:
		return iso_timestamp(text, 1);
	case OID_TIMESTAMP:
		return iso_timestamp(text, 0);
	default:
		/* int8, numeric, date, text and the rest: the text itself. */
		return json_string(text);
	}
}

/*
 * Patterns for what a column type's values look like where no standard format says it.
 * They are plain POSIX extended expressions as well as ECMA 262 ones (the dialect JSON
 * Schema names), so both kinds of validator read them alike.  Beside RFC 3339, PostgreSQL's
 * own text for the dates and times RFC 3339 cannot write: the infinities, BC (year 1 BC
 * and before) and years past 9999.
 */
#define PAT_INT8	"^-?[0-9]+$"
#define PAT_NUMERIC	"^(-?[0-9]+(\\.[0-9]+)?|NaN|-?Infinity)$"
#define PAT_FLOAT	"^(NaN|-?Infinity)$"
#define PAT_PG_TIMESTAMPTZ "^(-?infinity|[0-9]{4,}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}" \
			"(\\.[0-9]+)?[+-][0-9]{2}(:[0-9]{2}){0,2}( BC)?)$"
#define PAT_TIMESTAMP	"^(-?infinity|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}" \
			"(\\.[0-9]+)?|[0-9]{4,}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}" \
			"(\\.[0-9]+)?( BC)?)$"
#define PAT_PG_DATE	"^(-?infinity|[0-9]{4}-[0-9]{2}-[0-9]{2} BC|[0-9]{5,}-[0-9]{2}-[0-9]{2})$"

/* A nullable string in a standard format, or PostgreSQL's text matching pattern. */
static json_t *
format_or_pattern(const char *format, const char *pattern, const char *description)
{
	return json_pack("{s:[{s:s, s:s}, {s:s, s:s}, {s:s}], s:s}", "anyOf",
	    "type", "string", "format", format,
	    "type", "string", "pattern", pattern,
	    "type", "null",
	    "description", description);
}

json_t *
tool_type_schema(unsigned type_oid)
{
	switch (type_oid) {
	case OID_INT2:
	case OID_INT4:
	case OID_OID:
		return json_pack("{s:[ss]}", "type", "integer", "null");
	case OID_INT8:
		return json_pack("{s:[ss], s:s, s:s}", "type", "string", "null", "pattern",
		    PAT_INT8, "description", "int8 as a decimal string.");
	case OID_NUMERIC:
		return json_pack("{s:[ss], s:s, s:s}", "type", "string", "null", "pattern",
		    PAT_NUMERIC, "description", "numeric as a decimal string, exactly as stored.");
	case OID_FLOAT4:
	case OID_FLOAT8:
		/* The pattern applies to strings only: NaN and the infinities come as strings. */
		return json_pack("{s:[sss], s:s}", "type", "number", "string", "null",
		    "pattern", PAT_FLOAT);
	case OID_BOOL:
		return json_pack("{s:[ss]}", "type", "boolean", "null");
	case OID_JSON:
	case OID_JSONB:
		/* Any JSON value, null included. */
		return json_object();
	case OID_TIMESTAMPTZ:
		return format_or_pattern("date-time", PAT_PG_TIMESTAMPTZ, "RFC 3339 in UTC; "
		    "infinity, -infinity, BC and years past 9999 as PostgreSQL writes them.");
	case OID_TIMESTAMP:
		/* RFC 3339's date-time needs an offset: no format, a pattern. */
		return json_pack("{s:[ss], s:s, s:s}", "type", "string", "null", "pattern",
		    PAT_TIMESTAMP, "description", "ISO 8601 without offset; infinity, -infinity, "
		    "BC and years past 9999 as PostgreSQL writes them.");
	case OID_DATE:
		return format_or_pattern("date", PAT_PG_DATE, "RFC 3339 full-date; infinity, "
		    "-infinity, BC and years past 9999 as PostgreSQL writes them.");
	case OID_UUID:
		return json_pack("{s:[ss], s:s}", "type", "string", "null", "format", "uuid");
	default:
		return json_pack("{s:[ss]}", "type", "string", "null");
	}
}

/*
 * structuredContent.error, the same in every tool's schema: a tool error (isError true)
 * carries {reason, message, ...} and no result fields.  Its reasons grow with the
 * gateway, so the schema names them in prose rather than in an enum a client would
 * enforce.
 */
static const char error_schema[] =
    "{\"type\": \"object\", \"required\": [\"reason\", \"message\"],"
    " \"description\": \"Set instead of the result when the call failed as a tool error"
    " (isError true): something the caller can correct.\","
    " \"properties\": {"
    "\"reason\": {\"type\": \"string\", \"description\": \"Why, one of a fixed set:"
    " invalid_arguments, row_cap_exceeded, constraint_violated, program_failed,"
    " sandbox_limit, and on /mcp key_required, key_mismatch, binding_mismatch,"
    " plan_stale, plan_mismatch, plan_expired.\"},"
    "\"message\": {\"type\": \"string\"},"
    "\"argument\": {\"type\": \"string\", \"description\": \"The argument at fault.\"},"
    "\"count\": {\"type\": \"integer\", \"description\": \"row_cap_exceeded: the rows the"
    " call would change.\"},"
    "\"max_rows\": {\"type\": \"integer\", \"description\": \"row_cap_exceeded: the tool's"
    " limit.\"},"
    "\"constraint\": {\"type\": \"string\", \"description\": \"constraint_violated: its"
    " name.\"}}}";

/*
 * One branch of an output schema's anyOf: {description, required: names (stolen),
 * properties: {name: true, ...}}.  The top level's properties say what each member is; the
 * branch repeats the names only so that a strict validator (Ajv's strictRequired) sees
 * every required member defined where it is required.  Returns a new reference or NULL.
 */
static json_t *
branch(const char *description, json_t *names)
{
	json_t *props = json_object();
	size_t i;

	for (i = 0; i < json_array_size(names); i++)
		json_object_set_new(props, json_string_value(json_array_get(names, i)), json_true());
	return json_pack("{s:s, s:o, s:o}", "description", description, "required", names,
	    "properties", props);
}

/* The anyOf of a result (the names in ok, stolen) and a tool error, set on schema. */
static int
set_branches(json_t *schema, const char *ok_description, json_t *ok)
{
	return json_object_set_new(schema, "anyOf", json_pack("[o, o]",
	    branch(ok_description, ok),
	    branch("A tool error (isError true).", json_pack("[s]", "error"))));
}

/* The structuredContent schema of a read or write from its result columns: every result
 * has call_id, and either the rows (a write's with its changes and plan) or an error. */
static json_t *
rows_schema(const struct tool *t)
{
	json_t *cols, *schema = NULL, *props, *ok;
	size_t i;

	if ((cols = json_object()) == NULL)
		return NULL;
	for (i = 0; i < t->n_cols; i++)
		if (json_object_set_new(cols, t->col_names[i], tool_type_schema(t->col_types[i])) == -1)
			goto fail;
	schema = json_pack("{s:s, s:{s:{s:s, s:s}, s:{s:s, s:{s:s, s:o}}, s:{s:s}, s:{s:s}, s:{s:s,"
	    " s:s}, s:{s:s, s:s}, s:o}, s:[s]}",
	    "type", "object",
	    "properties",
	    "call_id", "type", "string", "description", "The call's id in the audit record.",
	    "rows", "type", "array", "items", "type", "object", "properties", cols,
	    "row_count", "type", "integer",
	    "truncated", "type", "boolean",
	    "dry_run", "type", "boolean", "description", "Whether this was a preview.",
	    "replayed", "type", "boolean", "description",
	    "Whether this is the stored answer of an earlier call with the same idempotency key.",
	    "error", json_loads(error_schema, 0, NULL),
	    "required", "call_id");
	cols = NULL;
	if (schema == NULL)
		goto fail;
	props = json_object_get(schema, "properties");
	if (t->kind != TOOL_WRITE)
		ok = json_pack("[ssss]", "rows", "row_count", "truncated", "dry_run");
	else if (json_object_set_new(props, "changes", json_pack("{s:s, s:s, s:{s:s, s:{s:{s:s},"
	    " s:{s:s}, s:{}, s:{}, s:{}}}}", "type", "array", "description",
	    "Per row changed: the action and the row before and after.", "items",
	    "type", "object", "properties", "table", "type", "string", "action", "type",
	    "string", "key", "before", "after")) == -1 ||
	    json_object_set_new(props, "plan_id", json_pack("{s:[ss], s:s}", "type", "string",
	    "null", "description", "A preview's plan: commit with this plan_id to do exactly "
	    "what it showed.")) == -1 ||
	    json_object_set_new(props, "note", json_pack("{s:s}", "type", "string")) == -1 ||
	    json_object_set_new(props, "status", json_pack("{s:s, s:s}", "type", "string",
	    "description", "approval_required: a preview held for an approver; nothing was "
	    "changed. Once an approver approves plan_id, commit with it.")) == -1 ||
	    json_object_set_new(props, "approval", json_pack("{s:s, s:s}", "type", "object",
	    "description", "With status approval_required: {four_eyes, expires_at}.")) == -1)
		goto fail;
	else
		ok = json_pack("[ssssss]", "rows", "row_count", "truncated", "dry_run", "changes",
		    "plan_id");
	if (set_branches(schema, "A result.", ok) == -1)
		goto fail;
	return schema;
fail:
	json_decref(cols);
	json_decref(schema);
	return NULL;
}

/* The structuredContent schema of a code tool: what code_run returns (gateway/code.c), the
 * program's outcome or, for a dry run, the plan; or a tool error, whose
 * structuredContent.error carries the same outcome fields for a program that failed. */
static const char code_output_schema[] =
    "{\"type\": \"object\", \"required\": [\"call_id\"], \"properties\": {"
    "\"call_id\": {\"type\": \"string\", \"description\": \"The call's id in the audit"
    " record.\"},"
    "\"dry_run\": {\"type\": \"boolean\"},"
    "\"exit_code\": {\"type\": [\"integer\", \"null\"],"
    " \"description\": \"The program's exit status; null when a signal ended it.\"},"
    "\"signal\": {\"type\": \"integer\", \"description\": \"The signal that ended it, or 0.\"},"
    "\"limit\": {\"type\": [\"string\", \"null\"],"
    " \"enum\": [\"wall\", \"cpu\", \"memory\", \"pids\", \"fsize\", \"output\", null],"
    " \"description\": \"The sandbox limit that stopped the program, or null.\"},"
    "\"limits_hit\": {\"type\": \"array\", \"items\": {\"type\": \"string\"},"
    " \"description\": \"Every limit reached, stopping the program or not.\"},"
    "\"stdout\": {\"description\": \"The program's stdout: the JSON value when the whole of it"
    " is JSON, else text.\"},"
    "\"stdout_truncated\": {\"type\": \"boolean\"},"
    "\"stderr\": {\"type\": \"string\"},"
    "\"stderr_truncated\": {\"type\": \"boolean\"},"
    "\"wall_ms\": {\"type\": \"integer\"},"
    "\"cpu_ms\": {\"type\": [\"integer\", \"null\"]},"
    "\"peak_memory_bytes\": {\"type\": [\"integer\", \"null\"]},"
    "\"input_tool\": {\"type\": \"object\", \"description\": \"The read tool whose rows were"
    " the input.\", \"properties\": {\"name\": {\"type\": \"string\"},"
    " \"row_count\": {\"type\": \"integer\"}, \"truncated\": {\"type\": \"boolean\"}}},"
    "\"plan\": {\"type\": \"object\", \"description\": \"Dry run only: what would run.\","
    " \"properties\": {\"interpreter\": {\"type\": \"string\"},"
    " \"limits\": {\"type\": \"object\"},"
    " \"allow\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}},"
    " \"isolation\": {\"type\": \"string\", \"enum\": [\"namespace\", \"gvisor\"]},"
    " \"input_bytes\": {\"type\": [\"integer\", \"null\"]},"
    " \"input_tool\": {\"type\": \"string\"}}}"
    "}}";

static json_t *
code_schema(void)
{
	json_t *schema = json_loads(code_output_schema, 0, NULL);

	if (schema != NULL && (json_object_set_new(json_object_get(schema, "properties"), "error",
	    json_loads(error_schema, 0, NULL)) == -1 || set_branches(schema, "A run, or a dry "
	    "run's plan.", json_pack("[s]", "dry_run")) == -1)) {
		json_decref(schema);
		return NULL;
	}
	return schema;
}

json_t *
tool_output_schema(const struct tool *t)
{
	return t->kind == TOOL_CODE ? code_schema() : rows_schema(t);
}

/*
 * Checks a code tool's arguments schema against what code_run reads: code (a required
 * string), input (any JSON) and input_tool (an object).  Returns 0, or -1 with err.
 */
static int
check_code_args(json_t *schema, char *err, size_t errlen)
{
	json_t *props = json_object_get(schema, "properties"), *v, *type, *name;
	const char *key;
	size_t i;
	int is_required = 0;

	json_object_foreach(props, key, v) {
		if (!in_list(key, (const char *const[]){ "code", "input", "input_tool", NULL })) {
			log_seterr(err, errlen, "a code tool's arguments are code, input and input_tool, "
			    "not '%s'", key);
			return -1;
		}
	}
	if ((v = json_object_get(props, "code")) != NULL) {
		json_array_foreach(json_object_get(schema, "required"), i, name) {
			if (json_is_string(name) && strcmp(json_string_value(name), "code") == 0)
				is_required = 1;
		}
		type = json_object_get(v, "type");
		if (!json_is_string(type) || strcmp(json_string_value(type), "string") != 0 ||
		    !is_required) {
			log_seterr(err, errlen, "argument 'code' of a code tool must be a required "
			    "string");
			return -1;
		}
	}
	if ((v = json_object_get(props, "input_tool")) != NULL) {
		type = json_object_get(v, "type");
		if (!json_is_string(type) || strcmp(json_string_value(type), "object") != 0) {
			log_seterr(err, errlen, "argument 'input_tool' of a code tool must be an object");
			return -1;
		}
	}
	return 0;
}

/* Checks and normalizes a code tool's "code" object; returns a new one or NULL.  Whether
 * gVisor can start here is checked only for a catalog loaded to be served (is_live: with a
 * database connection), not offline. */
static json_t *
check_code(json_t *code, int is_live, char *err, size_t errlen)
{
	json_t *interp, *limits, *allow, *v, *out_limits = NULL, *out_allow = NULL;
	json_t *isolation, *warm;
	const char *key, *s, *colon, *errstr;
	size_t i, k;
	char why[600];

	if (!json_is_object(code)) {
		log_seterr(err, errlen, "code must be an object {interpreter, limits, allow}");
		return NULL;
	}
	json_object_foreach(code, key, v) {
		if (!in_list(key, code_keys)) {
			log_seterr(err, errlen, "code: unknown key '%s' (known: interpreter, limits, "
			    "allow, isolation, warm)", key);
			return NULL;
		}
	}
	interp = json_object_get(code, "interpreter");
	if (!json_is_string(interp) || (strcmp(json_string_value(interp), "python3") != 0 &&
	    strcmp(json_string_value(interp), "sh") != 0)) {
		log_seterr(err, errlen, "code: interpreter must be \"python3\" or \"sh\"");
		return NULL;
	}
	limits = json_object_get(code, "limits");
	if (limits != NULL && !json_is_object(limits)) {
		log_seterr(err, errlen, "code: limits must be an object");
		return NULL;
	}
	json_object_foreach(limits, key, v) {
		for (k = 0; k < NLIMITS; k++)
			if (strcmp(key, limit_keys[k].name) == 0)
				break;
		if (k == NLIMITS) {
			log_seterr(err, errlen, "code: unknown limit '%s' (known: time_s, cpu_s, "
			    "mem_mb, pids, stdout_max, stderr_max)", key);
			return NULL;
		}
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > limit_keys[k].max) {
			log_seterr(err, errlen, "code: limit '%s' must be an integer from 1 to %lld",
			    key, (long long)limit_keys[k].max);
			return NULL;
		}
	}
	allow = json_object_get(code, "allow");
	if (allow != NULL && !json_is_array(allow)) {
		log_seterr(err, errlen, "code: allow must be an array of \"host:port\" strings");
		return NULL;
	}
	if (json_array_size(allow) > 64) {
		log_seterr(err, errlen, "code: allow lists more than 64 entries");
		return NULL;
	}
	json_array_foreach(allow, i, v) {
		s = json_string_value(v);
		if (s == NULL || (colon = strrchr(s, ':')) == NULL || colon == s ||
		    colon - s > 253) {
			log_seterr(err, errlen, "code: allow entry %zu must be \"host:port\"", i + 1);
			return NULL;
		}
		for (const char *p = s; p < colon; p++)
			if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' &&
			    !(s[0] == '[' && (*p == ':' || *p == '[' || *p == ']'))) {
				log_seterr(err, errlen, "code: allow entry '%s' has a bad host", s);
				return NULL;
			}
		strtonum(colon + 1, 1, 65535, &errstr);
		if (errstr != NULL || !all_digits(colon + 1, strlen(colon + 1))) {
			log_seterr(err, errlen, "code: allow entry '%s' needs a port from 1 to 65535",
			    s);
			return NULL;
		}
	}
	isolation = json_object_get(code, "isolation");
	if (isolation != NULL && (!json_is_string(isolation) ||
	    (strcmp(json_string_value(isolation), "namespace") != 0 &&
	    strcmp(json_string_value(isolation), "gvisor") != 0))) {
		log_seterr(err, errlen, "code: isolation must be \"namespace\" (bubblewrap) or "
		    "\"gvisor\" (runsc)");
		return NULL;
	}
	if (is_live && isolation != NULL && strcmp(json_string_value(isolation), "gvisor") == 0 &&
	    sb_gvisor_check(NULL, why, sizeof(why)) == -1) {
		log_seterr(err, errlen, "code: isolation \"gvisor\" is refused: %s (install "
		    "Debian's runsc package and run airlockd as root, or use \"namespace\")", why);
		return NULL;
	}
	warm = json_object_get(code, "warm");
	if (warm != NULL && (!json_is_integer(warm) || json_integer_value(warm) < 0 ||
	    json_integer_value(warm) > MAX_WARM)) {
		log_seterr(err, errlen, "code: warm must be an integer from 0 to %d", MAX_WARM);
		return NULL;
	}
	out_limits = limits != NULL ? json_deep_copy(limits) : json_object();
	out_allow = allow != NULL ? json_deep_copy(allow) : json_array();
	v = json_pack("{s:O, s:o, s:o, s:s, s:I}", "interpreter", interp, "limits", out_limits,
	    "allow", out_allow, "isolation", isolation != NULL ? json_string_value(isolation) :
	    "namespace", "warm", warm != NULL ? json_integer_value(warm) : (json_int_t)0);
	if (v == NULL)
		log_seterr(err, errlen, "out of memory");
	return v;
}

/* The schema for clients: a copy without the "sensitive" marks. */
static json_t *
client_schema(json_t *schema)
{
	json_t *copy = json_deep_copy(schema), *prop;
	const char *key;

	if (copy == NULL)
		return NULL;
	json_object_foreach(json_object_get(copy, "properties"), key, prop) {
		json_object_del(prop, "sensitive");
	}
	return copy;
}

/* Database checks. */

/* PostgreSQL's primary message for a failed result, else libpq's. */
static const char *
pg_message(const PGresult *res, PGconn *conn)
{
	const char *m = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	return m != NULL ? m : PQerrorMessage(conn);
}

/* Runs a parameterless command; 0, or -1 with res kept in *resp for the caller's message. */
static int
run_cmd(PGconn *conn, const char *sql, PGresult **resp)
{
	PGresult *res = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);

	if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK) {
		PQclear(res);
		return 0;
	}
	*resp = res;
	return -1;
}

/* Counts the plan nodes of type node_type in an EXPLAIN (FORMAT JSON) tree. */
static size_t
count_nodes(json_t *v, const char *node_type, json_t **last)
{
	const char *key;
	json_t *e, *nt;
	size_t i, n = 0;

	if (json_is_object(v)) {
		nt = json_object_get(v, "Node Type");
		if (json_is_string(nt) && strcmp(json_string_value(nt), node_type) == 0) {
			n++;
			if (last != NULL)
				*last = v;
		}
		json_object_foreach(v, key, e) {
			n += count_nodes(e, node_type, last);
		}
	}
	/* json_array_foreach does nothing for a value that is not an array. */
	json_array_foreach(v, i, e) {
		n += count_nodes(e, node_type, last);
	}
	return n;
}

/* Counts the ModifyTable nodes of a plan whose Operation is op. */
static size_t
count_modify(json_t *v, const char *op)
{
	const char *key;
	json_t *e, *nt, *o;
	size_t i, n = 0;

	if (json_is_object(v)) {
		nt = json_object_get(v, "Node Type");
		o = json_object_get(v, "Operation");
		if (json_is_string(nt) && strcmp(json_string_value(nt), "ModifyTable") == 0 &&
		    json_is_string(o) && strcmp(json_string_value(o), op) == 0)
			n++;
		json_object_foreach(v, key, e) {
			n += count_modify(e, op);
		}
	}
	json_array_foreach(v, i, e) {
		n += count_modify(e, op);
	}
	return n;
}

/*
 * Runs EXPLAIN (FORMAT JSON) EXECUTE on the prepared statement and checks its plan.
 * Returns 0, 1 when the connecting role may not plan the statement (no privileges: the
 * temporary view's check stands in), or -1 with err set.  Runs inside the check's
 * transaction, under a savepoint it rolls back to on a privilege error.
 */
static int
check_plan(PGconn *conn, const struct tool *t, const char *stmt, char *err, size_t errlen)
{
	struct buf q = { NULL, 0, 0, 0 };
	PGresult *res = NULL;
	json_t *plan = NULL;
	const char *state;
	size_t k, n;
	int rc = -1;

	buf_str(&q, "EXPLAIN (FORMAT JSON) EXECUTE ");
	buf_str(&q, stmt);
	for (k = 0; k < t->n_params; k++)
		buf_str(&q, k == 0 ? "(NULL" : ", NULL");
	if (t->n_params > 0)
		buf_str(&q, ")");
	if (q.failed) {
		log_seterr(err, errlen, "%s: out of memory", t->file);
		goto fail;
	}
	if (run_cmd(conn, "SAVEPOINT airlock_plan", &res) == -1) {
		log_seterr(err, errlen, "%s: cannot check the plan: %s", t->file, pg_message(res, conn));
		goto fail;
	}
	res = PQexecParams(conn, q.s, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state != NULL && strcmp(state, "42501") == 0) {
			PQclear(res);
			res = NULL;
			if (run_cmd(conn, "ROLLBACK TO SAVEPOINT airlock_plan", &res) == -1) {
				log_seterr(err, errlen, "%s: cannot check the plan: %s", t->file,
				    pg_message(res, conn));
				goto fail;
			}
			rc = 1;
			goto fail;
		}
		log_seterr(err, errlen, "%s: cannot plan the statement: %s", t->file,
		    pg_message(res, conn));
		goto fail;
	}
	if (PQntuples(res) != 1 || (plan = json_loads(PQgetvalue(res, 0, 0), 0, NULL)) == NULL) {
		log_seterr(err, errlen, "%s: cannot read the statement's plan", t->file);
		goto fail;
	}
	if (t->kind == TOOL_READ) {
		if (count_nodes(plan, "ModifyTable", NULL) > 0) {
			log_seterr(err, errlen, "%s: a read must not write: its plan modifies rows",
			    t->file);
			goto fail;
		}
		if (count_nodes(plan, "LockRows", NULL) > 0) {
			log_seterr(err, errlen, "%s: a read must not lock rows (FOR UPDATE/SHARE): "
			    "its plan locks rows", t->file);
			goto fail;
		}
	} else {
		/* One statement; it may change more than one table (a data-modifying WITH, as
		 * refund_invoice does), but only by INSERT and UPDATE. */
		n = count_nodes(plan, "ModifyTable", NULL);
		if (n == 0 || n != count_modify(plan, "Insert") + count_modify(plan, "Update")) {
			log_seterr(err, errlen, "%s: a write must be a single INSERT or UPDATE with "
			    "RETURNING", t->file);
			goto fail;
		}
	}
	rc = 0;
fail:
	PQclear(res);
	json_decref(plan);
	free(q.s);
	return rc;
}


/*
 * The dependency check of a read: a temporary view made from the statement as written
 * (orig), with each parameter replaced by a typed NULL, must depend on no adopted tenant
 * table directly, and its stored query must not lock rows.  Runs inside the check's
 * transaction, which the caller rolls back.
 */
static int
check_view(PGconn *conn, const struct tool *t, const char *orig, const char *stmt,
    char **types, char *err, size_t errlen)
{
	struct nullify nf = { t, types };
	struct buf q = { NULL, 0, 0, 0 }, tables = { NULL, 0, 0, 0 };
	PGresult *res = NULL;
	char view[128], fault[256];
	const char *params[1];
	int i, rc = -1;

	snprintf(view, sizeof(view), "pg_temp.%s_view", stmt);
	buf_str(&q, "CREATE TEMPORARY VIEW ");
	buf_str(&q, view);
	buf_str(&q, " AS ");
	if (scan_sql(orig, nullify_param, &nf, &q, fault, sizeof(fault)) == -1) {
		log_seterr(err, errlen, "%s: %s", t->file, fault);
		goto fail;
	}
	res = PQexecParams(conn, q.s, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_seterr(err, errlen, "%s: cannot check what the read depends on (as a view): %s",
		    t->file, pg_message(res, conn));
		goto fail;
	}
	PQclear(res);
	params[0] = view;
	res = PQexecParams(conn,
	    "SELECT DISTINCT format('%I.%I', n.nspname, c.relname) "
	    "FROM pg_rewrite r "
	    "JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid "
	    "JOIN pg_class c ON c.oid = d.refobjid "
	    "JOIN pg_namespace n ON n.oid = c.relnamespace "
	    "JOIN airlock.tenant_tables tt ON tt.schema_name = n.nspname "
	    "AND tt.table_name = c.relname "
	    "WHERE r.ev_class = $1::regclass AND d.refclassid = 'pg_class'::regclass "
	    "AND d.refobjid <> r.ev_class ORDER BY 1", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_seterr(err, errlen, "%s: cannot check what the read depends on: %s", t->file,
		    pg_message(res, conn));
		goto fail;
	}
	for (i = 0; i < PQntuples(res); i++) {
		buf_str(&tables, i > 0 ? ", " : "");
		buf_str(&tables, PQgetvalue(res, i, 0));
	}
	if (PQntuples(res) > 0) {
		log_seterr(err, errlen, "%s: the read uses the adopted tenant table%s %s directly; "
		    "read its _live view instead (soft-deleted rows left out)", t->file,
		    PQntuples(res) > 1 ? "s" : "", tables.failed ? "(many)" : tables.s);
		goto fail;
	}
	PQclear(res);
	res = PQexecParams(conn, "SELECT bool_or(ev_action::text ~ ':rowMarks \\(') "
	    "FROM pg_rewrite WHERE ev_class = $1::regclass", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		log_seterr(err, errlen, "%s: cannot check the read for locks: %s", t->file,
		    pg_message(res, conn));
		goto fail;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
		log_seterr(err, errlen, "%s: a read must not lock rows (FOR UPDATE/SHARE)", t->file);
		goto fail;
	}
	rc = 0;
fail:
	PQclear(res);
	free(q.s);
	free(tables.s);
	return rc;
}

/* The SQL names of the prepared statement's parameter types, one new string each. */
static char **
param_type_names(PGconn *conn, const PGresult *desc, size_t n, char *err, size_t errlen)
{
	struct buf arr = { NULL, 0, 0, 0 };
	PGresult *res = NULL;
	const char *params[1];
	char num[16], **types = NULL;
	size_t k;

	buf_str(&arr, "{");
	for (k = 0; k < n; k++) {
		snprintf(num, sizeof(num), "%s%u", k > 0 ? "," : "", PQparamtype(desc, (int)k));
		buf_str(&arr, num);
	}
	buf_str(&arr, "}");
	if (arr.failed || (types = calloc(n + 1, sizeof(*types))) == NULL) {
		log_seterr(err, errlen, "out of memory");
		goto fail;
	}
	params[0] = arr.s;
	res = PQexecParams(conn, "SELECT format_type(u.t, NULL) FROM unnest($1::oid[]) "
	    "WITH ORDINALITY AS u(t, i) ORDER BY u.i", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || (size_t)PQntuples(res) != n) {
		log_seterr(err, errlen, "cannot name the parameter types: %s", pg_message(res, conn));
		goto fail;
	}
	for (k = 0; k < n; k++)
		if ((types[k] = strdup(PQgetvalue(res, (int)k, 0))) == NULL) {
			log_seterr(err, errlen, "out of memory");
			goto fail;
		}
	PQclear(res);
	free(arr.s);
	return types;
fail:
	for (k = 0; types != NULL && k < n; k++)
		free(types[k]);
	free(types);
	PQclear(res);
	free(arr.s);
	return NULL;
}

/*
 * The database checks of one read or write: prepare, describe, plan, dependencies.
 * Fills the tool's result columns.  Leaves conn idle with nothing prepared.
 */
static int
check_statement(PGconn *conn, struct tool *t, const char *orig, const char *stmt, char *err,
    size_t errlen)
{
	PGresult *res = NULL;
	char **types = NULL, fault[512];
	size_t k, j;
	int prepared = 0, rc = -1, plan;

	res = PQprepare(conn, stmt, t->sql, 0, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_seterr(err, errlen, "%s: the statement does not prepare: %s", t->file,
		    pg_message(res, conn));
		goto fail;
	}
	prepared = 1;
	PQclear(res);
	res = PQdescribePrepared(conn, stmt);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_seterr(err, errlen, "%s: cannot describe the statement: %s", t->file,
		    pg_message(res, conn));
		goto fail;
	}
	if ((size_t)PQnparams(res) != t->n_params) {
		log_seterr(err, errlen, "%s: the statement has %d parameters, expected %zu", t->file,
		    PQnparams(res), t->n_params);
		goto fail;
	}
	if (PQnfields(res) == 0) {
		log_seterr(err, errlen, t->kind == TOOL_READ ? "%s: a read must return rows (one "
		    "SELECT)" : "%s: a write needs RETURNING (the changed rows are its result)",
		    t->file);
		goto fail;
	}
	t->n_cols = (size_t)PQnfields(res);
	if ((t->col_types = calloc(t->n_cols, sizeof(*t->col_types))) == NULL ||
	    (t->col_names = calloc(t->n_cols, sizeof(*t->col_names))) == NULL) {
		log_seterr(err, errlen, "%s: out of memory", t->file);
		goto fail;
	}
	for (k = 0; k < t->n_cols; k++) {
		t->col_types[k] = PQftype(res, (int)k);
		if ((t->col_names[k] = strdup(PQfname(res, (int)k))) == NULL) {
			log_seterr(err, errlen, "%s: out of memory", t->file);
			goto fail;
		}
		for (j = 0; j < k; j++)
			if (strcmp(t->col_names[j], t->col_names[k]) == 0) {
				log_seterr(err, errlen, "%s: the statement returns two columns named "
				    "'%s'; give them distinct names (AS)", t->file, t->col_names[k]);
				goto fail;
			}
	}
	if ((types = param_type_names(conn, res, t->n_params, fault, sizeof(fault))) == NULL) {
		log_seterr(err, errlen, "%s: %s", t->file, fault);
		goto fail;
	}
	PQclear(res);
	res = NULL;

	/* The rest happens in a transaction that is always rolled back. */
	if (run_cmd(conn, "BEGIN", &res) == -1 ||
	    run_cmd(conn, "SET LOCAL plan_cache_mode = force_generic_plan", &res) == -1) {
		log_seterr(err, errlen, "%s: %s", t->file, pg_message(res, conn));
		goto fail;
	}
	if ((plan = check_plan(conn, t, stmt, err, errlen)) == -1)
		goto fail;
	if (t->kind == TOOL_READ &&
	    check_view(conn, t, orig, stmt, types, err, errlen) == -1)
		goto fail;
	if (run_cmd(conn, "ROLLBACK", &res) == -1) {
		log_seterr(err, errlen, "%s: %s", t->file, pg_message(res, conn));
		goto fail;
	}
	rc = 0;
fail:
	PQclear(res);
	res = NULL;
	if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
		res = PQexec(conn, "ROLLBACK");
		PQclear(res);
		res = NULL;
	}
	if (prepared && PQstatus(conn) == CONNECTION_OK) {
		char sql[128];

		snprintf(sql, sizeof(sql), "DEALLOCATE %s", stmt);
		res = PQexec(conn, sql);
		PQclear(res);
	}
	for (k = 0; types != NULL && k < t->n_params; k++)
		free(types[k]);
	free(types);
	return rc;
}

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

/*
 * The inputSchema tools/list shows for a write that takes its call options as arguments:
 * input (borrowed) plus airlock_dry_run, airlock_idempotency_key and airlock_plan_id, none
 * required.  Returns a new reference, or NULL when out of memory.
 */
static json_t *
options_schema(json_t *input)
{
	json_t *s = json_deep_copy(input), *props;

	if (s == NULL)
		return NULL;
	props = json_object_get(s, "properties");
	if (props == NULL) {
		json_object_set_new(s, "properties", json_object());
		props = json_object_get(s, "properties");
	}
	if (json_object_set_new(props, TOOL_OPTION_DRY_RUN, json_pack("{s:s, s:s}",
	    "type", "boolean", "description", "Preview only: run the write, show per row what "
	    "it would change, change nothing. The answer's plan_id commits exactly that.")) == -1 ||
	    json_object_set_new(props, TOOL_OPTION_KEY, json_pack("{s:s, s:i, s:i, s:s}",
	    "type", "string", "minLength", 1, "maxLength", 255, "description", "Required to "
	    "commit: a key of your choice for this change. Send the same key when you retry, so "
	    "it happens once; a new change needs a new key.")) == -1 ||
	    json_object_set_new(props, TOOL_OPTION_PLAN, json_pack("{s:s, s:s, s:s}",
	    "type", "string", "pattern", "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
	    "[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", "description", "The plan_id of a preview: commit "
	    "only if the change is still exactly what the preview showed.")) == -1) {
		json_decref(s);
		return NULL;
	}
	return s;
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
		log_seterr(err, errlen, "%s: %s must be an integer from %u to %u", file, key, lo, hi);
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
		snprintf(err, errlen, "approval must be \"required\" or an object of above_rows, "
		    "argument and above, four_eyes");
		return -1;
	}
	json_object_foreach(v, k, x)
		if (!in_list(k, approval_keys)) {
			snprintf(err, errlen, "approval: unknown key '%.64s' (known: above_rows, "
			    "argument, above, four_eyes)", k);
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
			snprintf(err, errlen, "approval: above_rows must be an integer from 0 to %d",
			    MAX_ROWS_CAP);
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
		bits = prop != NULL ? type_bits(prop) : 0;
		if (!json_is_string(x) || prop == NULL ||
		    (bits & (T_INTEGER | T_NUMBER | T_STRING)) == 0) {
			snprintf(err, errlen, "approval: argument must name an integer, number or "
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

/* Loads and checks one manifest into t (zeroed); on failure t owns nothing. */
static int
load_one(const char *dir, const char *fname, PGconn *conn, const char *stmt, struct tool *t,
    char *err, size_t errlen)
{
	struct rewrite rw;
	struct buf sql = { NULL, 0, 0, 0 };
	struct stat st;
	json_error_t jerr;
	json_t *m = NULL, *v;
	const char *key, *kind, *statement;
	char fault[1024], base[80], word[16];
	size_t n;

	if (errlen > 0)
		err[0] = '\0';
	if (snprintf(t->file, sizeof(t->file), "%s/%s", dir, fname) >= (int)sizeof(t->file)) {
		log_seterr(err, errlen, "%s/%s: path too long", dir, fname);
		goto fail;
	}
	if (stat(t->file, &st) == -1) {
		log_seterr(err, errlen, "%s: %s", t->file, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_MANIFEST) {
		log_seterr(err, errlen, "%s: not a regular file of at most %d bytes", t->file,
		    MAX_MANIFEST);
		goto fail;
	}
	if ((m = json_load_file(t->file, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		log_seterr(err, errlen, "%s: line %d, column %d: %s", t->file, jerr.line,
		    jerr.column, jerr.text);
		goto fail;
	}
	if (!json_is_object(m)) {
		log_seterr(err, errlen, "%s: a manifest must be a JSON object", t->file);
		goto fail;
	}
	json_object_foreach(m, key, v) {
		if (!in_list(key, manifest_keys)) {
			log_seterr(err, errlen, "%s: unknown key '%s' (known: name, description, kind, "
			    "arguments, statement, max_rows, timeout_ms, title, destructive, idempotent, "
			    "call_options, code, approval)",
			    t->file, key);
			goto fail;
		}

	}
	/* name: the file's basename. */
	n = strlen(fname) - strlen(".json");
	if (n >= sizeof(base)) {
		log_seterr(err, errlen, "%s: the file name is too long for a tool name", t->file);
		goto fail;
	}
	memcpy(base, fname, n);
	base[n] = '\0';
	v = json_object_get(m, "name");
	if (!json_is_string(v) || !is_tool_name(json_string_value(v))) {
		log_seterr(err, errlen, "%s: name must match [a-z][a-z0-9_]{0,63}", t->file);
		goto fail;
	}
	if (strcmp(json_string_value(v), base) != 0) {
		log_seterr(err, errlen, "%s: name '%s' differs from the file's name; call the file "
		    "%s.json", t->file, json_string_value(v), json_string_value(v));
		goto fail;
	}
	strlcpy(t->name, json_string_value(v), sizeof(t->name));

	v = json_object_get(m, "description");
	if (!json_is_string(v) || json_string_length(v) == 0) {
		log_seterr(err, errlen, "%s: description must be a non-empty string", t->file);
		goto fail;
	}
	if ((t->description = strdup(json_string_value(v))) == NULL)
		goto fail;
	if ((v = json_object_get(m, "title")) != NULL) {
		if (!json_is_string(v)) {
			log_seterr(err, errlen, "%s: title must be a string", t->file);
			goto fail;
		}
		if ((t->title = strdup(json_string_value(v))) == NULL)
			goto fail;
	} else if ((t->title = humanised(t->name)) == NULL)
		goto fail;

	kind = json_string_value(json_object_get(m, "kind"));
	if (kind != NULL && strcmp(kind, "read") == 0)
		t->kind = TOOL_READ;
	else if (kind != NULL && strcmp(kind, "write") == 0)
		t->kind = TOOL_WRITE;
	else if (kind != NULL && strcmp(kind, "code") == 0)
		t->kind = TOOL_CODE;
	else {
		log_seterr(err, errlen, "%s: kind must be \"read\", \"write\" or \"code\"", t->file);
		goto fail;
	}
	if ((v = json_object_get(m, "destructive")) != NULL) {
		if (t->kind != TOOL_WRITE) {
			log_seterr(err, errlen, "%s: destructive applies to write tools only", t->file);
			goto fail;
		}
		if (!json_is_boolean(v)) {
			log_seterr(err, errlen, "%s: destructive must be true or false", t->file);
			goto fail;
		}
		t->is_destructive = json_is_true(v);
	} else
		t->is_destructive = t->kind == TOOL_WRITE;
	if (write_flag(m, "idempotent", 0, t, &t->is_idempotent, err, errlen) == -1 ||
	    write_flag(m, "call_options", 1, t, &t->has_call_options, err, errlen) == -1)
		goto fail;

	if ((v = json_object_get(m, "arguments")) == NULL) {
		log_seterr(err, errlen, "%s: arguments (a JSON Schema) is required", t->file);
		goto fail;
	}
	if (check_schema(v, fault, sizeof(fault)) == -1) {
		log_seterr(err, errlen, "%s: %s", t->file, fault);
		goto fail;
	}
	t->schema = json_incref(v);
	if ((t->input_schema = client_schema(t->schema)) == NULL)
		goto fail;
	if ((t->listed_schema = t->has_call_options ? options_schema(t->input_schema) :
	    json_incref(t->input_schema)) == NULL)
		goto fail;

	if (get_uint(m, "timeout_ms", DEFAULT_TIMEOUT, 1, MAX_TIMEOUT, &t->timeout_ms, t->file,
	    err, errlen) == -1)
		goto fail;
	if ((v = json_object_get(m, "approval")) != NULL &&
	    check_approval(t, v, fault, sizeof(fault)) == -1) {
		log_seterr(err, errlen, "%s: %s", t->file, fault);
		goto fail;
	}
	if (t->kind == TOOL_CODE) {
		if (json_object_get(m, "statement") != NULL || json_object_get(m, "max_rows") != NULL) {
			log_seterr(err, errlen, "%s: a code tool takes no statement and no max_rows",
			    t->file);
			goto fail;
		}
		if ((v = json_object_get(m, "code")) == NULL) {
			log_seterr(err, errlen, "%s: a code tool needs code: {interpreter, limits, "
			    "allow}", t->file);
			goto fail;
		}
		if ((t->code = check_code(v, conn != NULL, fault, sizeof(fault))) == NULL ||
		    check_code_args(t->schema, fault, sizeof(fault)) == -1) {
			log_seterr(err, errlen, "%s: %s", t->file, fault);
			goto fail;
		}
		if ((t->output_schema = code_schema()) == NULL)
			goto fail;
	} else {
		if (json_object_get(m, "code") != NULL) {
			log_seterr(err, errlen, "%s: code applies to code tools only", t->file);
			goto fail;
		}
		if (get_uint(m, "max_rows", DEFAULT_ROWS, 1, MAX_ROWS_CAP, &t->max_rows, t->file,
		    err, errlen) == -1)
			goto fail;
		v = json_object_get(m, "statement");
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > MAX_STATEMENT) {
			log_seterr(err, errlen, "%s: statement must be a non-empty string of at most "
			    "%d bytes", t->file, MAX_STATEMENT);
			goto fail;
		}
		statement = json_string_value(v);
		/* Unicode escapes (U&"...") could spell set_config without its letters: they
		 * are refused too, anywhere in the statement. */
		if (has_unicode_escape(statement)) {
			log_seterr(err, errlen, "%s: the statement uses a Unicode escape (U&); a tool's "
			    "statement names things plainly", t->file);
			goto fail;
		}
		if (strcasestr(statement, "set_config") != NULL) {
			log_seterr(err, errlen, "%s: the statement mentions set_config; a tool's "
			    "statement may not touch settings (it could switch roles)", t->file);
			goto fail;
		}
		first_keyword(statement, word, sizeof(word));
		if (t->kind == TOOL_READ && strcmp(word, "select") != 0 &&
		    strcmp(word, "with") != 0 && strcmp(word, "values") != 0 &&
		    strcmp(word, "table") != 0) {
			log_seterr(err, errlen, "%s: a read must be one SELECT (it starts with '%s')",
			    t->file, word);
			goto fail;
		}
		if (t->kind == TOOL_WRITE && strcmp(word, "delete") == 0) {
			log_seterr(err, errlen, "%s: DELETE is refused: there is no hard delete; write "
			    "an UPDATE that sets deleted_at", t->file);
			goto fail;
		}
		if (t->kind == TOOL_WRITE && strcmp(word, "insert") != 0 &&
		    strcmp(word, "update") != 0 && strcmp(word, "with") != 0) {
			log_seterr(err, errlen, "%s: a write must be a single INSERT or UPDATE with "
			    "RETURNING (it starts with '%s')", t->file, word);
			goto fail;
		}
		rw.t = t;
		rw.props = json_object_get(t->schema, "properties");
		if (scan_sql(statement, rewrite_param, &rw, &sql, fault, sizeof(fault)) == -1) {
			log_seterr(err, errlen, "%s: %s", t->file, fault);
			goto fail;
		}
		t->sql = sql.s;
		sql.s = NULL;
		if (conn != NULL && check_statement(conn, t, statement, stmt, err, errlen) == -1)
			goto fail;
		/* Checked as written, so its faults are named as written; then capped. */
		if (t->kind == TOOL_READ && cap_read(&t->sql, t->max_rows) == -1)
			goto fail;
		if ((t->output_schema = rows_schema(t)) == NULL)
			goto fail;
	}
	/* A read changes nothing, so it is idempotent; a write is when its manifest says so;
	 * a program is not (it may reach the world, or keep state in it).  The world beyond
	 * the gateway's own database is open only to a code tool with an egress allowlist. */
	t->annotations = json_pack("{s:s, s:b, s:b, s:b, s:b}",
	    "title", t->title,
	    "readOnlyHint", t->kind == TOOL_READ,
	    "destructiveHint", t->kind == TOOL_WRITE && t->is_destructive,
	    "idempotentHint", t->kind == TOOL_READ || (t->kind == TOOL_WRITE && t->is_idempotent),
	    "openWorldHint", t->kind == TOOL_CODE &&
	    json_array_size(json_object_get(t->code, "allow")) > 0);
	if (t->annotations == NULL)
		goto fail;
	json_decref(m);
	return 0;
fail:
	/* Every fault but an allocation's has set err by now. */
	if (errlen > 0 && err[0] == '\0')
		log_seterr(err, errlen, "%s: out of memory", t->file);
	free(sql.s);
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
	if (conn != NULL && (PQstatus(conn) != CONNECTION_OK ||
	    PQtransactionStatus(conn) != PQTRANS_IDLE)) {
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
