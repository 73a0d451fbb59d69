/* tool.h: the tool catalog: manifests in tools/, checked when loaded, and the argument rules. */
/*
 * One module in several files, one section below each (gateway/tool.c and its tool_*.c
 * siblings).  A catalog owns its tools and everything they point to; tool_catalog_free frees
 * it all, and a tool or a schema taken from it is borrowed for as long as the catalog lives.
 */
#ifndef AIRLOCK_TOOL_H
#define AIRLOCK_TOOL_H

#include <limits.h>
#include <stddef.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "airlock/pgjson.h"

enum tool_kind { TOOL_READ, TOOL_WRITE, TOOL_CODE };

/*
 * A write's call options as arguments, for MCP hosts that pass nothing but a tool's
 * arguments: the gateway takes them out of the arguments before the tool's schema sees
 * them, and no manifest may declare a property with this prefix.
 */
#define TOOL_OPTION_PREFIX "airlock_"
#define TOOL_OPTION_DRY_RUN "airlock_dry_run"
#define TOOL_OPTION_KEY "airlock_idempotency_key"
#define TOOL_OPTION_PLAN "airlock_plan_id"

struct tool {
	char name[65];
	char file[PATH_MAX]; /* manifest path, for messages */
	char *description;
	char *title; /* the manifest's, else made from the name */
	enum tool_kind kind;
	int is_destructive;
	int is_idempotent;     /* a write the manifest says is idempotent */
	int has_call_options;  /* a write whose listed schema shows the call options */
	json_t *schema;	       /* the arguments schema as written (owned) */
	json_t *input_schema;  /* for clients: "sensitive" marks removed (owned) */
	json_t *listed_schema; /* what tools/list shows: input_schema, plus the call
				   options (TOOL_OPTION_*) for a write that takes them (owned) */
	json_t *output_schema; /* structuredContent schema built from the statement's
				   description (owned); for code: a fixed schema */
	json_t *annotations;   /* {title, readOnlyHint, destructiveHint, idempotentHint,
				   openWorldHint} (owned) */
	json_t *code;	       /* kind code: {interpreter, limits, allow} (owned), else NULL */
	char *sql;	       /* rewritten statement, $1..$n; NULL for code */
	char **params;	       /* $k binds argument params[k-1] */
	size_t n_params;
	unsigned *col_types; /* result column type OIDs */
	char **col_names;
	size_t n_cols;
	unsigned max_rows;
	unsigned timeout_ms;
	/* A write's "approval": a commit that needs it goes through only with a plan an
	 * approver approved; without one it is answered as a preview held for approval. */
	int has_approval;	/* the manifest sets approval */
	int is_approval_always; /* "required", or an object with no threshold */
	unsigned approval_rows; /* above_rows: more changed rows than this need it; 0: no */
	char *approval_arg;	/* argument: its value above approval_above needs it; or NULL */
	double approval_above;
	int is_four_eyes; /* the approver's task must differ from the asker's */
};

struct catalog {
	struct tool *tools;
	size_t n;
	unsigned long version; /* distinct for every load in this process (prepared
				   statement names carry it) */
};

/* tool.c: loading the catalog, finding a tool, a write's approval policy. */

/*
 * Loads and checks every *.json in dir (sorted by name), using conn (borrowed) for the
 * statement checks; conn is left idle, with nothing prepared, on every path.  conn may be
 * NULL: then only the checks that need no database run, and read/write tools have no
 * result columns (for tests and offline use; airlockd and airlockctl always pass one).
 * Returns a new catalog (free it with tool_catalog_free), or NULL with "FILE: fault" in err.
 */
struct catalog *tool_load(const char *dir, PGconn *conn, char *err, size_t errlen);

/* Frees cat and everything it owns; NULL allowed. */
void tool_catalog_free(struct catalog *cat);

/* Returns the tool named name (borrowed from cat), or NULL. */
const struct tool *tool_find(const struct catalog *cat, const char *name);

/*
 * Whether a call of write tool t with checked args (borrowed) needs approval whatever rows
 * it changes: always, or an approval argument above its threshold (a value that is not a
 * number, or a string that is not one, counts as above: fail closed).  Returns 1 or 0.
 */
int tool_needs_approval(const struct tool *t, json_t *args);

/* tool_schema.c: the arguments' JSON-Schema subset, and the output schemas. */

/*
 * Checks args (borrowed; NULL means no arguments) against t's schema.  Returns a new object
 * with defaults applied (and integral reals given to integer arguments made integers), or
 * NULL with a message naming the argument and the rule in msg, e.g. "argument 'customer_id'
 * must be an integer", "unexpected argument 'tenant'", "missing required argument
 * 'customer_id'".  *bad_arg (when bad_arg is not NULL) is set to the argument's name, or NULL
 * when no one argument is at fault; it points into t's schema or, for an unexpected
 * argument, into a thread-local buffer valid until this thread's next call.
 */
json_t *tool_check_args(const struct tool *t, json_t *args, const char **bad_arg, char *msg,
    size_t msglen);

/*
 * The outputSchema of t, by its kind and, for reads and writes, its result columns: the
 * shape of every structuredContent a tools/call of t can answer, tool errors included.
 * Returns a new reference, or NULL when out of memory.
 */
json_t *tool_output_schema(const struct tool *t);

/* tool_sql.c: a statement's named parameters, bound. */

/*
 * The text PostgreSQL receives for one argument value (borrowed): a new string (integers in
 * decimal, reals with %.17g, booleans true/false, strings as is, objects and arrays as
 * compact JSON), or NULL for JSON null, for NULL, and when out of memory.
 */
char *tool_arg_text(json_t *value);

/*
 * values[0..n_params-1] = tool_arg_text of each bound argument of args (borrowed; absent or
 * null → NULL).  Returns 0, or -1 when out of memory, with nothing left allocated.
 */
int tool_bind(const struct tool *t, json_t *args, char **values)
    __attribute__((warn_unused_result));

/* Frees what tool_bind put in values. */
void tool_unbind(const struct tool *t, char **values);

/* pgjson.c */

/*
 * pgjson_value (airlock/pgjson.h) under the name the read path calls it by.  Returns a new
 * reference, or NULL when out of memory.
 */
static inline json_t *
tool_value_json(unsigned type_oid, const char *text, int is_null)
{
	return pgjson_value(type_oid, text, is_null);
}

/* tool_check.c (the statement checks against PostgreSQL) and tool_code.c (a code tool's
 * manifest part) serve tool_load only. */

#endif
