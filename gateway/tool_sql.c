/* tool_sql.c: a tool's statement: lexed, its named parameters rewritten to $n, and bound. */
/*
 * Statement parameters are named: $name outside string literals, quoted identifiers,
 * comments and dollar-quoted strings becomes $1..$n in order of first appearance, so a name
 * used twice binds once.  A positional $1 is refused, and so is a $name with no property.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "airlock/log.h"
#include "airlock/tool.h"
#include "tool_int.h"

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
int
tool_sql_scan(const char *sql, param_fn *fn, void *arg, struct buf *out, char *err, size_t errlen)
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
			log_seterr(err, errlen,
			    "positional parameter %.*s in the statement; name the "
			    "argument instead ($customer_id)",
			    (int)(j - i), sql + i);
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
int
tool_sql_cap_read(char **sql, unsigned max_rows)
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
rewrite_param(void *arg, const char *name, size_t len, struct buf *out, char *err, size_t errlen)
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
			log_seterr(err, errlen,
			    "statement parameter $%s has no property in arguments", key);
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

int
tool_sql_rewrite(struct tool *t, const char *statement, char *err, size_t errlen)
{
	struct rewrite rw;
	struct buf sql = { NULL, 0, 0, 0 };
	char fault[1024], word[16];

	/* Unicode escapes (U&"...") could spell set_config without its letters: they
	 * are refused too, anywhere in the statement. */
	if (has_unicode_escape(statement)) {
		log_seterr(err, errlen,
		    "%s: the statement uses a Unicode escape (U&); a tool's "
		    "statement names things plainly",
		    t->file);
		return -1;
	}
	if (strcasestr(statement, "set_config") != NULL) {
		log_seterr(err, errlen,
		    "%s: the statement mentions set_config; a tool's "
		    "statement may not touch settings (it could switch roles)",
		    t->file);
		return -1;
	}
	first_keyword(statement, word, sizeof(word));
	if (t->kind == TOOL_READ && strcmp(word, "select") != 0 && strcmp(word, "with") != 0 &&
	    strcmp(word, "values") != 0 && strcmp(word, "table") != 0) {
		log_seterr(err, errlen, "%s: a read must be one SELECT (it starts with '%s')",
		    t->file, word);
		return -1;
	}
	if (t->kind == TOOL_WRITE && strcmp(word, "delete") == 0) {
		log_seterr(err, errlen,
		    "%s: DELETE is refused: there is no hard delete; write "
		    "an UPDATE that sets deleted_at",
		    t->file);
		return -1;
	}
	if (t->kind == TOOL_WRITE && strcmp(word, "insert") != 0 && strcmp(word, "update") != 0 &&
	    strcmp(word, "with") != 0) {
		log_seterr(err, errlen,
		    "%s: a write must be a single INSERT or UPDATE with "
		    "RETURNING (it starts with '%s')",
		    t->file, word);
		return -1;
	}
	rw.t = t;
	rw.props = json_object_get(t->schema, "properties");
	if (tool_sql_scan(statement, rewrite_param, &rw, &sql, fault, sizeof(fault)) == -1) {
		log_seterr(err, errlen, "%s: %s", t->file, fault);
		free(sql.s);
		return -1;
	}
	t->sql = sql.s;
	return 0;
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
