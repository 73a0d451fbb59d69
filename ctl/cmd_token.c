/* airlockctl token: mint, revoke and list task-scoped tokens; make an admin credential. */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <jansson.h>

#include "airlock/audit.h"
#include "airlock/cli.h"
#include "airlock/sql.h"
#include "airlock/token.h"

static const char usage[] =
    "usage: airlockctl token mint --tenant T --tool NAME... [--bind ARG=VALUE]... --ttl TTL\n"
    "                             [--max-calls N] [--preview-only] [--revert] [--task ID]\n"
    "                             [--tools DIR]\n"
    "       airlockctl token mint --approver NAME --tenant T --ttl TTL [--task ID]\n"
    "       airlockctl token revoke ID\n"
    "       airlockctl token list [--tenant T]\n"
    "       airlockctl token admin-key FILE\n"
    "\n"
    "  mint        print a new token (alk_ + 43 characters) on a line of its own; only its\n"
    "              SHA-256 is stored. --tool is repeatable; --bind ARG=VALUE lets the token\n"
    "              pass only VALUE for argument ARG, and every granted tool but code tools\n"
    "              must take ARG (checked against the catalog in --tools DIR, default\n"
    "              $AIRLOCK_TOOLS, else ./tools); --ttl like 60s, 5m, 1h (at most 24h);\n"
    "              --max-calls caps tools/call and reverts; --preview-only turns every\n"
    "              call into a dry-run; --revert grants airlock/calls.revert; --task names\n"
    "              the task (default: the token id)\n"
    "  mint --approver NAME  an approver token for person NAME: it calls no tools; it\n"
    "              lists, reads, approves and rejects its tenant's plans held for approval\n"
    "              (airlock/plans.*) and reads its tenant's call record (the console)\n"
    "  revoke ID   revoke at once, on every gateway instance\n"
    "  list        one token per line: id, tenant, task, state, expires, calls used, tools\n"
    "              (approver:NAME for an approver token)\n"
    "  admin-key FILE  write a new admin credential (alkadm_...) to FILE, mode 0600;\n"
    "              airlockd --admin-key-file FILE picks it up without a restart\n"
    "\n"
    "options: --db URL (default: $AIRLOCK_DB, else the dev-db operator URL); -h, --help\n"
    "Exit status: 0, 64 bad usage, 65 refused (no such tenant or token, a binding a granted\n"
    "tool cannot honour), 66 no catalog to check bindings against, 69 database unreachable,\n"
    "73 cannot write FILE.\n";

enum {
	O_TENANT = 256,
	O_TOOL,
	O_BIND,
	O_TTL,
	O_MAX,
	O_PREVIEW,
	O_REVERT,
	O_TASK,
	O_DB,
	O_TOOLS,
	O_APPROVER
};

