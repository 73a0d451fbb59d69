/* airlockctl tool: checks the tool catalog as airlockd would, and exports its schemas. */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <jansson.h>
#include "airlock/cli.h"
#include "airlock/sql.h"
#include "airlock/tool.h"

static const char *const tool_usage =
    "usage: airlockctl tool check [--tools DIR] [--db URL]\n"
    "       airlockctl tool export [--tools DIR] [--db URL] --format openai|anthropic|mcp\n"
    "                              [--token ID]\n"
    "\n"
    "check   loads every manifest (DIR/*.json) and runs the checks airlockd runs at start:\n"
    "        the manifest's keys and argument schema, named parameters, and against the\n"
    "        database: the statement prepares, touches no settings, a read neither writes\n"
    "        nor locks and uses the _live views of adopted tables, a write is one INSERT\n"
    "        or UPDATE with RETURNING.  Prints one line per tool; on the first fault,\n"
    "        names the file and the fault and exits 65.\n"
    "export  prints, after the same checks, a JSON array of the tools' schemas for one API:\n"
    "        openai     [{\"type\":\"function\",\"function\":{name, description, parameters,\n"
    "                   strict?}}]; strict: true where the schema qualifies for OpenAI's\n"
    "                   strict mode (every property required, every object closed, only\n"
    "                   the keywords strict mode accepts); stderr says why where not\n"
    "        anthropic  [{name, description, input_schema}]\n"
    "        mcp        [{name, title?, description, inputSchema, outputSchema, annotations}]\n"
    "        Properties marked sensitive are exported without the mark.  With --token,\n"
    "        only the tools that token grants, as its tools/list shows them.\n"
    "\n"
    "options:\n"
    "  --tools DIR      the catalog (default: $AIRLOCK_TOOLS, else ./tools)\n"
    "  --db URL         the database (default: $AIRLOCK_DB, else the dev-db's operator URL,\n"
    "                   else libpq's environment)\n"
    "  --format FORMAT  export only: openai, anthropic or mcp\n"
    "  --token ID       export only: the tools granted to the token with this id (exit 65\n"
    "                   when it is unknown, revoked or expired)\n"
    "  -h, --help       this text\n";

static const char *const kind_names[] = { "read", "write", "code" };

/*
 * OpenAI's strict mode (Structured Outputs for function calling) accepts a subset of JSON
 * Schema and rejects the whole request when a function marked strict falls outside it.  Its
 * documented rules, as this check applies them:
 * - the root is an object, not anyOf;
 * - every object sets additionalProperties: false and lists every one of its properties in
 *   required (an optional argument would have to become a union with null, which changes
 *   what the tool accepts, so such a schema is left non-strict rather than rewritten);
 * - only these keywords: type, properties, required, additionalProperties, enum, const,
 *   anyOf, items, $defs, $ref, description, title; for strings pattern and format (one of
 *   date-time, time, date, duration, email, hostname, ipv4, ipv6, uuid); for numbers
 *   minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf; for arrays minItems,
 *   maxItems.  minLength, maxLength and default, which manifests may use, are not among
 *   them.
 * A schema that breaks a rule keeps strict off (the gateway validates every call anyway);
 * the reason goes to stderr so the operator sees it.
 */
static const char *const strict_keywords[] = { "type", "properties", "required",
	"additionalProperties", "enum", "const", "anyOf", "items", "$defs", "$ref", "description",
	"title", "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
	"multipleOf", "minItems", "maxItems", NULL };
static const char *const strict_formats[] = { "date-time", "time", "date", "duration", "email",
	"hostname", "ipv4", "ipv6", "uuid", NULL };

static int
is_listed(const char *const *list, const char *s)
{
	for (; *list != NULL; list++)
		if (strcmp(*list, s) == 0)
			return 1;
	return 0;
}

static int
has_type(json_t *node, const char *type)
{
	json_t *t = json_object_get(node, "type"), *v;
	size_t i;

	if (json_is_string(t))
		return strcmp(json_string_value(t), type) == 0;
	json_array_foreach (t, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), type) == 0)
			return 1;
	return 0;
}

