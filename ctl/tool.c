/* airlockctl tool: checks the tool catalog as airlockd would, and exports its schemas. */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "airlock/cli.h"
#include "airlock/tool.h"

static const char *const tool_usage =
    "usage: airlockctl tool check [--tools DIR] [--db URL]\n"
    "       airlockctl tool export [--tools DIR] [--db URL] --format openai|anthropic|mcp\n"
    "\n"
    "check   loads every manifest (DIR/*.json) and runs the checks airlockd runs at start:\n"
    "        the manifest's keys and argument schema, named parameters, and against the\n"
    "        database: the statement prepares, touches no settings, a read neither writes\n"
    "        nor locks and uses the _live views of adopted tables, a write is one INSERT\n"
    "        or UPDATE with RETURNING.  Prints one line per tool; on the first fault,\n"
    "        names the file and the fault and exits 65.\n"
    "export  prints, after the same checks, a JSON array of the tools' schemas for one API:\n"
    "        openai     [{\"type\":\"function\",\"function\":{name, description, parameters}}]\n"
    "        anthropic  [{name, description, input_schema}]\n"
    "        mcp        [{name, title?, description, inputSchema, outputSchema, annotations}]\n"
    "        Properties marked sensitive are exported without the mark.\n"
    "\n"
    "options:\n"
    "  --tools DIR      the catalog (default: $AIRLOCK_TOOLS, else ./tools)\n"
    "  --db URL         the database (default: $AIRLOCK_DB, else the dev-db's operator URL,\n"
    "                   else libpq's environment)\n"
    "  --format FORMAT  export only: openai, anthropic or mcp\n"
    "  -h, --help       this text\n";

static const char *const kind_names[] = { "read", "write", "code" };

/* One tool's entry for an export format; returns a new reference or NULL. */
static json_t *
export_one(const struct tool *t, const char *format)
{
	json_t *o;

	if (strcmp(format, "openai") == 0)
		return json_pack("{s:s, s:{s:s, s:s, s:O}}", "type", "function", "function",
		    "name", t->name, "description", t->description, "parameters",
		    t->input_schema);
	if (strcmp(format, "anthropic") == 0)
		return json_pack("{s:s, s:s, s:O}", "name", t->name, "description",
		    t->description, "input_schema", t->input_schema);
	o = json_pack("{s:s, s:s, s:O, s:O, s:O}", "name", t->name, "description",
	    t->description, "inputSchema", t->input_schema, "outputSchema", t->output_schema,
	    "annotations", t->annotations);
	if (o != NULL && t->title != NULL &&
	    json_object_set_new(o, "title", json_string(t->title)) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Prints the catalog for one format; returns a sysexits code. */
static int
run_export(const char *cmd, const struct catalog *cat, const char *format)
{
	json_t *out = json_array(), *one;
	size_t i;
	int rc = EX_OK;

	if (out == NULL) {
		cli_warnx(cmd, "out of memory");
		return EX_SOFTWARE;
	}
	for (i = 0; i < cat->n; i++)
		if ((one = export_one(&cat->tools[i], format)) == NULL ||
		    json_array_append_new(out, one) == -1) {
			cli_warnx(cmd, "out of memory");
			rc = EX_SOFTWARE;
			goto fail;
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
			    json_object_size(json_object_get(t->schema, "properties")) == 1 ?
			    "" : "s", json_string_value(json_object_get(t->code, "interpreter")));
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
	static const struct option longopts[] = {
		{ "tools", required_argument, NULL, 't' },
		{ "db", required_argument, NULL, 'D' },
		{ "format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *dir = NULL, *db = NULL, *format = NULL, *sub, *env;
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
		if (format != NULL) {
			cli_warnx(argv[0], "--format is for export");
			return EX_USAGE;
		}
	} else if (strcmp(sub, "export") == 0) {
		if (format == NULL || (strcmp(format, "openai") != 0 &&
		    strcmp(format, "anthropic") != 0 && strcmp(format, "mcp") != 0)) {
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
		rc = PQstatus(conn) == CONNECTION_OK ? EX_DATAERR : EX_UNAVAILABLE;
		goto done;
	}
	if (strcmp(sub, "check") == 0) {
		print_check(cat, dir);
		rc = EX_OK;
	} else
		rc = run_export(argv[0], cat, format);
done:
	tool_catalog_free(cat);
	PQfinish(conn);
	return rc;
}