static const struct option options[] = {
	{ "tenant", required_argument, NULL, O_TENANT },
	{ "tool", required_argument, NULL, O_TOOL },
	{ "bind", required_argument, NULL, O_BIND },
	{ "ttl", required_argument, NULL, O_TTL },
	{ "max-calls", required_argument, NULL, O_MAX },
	{ "preview-only", no_argument, NULL, O_PREVIEW },
	{ "revert", no_argument, NULL, O_REVERT },
	{ "task", required_argument, NULL, O_TASK },
	{ "db", required_argument, NULL, O_DB },
	{ "tools", required_argument, NULL, O_TOOLS },
	{ "approver", required_argument, NULL, O_APPROVER },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Records a mint or revoke made here as a call, written as the gateway writes its own
 * (audit.c): rec was begun before the work, and is cleared here; args are stolen. */
static void
record(PGconn *conn, struct audit_record *rec, const char *tenant, json_t *args)
{
	strlcpy(rec->tenant, tenant, sizeof(rec->tenant));
	strlcpy(rec->token_id, "operator", sizeof(rec->token_id));
	rec->arguments = args;
	audit_record_end(rec);
	/* A failure is said and does not undo what was done. */
	if (audit_record_now(conn, rec) == -1)
		sql_fail("token", conn, NULL);
	audit_record_clear(rec);
}

static int
mint_token(const char *db, struct tok_spec *spec, const char *tools_dir)
{
	char token[TOK_LEN + 1], id[TOK_ID_LEN + 1], expires[40], err[512];
	struct audit_record rec;
	struct catalog *cat = NULL;
	const char *env;
	int is_user_error;
	PGconn *conn;
	json_t *args;

	/* Bindings are checked against the tools' arguments: the catalog's schemas, which
	 * need no database (its statements are airlockd's and tool check's to verify). */
	if (json_object_size(spec->bindings) > 0) {
		if (tools_dir == NULL)
			tools_dir =
			    (env = getenv("AIRLOCK_TOOLS")) != NULL && *env != '\0' ? env : "tools";
		if ((cat = tool_load(tools_dir, NULL, err, sizeof(err))) == NULL) {
			cli_warnx("token", "--bind is checked against the catalog: %s", err);
			return EX_NOINPUT;
		}
		spec->catalog = cat;
	}
	if ((conn = cli_connect("token", db)) == NULL) {
		tool_catalog_free(cat);
		return EX_UNAVAILABLE;
	}
	/* The token names its mint's record, written just after it. */
	audit_record_init(&rec, "airlock/tokens.mint", "airlockctl");
	spec->mint_call = rec.id;
	if (tok_mint(conn, spec, token, id, expires, sizeof(expires), err, sizeof(err),
		&is_user_error) == -1) {
		cli_warnx("token", "%s", err);
		sql_close(conn);
		tool_catalog_free(cat);
		audit_record_clear(&rec);
		return is_user_error ? EX_DATAERR : EX_UNAVAILABLE;
	}
	tool_catalog_free(cat);
	spec->catalog = NULL;
	args = json_pack("{s:s, s:s, s:O, s:O?, s:I, s:I, s:b, s:b}", "token_id", id, "tenant",
	    spec->tenant, "tools", spec->tools, "bindings", spec->bindings, "ttl",
	    (json_int_t)spec->ttl, "max_calls", (json_int_t)spec->max_calls, "preview_only",
	    spec->is_preview_only, "revert", spec->can_revert);
	if (spec->approver != NULL)
		json_object_set_new(args, "approver", json_string(spec->approver));
	record(conn, &rec, spec->tenant, args);
	printf("%s\n", token);
	fprintf(stderr, "%s %s for tenant %s, expires %s\n",
	    spec->approver ? "approver token" : "token", id, spec->tenant, expires);
	explicit_bzero(token, sizeof(token));
	sql_close(conn);
	return EX_OK;
}

static int
revoke_token(const char *db, const char *id)
{
	static const char sql[] =
	    "UPDATE airlock.tokens SET revoked_at = coalesce(revoked_at, now())"
	    " WHERE id = $1 RETURNING tenant";
	const char *values[1] = { id };
	struct audit_record rec;
	PGresult *res;
	PGconn *conn;
	int rc = EX_OK;

	if ((conn = cli_connect("token", db)) == NULL)
		return EX_UNAVAILABLE;
	audit_record_init(&rec, "airlock/tokens.revoke", "airlockctl");
	if ((rc = sql_query(conn, "token", sql, 1, values, &res)) != EX_OK) {
		sql_close(conn);
		return rc;
	}
	if (sql_rows(res) == 0) {
		cli_warnx("token", "no token with id %s", id);
		rc = EX_DATAERR;
	} else {
		record(conn, &rec, db_text(res, 0, "tenant"), json_pack("{s:s}", "token_id", id));
		printf("revoked %s\n", id);
	}
	sql_clear(res);
	sql_close(conn);
	return rc;
}

static int
list_tokens(const char *db, const char *tenant)
{
	static const char sql[] =
	    "SELECT id, tenant, task, CASE WHEN revoked_at IS NOT NULL THEN 'revoked'"
	    " WHEN expires_at <= now() THEN 'expired' ELSE 'active' END AS state,"
	    " to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS expires_at,"
	    " calls_used::text || '/' || coalesce(max_calls::text, '-') AS calls,"
	    " CASE WHEN approver IS NOT NULL THEN 'approver:' || approver"
	    " ELSE array_to_string(tools, ',') END AS grants"
	    " FROM airlock.tokens WHERE $1::text IS NULL OR tenant = $1 ORDER BY created_at, id";
	const char *values[1] = { tenant };
	PGresult *res;
	PGconn *conn;
	int i, rc = EX_OK;

	if ((conn = cli_connect("token", db)) == NULL)
		return EX_UNAVAILABLE;
	if ((rc = sql_query(conn, "token", sql, 1, values, &res)) == EX_OK)
		for (i = 0; i < sql_rows(res); i++)
			printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", db_text(res, i, "id"),
			    db_text(res, i, "tenant"), db_text(res, i, "task"),
			    db_text(res, i, "state"), db_text(res, i, "expires_at"),
			    db_text(res, i, "calls"), db_text(res, i, "grants"));
	sql_clear(res);
	sql_close(conn);
	return rc;
}

