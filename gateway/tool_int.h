/* tool_int.h: what the tool catalog's files (gateway/tool*.c) share, and nothing else includes. */
#ifndef AIRLOCK_TOOL_INT_H
#define AIRLOCK_TOOL_INT_H

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "airlock/tool.h"

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

static inline int
in_list(const char *key, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(key, *list) == 0)
			return 1;
	return 0;
}

/* Whether s is [a-z][a-z0-9_]{0,63}. */
static inline int
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

static inline void
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

static inline void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* Whether s[0..n) are all digits. */
static inline int
all_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

/*
 * Statement scanning.  A parameter callback appends the replacement for $name (name is not
 * NUL-terminated) and returns 0, or -1 after setting err.
 */
typedef int param_fn(void *arg, const char *name, size_t len, struct buf *out, char *err,
    size_t errlen);

/* Rewriting $name to $k: the tool collects its parameters as it goes. */
struct rewrite {
	struct tool *t;
	json_t *props;
};

/* tool_sql.c */
int scan_sql(const char *sql, param_fn *fn, void *arg, struct buf *out, char *err,
    size_t errlen);
int has_unicode_escape(const char *sql);
int cap_read(char **sql, unsigned max_rows);
void first_keyword(const char *sql, char *word, size_t len);
int rewrite_param(void *arg, const char *name, size_t len, struct buf *out, char *err,
    size_t errlen);

/* tool_schema.c */
int type_bits(json_t *prop);
int check_schema(json_t *schema, char *err, size_t errlen);
json_t *client_schema(json_t *schema);
json_t *rows_schema(const struct tool *t);
json_t *code_schema(void);

/* tool_code.c */
int check_code_args(json_t *schema, char *err, size_t errlen);
json_t *check_code(json_t *code, int is_live, char *err, size_t errlen);

/* tool_check.c */
int check_statement(PGconn *conn, struct tool *t, const char *orig, const char *stmt,
    char *err, size_t errlen);

#endif