static int
is_required(json_t *node, const char *name)
{
	json_t *v;
	size_t i;

	json_array_foreach (json_object_get(node, "required"), i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
			return 1;
	return 0;
}

/* Whether node (at where, for the message) fits strict mode; else 0 and why in why. */
static int
fits_strict(json_t *node, const char *where, char *why, size_t len)
{
	const char *key, *fmt;
	char sub[256];
	json_t *v, *p;
	size_t i;

	if (!json_is_object(node)) {
		snprintf(why, len, "%s is not a schema object", where);
		return 0;
	}
	json_object_foreach (node, key, v)
		if (!is_listed(strict_keywords, key)) {
			snprintf(why, len, "%s uses '%s', which strict mode does not accept", where,
			    key);
			return 0;
		}
	fmt = json_string_value(json_object_get(node, "format"));
	if (json_object_get(node, "format") != NULL &&
	    (fmt == NULL || !is_listed(strict_formats, fmt))) {
		snprintf(why, len, "%s has a format strict mode does not know", where);
		return 0;
	}
	if (has_type(node, "object") || json_object_get(node, "properties") != NULL) {
		if (!json_is_false(json_object_get(node, "additionalProperties"))) {
			snprintf(why, len, "%s is an object without additionalProperties: false",
			    where);
			return 0;
		}
		json_object_foreach (json_object_get(node, "properties"), key, p) {
			if (!is_required(node, key)) {
				snprintf(why, len,
				    "argument '%s' is optional (strict mode requires "
				    "every property)",
				    key);
				return 0;
			}
			snprintf(sub, sizeof(sub), "argument '%s'", key);
			if (!fits_strict(p, sub, why, len))
				return 0;
		}
	}
	if ((v = json_object_get(node, "items")) != NULL && !fits_strict(v, where, why, len))
		return 0;
	json_array_foreach (json_object_get(node, "anyOf"), i, p)
		if (!fits_strict(p, where, why, len))
			return 0;
	json_object_foreach (json_object_get(node, "$defs"), key, p)
		if (!fits_strict(p, where, why, len))
			return 0;
	return 1;
}

/* Whether a tool's input schema may be exported with strict: true; else why. */
static int
is_strict_schema(json_t *schema, char *why, size_t len)
{
	if (!has_type(schema, "object") || json_object_get(schema, "anyOf") != NULL) {
		snprintf(why, len, "the root is not a plain object");
		return 0;
	}
	return fits_strict(schema, "the schema", why, len);
}

/* One tool's entry for an export format; returns a new reference or NULL. */
static json_t *
export_one(const char *cmd, const struct tool *t, const char *format)
{
	char why[320];
	json_t *o;

	if (strcmp(format, "openai") == 0) {
		o = json_pack("{s:s, s:{s:s, s:s, s:O}}", "type", "function", "function", "name",
		    t->name, "description", t->description, "parameters", t->input_schema);
		if (o == NULL)
			return NULL;
		if (is_strict_schema(t->input_schema, why, sizeof(why))) {
			if (json_object_set_new(json_object_get(o, "function"), "strict",
				json_true()) == -1) {
				json_decref(o);
				return NULL;
			}
		} else
			cli_warnx(cmd, "%s: strict off: %s", t->name, why);
		return o;
	}
	if (strcmp(format, "anthropic") == 0)
		return json_pack("{s:s, s:s, s:O}", "name", t->name, "description", t->description,
		    "input_schema", t->input_schema);
	/* MCP: exactly what tools/list shows, the call options' arguments included. */
	o = json_pack("{s:s, s:s, s:O, s:O, s:O}", "name", t->name, "description", t->description,
	    "inputSchema", t->listed_schema, "outputSchema", t->output_schema, "annotations",
	    t->annotations);
	if (o != NULL && t->title != NULL &&
	    json_object_set_new(o, "title", json_string(t->title)) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/*
 * The tools the token with this id grants, as a new JSON array of names in *out.  Returns
 * EX_OK, EX_DATAERR (after a message) when the token is unknown, revoked or expired, as
 * the gateway would refuse it, or EX_UNAVAILABLE.
 */
static int
token_tools(const char *cmd, PGconn *conn, const char *id, json_t **out)
{
	static const char sql[] =
	    "SELECT array_to_json(tools)::text AS tools, revoked_at IS NOT NULL AS is_revoked,"
	    " expires_at <= now() AS is_expired"
	    " FROM airlock.tokens WHERE id = $1";
	const char *values[1] = { id };
	PGresult *res;
	int rc = EX_OK;

	*out = NULL;
	if ((rc = sql_query(conn, cmd, sql, 1, values, &res)) != EX_OK)
		return rc;
	if (sql_rows(res) == 0) {
		cli_warnx(cmd, "no token with id %s", id);
		rc = EX_DATAERR;
	} else if (strcmp(db_text(res, 0, "is_revoked"), "t") == 0 ||
	    strcmp(db_text(res, 0, "is_expired"), "t") == 0) {
		cli_warnx(cmd, "token %s is %s", id,
		    strcmp(db_text(res, 0, "is_revoked"), "t") == 0 ? "revoked" : "expired");
		rc = EX_DATAERR;
	} else if ((*out = json_loads(db_text(res, 0, "tools"), 0, NULL)) == NULL) {
		cli_warnx(cmd, "out of memory");
		rc = EX_SOFTWARE;
	}
	sql_clear(res);
	return rc;
}

static int
is_granted(json_t *grants, const char *name)
{
	json_t *v;
	size_t i;

	json_array_foreach (grants, i, v)
		if (strcmp(json_string_value(v), name) == 0)
			return 1;
	return 0;
}

/* Prints the catalog (or the tools grants names, when not NULL) for one format; returns a
 * sysexits code. */
static int
run_export(const char *cmd, const struct catalog *cat, const char *format, json_t *grants)
{
	json_t *out = json_array(), *one;
	size_t i;
	int rc = EX_OK;

	if (out == NULL) {
		cli_warnx(cmd, "out of memory");
		return EX_SOFTWARE;
	}
	for (i = 0; i < cat->n; i++) {
		if (grants != NULL && !is_granted(grants, cat->tools[i].name))
			continue;
		if ((one = export_one(cmd, &cat->tools[i], format)) == NULL ||
		    json_array_append_new(out, one) == -1) {
			cli_warnx(cmd, "out of memory");
			rc = EX_SOFTWARE;
			goto fail;
		}
	}
	if (json_dumpf(out, stdout, JSON_INDENT(2)) == -1 || fputc('\n', stdout) == EOF ||
	    fflush(stdout) == EOF) {
		cli_warnx(cmd, "cannot write the export: %s", strerror(errno));
		rc = EX_IOERR;
	}
fail:
	json_decref(out);
	return rc;
}

static void
print_check(const struct catalog *cat, const char *dir)
{
	const struct tool *t;
	size_t i;

	for (i = 0; i < cat->n; i++) {
		t = &cat->tools[i];
		if (t->kind == TOOL_CODE)
			printf("ok  %-32s %-5s %zu argument%s, %s\n", t->name, kind_names[t->kind],
			    json_object_size(json_object_get(t->schema, "properties")),
			    json_object_size(json_object_get(t->schema, "properties")) == 1 ? ""
											    : "s",
			    json_string_value(json_object_get(t->code, "interpreter")));
		else
			printf("ok  %-32s %-5s %zu parameter%s, %zu column%s\n", t->name,
			    kind_names[t->kind], t->n_params, t->n_params == 1 ? "" : "s",
			    t->n_cols, t->n_cols == 1 ? "" : "s");
	}
	printf("%zu tool%s checked in %s\n", cat->n, cat->n == 1 ? "" : "s", dir);
}

int
cmd_tool(int argc, char **argv)
{
	static const struct option longopts[] = { { "tools", required_argument, NULL, 't' },
		{ "db", required_argument, NULL, 'D' }, { "format", required_argument, NULL, 'f' },
		{ "token", required_argument, NULL, 'k' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 } };
	const char *dir = NULL, *db = NULL, *format = NULL, *token = NULL, *sub, *env;
	json_t *grants = NULL;
	struct catalog *cat = NULL;
	struct stat st;
	PGconn *conn = NULL;
	char err[4096];
	int c, rc;

	while ((c = cli_getopt(argc, argv, "h", longopts)) != -1) {
		switch (c) {
		case 't':
			dir = optarg;
			break;
		case 'D':
			db = optarg;
			break;
		case 'f':
			format = optarg;
			break;
		case 'k':
			token = optarg;
			break;
		case 'h':
			fputs(tool_usage, stdout);
			return EX_OK;
		default:
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		cli_warnx(argv[0], "check or export? (see %s %s --help)", CLI_PROG, argv[0]);
		return EX_USAGE;
	}
	sub = argv[optind++];
	if (optind < argc) {
		cli_warnx(argv[0], "unexpected argument '%s' (see %s %s --help)", argv[optind],
		    CLI_PROG, argv[0]);
		return EX_USAGE;
	}
	if (strcmp(sub, "check") == 0) {
		if (format != NULL || token != NULL) {
			cli_warnx(argv[0], "--format and --token are for export");
			return EX_USAGE;
		}
	} else if (strcmp(sub, "export") == 0) {
		if (format == NULL ||
		    (strcmp(format, "openai") != 0 && strcmp(format, "anthropic") != 0 &&
			strcmp(format, "mcp") != 0)) {
			cli_warnx(argv[0], "export needs --format openai, anthropic or mcp");
			return EX_USAGE;
		}
	} else {
		cli_warnx(argv[0], "unknown subcommand '%s' (see %s %s --help)", sub, CLI_PROG,
		    argv[0]);
		return EX_USAGE;
	}
	if (dir == NULL)
		dir = (env = getenv("AIRLOCK_TOOLS")) != NULL && *env != '\0' ? env : "tools";
	if (stat(dir, &st) == -1) {
		cli_warnx(argv[0], "%s: %s", dir, strerror(errno));
		return EX_NOINPUT;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_warnx(argv[0], "%s: not a directory", dir);
		return EX_NOINPUT;
	}
	if ((conn = cli_connect(argv[0], db)) == NULL)
		return EX_UNAVAILABLE;
	if ((cat = tool_load(dir, conn, err, sizeof(err))) == NULL) {
		cli_warnx(argv[0], "%s", err);
		rc = sql_is_connected(conn) ? EX_DATAERR : EX_UNAVAILABLE;
		goto done;
	}
	if (strcmp(sub, "check") == 0) {
		print_check(cat, dir);
		rc = EX_OK;
	} else if (token == NULL || (rc = token_tools(argv[0], conn, token, &grants)) == EX_OK)
		rc = run_export(argv[0], cat, format, grants);
done:
	json_decref(grants);
	tool_catalog_free(cat);
	sql_close(conn);
	return rc;
}
