/* tool_int.h: what the tool catalog's files (gateway/tool*.c) share; nothing else includes it. */
/*
 * The catalog is one module in several files, as it grew: tool.c loads a manifest and hands
 * each part to its sibling.  Their public functions are in airlock/tool.h; what one sibling
 * calls in another, and the small helpers all of them use, are here.
 */
#ifndef AIRLOCK_TOOL_INT_H
#define AIRLOCK_TOOL_INT_H

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

/* Whether key is one of list (NULL-terminated). */
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
		if (i > 63 ||
		    !((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
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

/*
 * Statement scanning.  A parameter callback appends the replacement for $name (name is not
 * NUL-terminated) and returns 0, or -1 after setting err.
 */
typedef int param_fn(void *arg, const char *name, size_t len, struct buf *out, char *err,
    size_t errlen);

/* tool_sql.c */

/*
 * Copies sql to out, replacing each named parameter through fn and each comment by a blank;
 * string literals, quoted identifiers and dollar-quoted strings are copied as they are.
 * Returns 0, or -1 with err set.
 */
int tool_sql_scan(const char *sql, param_fn *fn, void *arg, struct buf *out, char *err,
    size_t errlen);

/*
 * Checks statement (borrowed) for t's kind by its words alone, then sets t->sql to it with
 * each $name rewritten to $1..$n and t->params to the names in that order.  Returns 0, or -1
 * with "FILE: fault" in err.
 */
int tool_sql_rewrite(struct tool *t, const char *statement, char *err, size_t errlen);

/* Wraps the read *sql (owned; replaced) in a LIMIT of max_rows + 1.  Returns 0, or -1 when
 * out of memory, *sql unchanged. */
int tool_sql_cap_read(char **sql, unsigned max_rows);

/* tool_schema.c */

/* The T_* bits of a checked property's type. */
int tool_schema_type_bits(json_t *prop);

/*
 * Checks the arguments schema (borrowed) and sets t->schema (a new reference to it),
 * t->input_schema and t->listed_schema.  Returns 0, or -1 with "FILE: fault" in err, or
 * with err untouched when out of memory.
 */
int tool_schema_load(struct tool *t, json_t *schema, char *err, size_t errlen);

/* tool_code.c */

/*
 * Reads the code part of the manifest m (borrowed) of the code tool t into t->code, and
 * checks t's arguments schema against what a program takes.  is_live: the catalog is to be
 * served (whether gVisor starts here is checked then only).  Returns 0, or -1 with
 * "FILE: fault" in err.
 */
int tool_code_load(struct tool *t, json_t *m, int is_live, char *err, size_t errlen);

/* tool_check.c */

/*
 * The database checks of one read or write (orig: its statement as written; stmt: a
 * prepared-statement name free on conn).  Fills t's result columns; leaves conn idle with
 * nothing prepared.  Returns 0, or -1 with "FILE: fault" in err.
 */
int tool_check_statement(PGconn *conn, struct tool *t, const char *orig, const char *stmt,
    char *err, size_t errlen);

#endif