static int
admin_key(const char *path)
{
	char key[sizeof(TOK_ADMIN_PREFIX) + TOK_B64_LEN + 1];
	uint8_t raw[32];
	int fd, rc = EX_OK;

	arc4random_buf(raw, sizeof(raw));
	strlcpy(key, TOK_ADMIN_PREFIX, sizeof(key));
	tok_b64url(raw, key + strlen(TOK_ADMIN_PREFIX));
	explicit_bzero(raw, sizeof(raw));
	/* Written whole under a temporary name, then renamed, so a reader never sees half. */
	{
		char tmp[4096];

		if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", path) >= sizeof(tmp)) {
			cli_warnx("token", "path too long");
			return EX_USAGE;
		}
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd == -1 || fchmod(fd, 0600) == -1 ||
		    write(fd, key, strlen(key)) != (ssize_t)strlen(key) ||
		    write(fd, "\n", 1) != 1 || fsync(fd) == -1 || close(fd) == -1 ||
		    rename(tmp, path) == -1) {
			cli_warnx("token", "cannot write %s: %s", path, strerror(errno));
			rc = EX_CANTCREAT;
		}
	}
	explicit_bzero(key, sizeof(key));
	return rc;
}

int
cmd_token(int argc, char **argv)
{
	struct tok_spec spec;
	const char *db = NULL, *tools_dir = NULL, *errstr, *action;
	json_t *tools = json_array(), *bindings = json_object();
	char *eq;
	int opt, rc = EX_USAGE, ttl_set = 0;

	memset(&spec, 0, sizeof(spec));
	spec.tools = tools;
	while ((opt = cli_getopt(argc, argv, "h", options)) != -1) {
		switch (opt) {
		case 'h':
			fputs(usage, stdout);
			rc = EX_OK;
			goto out;
		case O_TENANT:
			spec.tenant = optarg;
			break;
		case O_TOOL:
			json_array_append_new(tools, json_string(optarg));
			break;
		case O_BIND:
			if ((eq = strchr(optarg, '=')) == NULL || eq == optarg) {
				cli_warnx("token", "--bind wants ARG=VALUE, not %s", optarg);
				goto out;
			}
			*eq = '\0';
			json_object_set_new(bindings, optarg, json_string(eq + 1));
			break;
		case O_TTL:
			if ((spec.ttl = tok_parse_ttl(optarg)) == -1) {
				cli_warnx("token", "--ttl %s: want 1s to 24h, like 60s, 5m, 1h",
				    optarg);
				goto out;
			}
			ttl_set = 1;
			break;
		case O_MAX:
			spec.max_calls = strtonum(optarg, 1, 1000000000, &errstr);
			if (errstr != NULL) {
				cli_warnx("token", "--max-calls %s: %s", optarg, errstr);
				goto out;
			}
			break;
		case O_PREVIEW:
			spec.is_preview_only = 1;
			break;
		case O_REVERT:
			spec.can_revert = 1;
			break;
		case O_TASK:
			spec.task = optarg;
			break;
		case O_DB:
			db = optarg;
			break;
		case O_TOOLS:
			tools_dir = optarg;
			break;
		case O_APPROVER:
			spec.approver = optarg;
			break;
		default:
			goto out;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		goto out;
	}
	action = argv[optind++];
	if (strcmp(action, "mint") == 0 && optind == argc) {
		if (spec.tenant == NULL ||
		    (json_array_size(tools) == 0) != (spec.approver != NULL) || !ttl_set) {
			cli_warnx("token",
			    "mint needs --tenant, --ttl and at least one --tool, or "
			    "--approver NAME and no --tool");
			goto out;
		}
		spec.bindings = bindings;
		rc = mint_token(db, &spec, tools_dir);
	} else if (strcmp(action, "revoke") == 0 && optind + 1 == argc)
		rc = revoke_token(db, argv[optind]);
	else if (strcmp(action, "list") == 0 && optind == argc)
		rc = list_tokens(db, spec.tenant);
	else if (strcmp(action, "admin-key") == 0 && optind + 1 == argc)
		rc = admin_key(argv[optind]);
	else
		cli_warnx("token", "unknown action or wrong arguments: %s (see --help)", action);
out:
	json_decref(tools);
	json_decref(bindings);
	return rc;
}
