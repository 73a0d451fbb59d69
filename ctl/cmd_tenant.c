/* airlockctl tenant and table: tenants (their roles) and the tables given the tenant treatment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "airlock/cli.h"
#include "airlock/sql.h"

static const char *const tenant_usage =
    "usage: airlockctl tenant add NAME [--db URL]\n"
    "       airlockctl tenant list [--db URL]\n"
    "       airlockctl tenant disable|enable NAME [--db URL]\n"
    "       airlockctl tenant rate NAME RATE/BURST|default [--db URL]\n"
    "\n"
    "Tenants, each with its own NOLOGIN role tenant_NAME: the role a call runs as, and the\n"
    "value of the tenant column of the tenant's rows.\n"
    "\n"
    "  add NAME      create the role tenant_NAME (a member of airlock_tenants; the gateway\n"
    "                and the operator are made members of it) and the tenant; refuses a\n"
    "                role that already exists.  NAME: a lowercase letter, then up to 40\n"
    "                lowercase letters, digits or underscores\n"
    "  list          one tenant per line: name, role, enabled|disabled (tab-separated)\n"
    "  disable NAME  refuse the tenant's calls from now on (403 tenant_disabled)\n"
    "  enable NAME   accept them again\n"
    "  rate NAME R/B the tenant's own rate limit: R calls per second, bursts of B (token\n"
    "                bucket, per gateway instance); 'default' goes back to airlockd's\n"
    "                --rate-tenant.  Gateways read it with each call\n"
    "\n"
    "options:\n"
    "  --db URL     the database, as the operator role (default: $AIRLOCK_DB, else the\n"
    "               dev-db's operator URL, else libpq's environment)\n"
    "  -h, --help   this text\n"
    "\n"
    "Exit status: 0, 64 bad usage, 65 refused (bad or existing name, no such tenant),\n"
    "69 database unreachable or not migrated, 77 not allowed (not the operator role).\n";

static const char *const table_usage =
    "usage: airlockctl table adopt SCHEMA.TABLE... [--db URL]\n"
    "       airlockctl table list [--db URL]\n"
    "\n"
    "Tenant tables hold the rows of every tenant, told apart by their tenant column.\n"
    "\n"
    "  adopt T...   give each table the standard treatment, in one transaction: row-level\n"
    "               security enabled and forced, policy tenant_isolation (tenant =\n"
    "               current_user), the view T_live without soft-deleted rows\n"
    "               (security_invoker), SELECT/INSERT/UPDATE for tenant roles and never\n"
    "               DELETE or TRUNCATE; then record it.  Re-running it re-applies the\n"
    "               treatment.  Refuses a table without a tenant column (name NOT NULL), a\n"
    "               primary key or deleted_at, or whose primary key, unique constraints,\n"
    "               unique indexes or foreign keys (either way) leave out the tenant column;\n"
    "               then nothing is adopted\n"
    "  list         one adopted table per line: schema.table, adopted at (UTC)\n"
    "\n"
    "options:\n"
    "  --db URL     the database, as the operator role (default: $AIRLOCK_DB, else the\n"
    "               dev-db's operator URL, else libpq's environment)\n"
    "  -h, --help   this text\n"
    "\n"
    "Exit status: 0, 64 bad usage, 65 refused (no such table, or one that cannot be a\n"
    "tenant table), 69 database unreachable or not migrated, 77 not allowed.\n";

/* What a command line asked for, once options are parsed. */
struct request {
	const char *db;	 /* --db, or NULL */
	const char *sub; /* the subcommand */
	char **args;	 /* its operands */
	int nargs;
	char label[64]; /* "tenant add": the command as messages name it */
};

/*
 * Parses options and the subcommand.  Returns -1 to go on, or the exit code to return now
 * (EX_OK after --help, EX_USAGE after a message).
 */
static int
parse(int argc, char **argv, const char *usage, struct request *rq)
{
	static const struct option longopts[] = { { "db", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	int c;

	memset(rq, 0, sizeof(*rq));
	while ((c = cli_getopt(argc, argv, "h", longopts)) != -1) {
		switch (c) {
		case 'D':
			rq->db = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return EX_OK;
		default:
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		cli_warnx(argv[0], "what to do is missing (see %s %s --help)", CLI_PROG, argv[0]);
		return EX_USAGE;
	}
	rq->sub = argv[optind];
	rq->args = argv + optind + 1;
	rq->nargs = argc - optind - 1;
	snprintf(rq->label, sizeof(rq->label), "%s %.40s", argv[0], rq->sub);
	return -1;
}

/* Checks the operand count of a subcommand; prints a message and returns 0 when wrong. */
static int
has_args(const struct request *rq, const char *noun, int min, int max, const char *what)
{
	if (rq->nargs >= min && (max < 0 || rq->nargs <= max))
		return 1;
	if (rq->nargs < min)
		cli_warnx(rq->label, "%s is missing (see %s %s --help)", what, CLI_PROG, noun);
	else
		cli_warnx(rq->label, "unexpected argument '%s' (see %s %s --help)", rq->args[max],
		    CLI_PROG, noun);
	return 0;
}

static int
tenant_add(PGconn *conn, const struct request *rq)
{
	const char *params[1] = { rq->args[0] };
	PGresult *res;
	int ex = EX_OK;

	if ((ex = sql_query(conn, rq->label, "SELECT airlock.tenant_add($1) AS role", 1, params,
		 &res)) != EX_OK)
		return ex;
	printf("added tenant %s (role %s)\n", rq->args[0], db_text(res, 0, "role"));
	sql_clear(res);
	return EX_OK;
}

static int
tenant_list(PGconn *conn, const struct request *rq)
{
	PGresult *res;
	int ex = EX_OK, i;

	if ((ex = sql_query(conn, rq->label,
		 "SELECT name, role, CASE WHEN disabled THEN 'disabled' "
		 "ELSE 'enabled' END AS state FROM airlock.tenants ORDER BY name",
		 0, NULL, &res)) != EX_OK)
		return ex;
	for (i = 0; i < sql_rows(res); i++)
		printf("%s\t%s\t%s\n", db_text(res, i, "name"), db_text(res, i, "role"),
		    db_text(res, i, "state"));
	sql_clear(res);
	return EX_OK;
}

/* "R/B" (R > 0, B >= 1, both at most 1000000) or "default". Returns 0, or -1. */
static int
parse_rate(const char *s, char rate[32], char burst[32])
{
	char *end;
	double r, b;

	if (strcmp(s, "default") == 0) {
		rate[0] = burst[0] = '\0';
		return 0;
	}
	r = strtod(s, &end);
	if (end == s || *end != '/' || !(r > 0 && r <= 1e6))
		return -1;
	s = end + 1;
	b = strtod(s, &end);
	if (end == s || *end != '\0' || !(b >= 1 && b <= 1e6))
		return -1;
	snprintf(rate, 32, "%.6g", r);
	snprintf(burst, 32, "%.6g", b);
	return 0;
}

static int
tenant_rate(PGconn *conn, const struct request *rq)
{
	char rate[32], burst[32];
	const char *params[3];
	PGresult *res;
	int ex = EX_OK;

	if (parse_rate(rq->args[1], rate, burst) == -1) {
		cli_warnx(rq->label,
		    "%s: want RATE/BURST (e.g. 50/100, rate above 0, burst at "
		    "least 1) or default",
		    rq->args[1]);
		return EX_USAGE;
	}
	params[0] = rq->args[0];
	params[1] = rate[0] ? rate : NULL;
	params[2] = burst[0] ? burst : NULL;
	if ((ex = sql_query(conn, rq->label,
		 "UPDATE airlock.tenants SET rate_per_sec = $2::float8, "
		 "rate_burst = $3::float8 WHERE name = $1 RETURNING name",
		 3, params, &res)) != EX_OK)
		return ex;
	if (sql_rows(res) == 0) {
		cli_warnx(rq->label, "no tenant named %s", rq->args[0]);
		ex = EX_DATAERR;
	} else
		printf("tenant %s: rate %s\n", rq->args[0], rate[0] ? rq->args[1] : "default");
	sql_clear(res);
	return ex;
}

static int
tenant_toggle(PGconn *conn, const struct request *rq, int disable)
{
	const char *params[1] = { rq->args[0] };
	PGresult *res;
	int ex = EX_OK;

	if ((ex = sql_query(conn, rq->label,
		 disable ? "SELECT airlock.tenant_disable($1)" : "SELECT airlock.tenant_enable($1)",
		 1, params, &res)) != EX_OK)
		return ex;
	sql_clear(res);
	printf("%s tenant %s\n", disable ? "disabled" : "enabled", rq->args[0]);
	return EX_OK;
}

int
cmd_tenant(int argc, char **argv)
{
	struct request rq;
	PGconn *conn;
	int ex, disable = 0;

	if ((ex = parse(argc, argv, tenant_usage, &rq)) != -1)
		return ex;
	if (strcmp(rq.sub, "list") == 0) {
		if (!has_args(&rq, argv[0], 0, 0, ""))
			return EX_USAGE;
	} else if (strcmp(rq.sub, "add") == 0 || (disable = strcmp(rq.sub, "disable") == 0) ||
	    strcmp(rq.sub, "enable") == 0) {
		if (!has_args(&rq, argv[0], 1, 1, "the tenant's NAME"))
			return EX_USAGE;
	} else if (strcmp(rq.sub, "rate") == 0) {
		if (!has_args(&rq, argv[0], 2, 2, "the tenant's NAME and RATE/BURST"))
			return EX_USAGE;
	} else {
		cli_warnx(argv[0],
		    "unknown subcommand '%s': add, list, disable, enable or rate "
		    "(see %s %s --help)",
		    rq.sub, CLI_PROG, argv[0]);
		return EX_USAGE;
	}
	if ((conn = cli_connect(rq.label, rq.db)) == NULL)
		return EX_UNAVAILABLE;
	if (strcmp(rq.sub, "list") == 0)
		ex = tenant_list(conn, &rq);
	else if (strcmp(rq.sub, "add") == 0)
		ex = tenant_add(conn, &rq);
	else if (strcmp(rq.sub, "rate") == 0)
		ex = tenant_rate(conn, &rq);
	else
		ex = tenant_toggle(conn, &rq, disable);
	sql_close(conn);
	return ex;
}

/*
 * Adopts one table inside the caller's transaction and says what it did.  Returns EX_OK,
 * or an exit code after printing why not.
 */
static int
adopt_one(PGconn *conn, const struct request *rq, const char *table)
{
	const char *params[1] = { table };
	PGresult *res = NULL;
	char name[2 * 64 + 2];
	int ex = EX_OK, again;

	if (strchr(table, '.') == NULL) {
		cli_warnx(rq->label, "%s: name the table with its schema, e.g. billing.invoices",
		    table);
		return EX_DATAERR;
	}
	if ((ex = sql_query(conn, rq->label,
		 "SELECT n.nspname || '.' || c.relname AS name, EXISTS (SELECT 1 "
		 "FROM airlock.tenant_tables t WHERE t.schema_name = n.nspname AND t.table_name = "
		 "c.relname) AS is_adopted FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
		 "WHERE c.oid = to_regclass($1)",
		 1, params, &res)) != EX_OK)
		return ex;
	if (sql_rows(res) != 1) {
		cli_warnx(rq->label, "no such table: %s", table);
		sql_clear(res);
		return EX_DATAERR;
	}
	strlcpy(name, db_text(res, 0, "name"), sizeof(name));
	again = strcmp(db_text(res, 0, "is_adopted"), "t") == 0;
	sql_clear(res);

	if ((ex = sql_query(conn, rq->label, "SELECT airlock.adopt_table(to_regclass($1))", 1,
		 params, &res)) != EX_OK)
		return ex;
	sql_clear(res);
	printf("%s %s: row-level security forced, policy tenant_isolation, view %s_live, "
	       "grants without DELETE\n",
	    again ? "re-applied to" : "adopted", name, name);
	return EX_OK;
}

static int
table_adopt(PGconn *conn, const struct request *rq)
{
	int ex = EX_OK, i;

	if ((ex = sql_exec(conn, rq->label, "BEGIN", 0, NULL)) != EX_OK)
		return ex;
	for (i = 0; i < rq->nargs; i++)
		if ((ex = adopt_one(conn, rq, rq->args[i])) != EX_OK)
			goto fail;
	if ((ex = sql_exec(conn, rq->label, "COMMIT", 0, NULL)) != EX_OK)
		return ex;
	return EX_OK;
fail:
	sql_exec_quiet(conn, "ROLLBACK");
	if (i > 0 || rq->nargs > 1)
		cli_warnx(rq->label, "nothing was adopted (all or none)");
	return ex;
}

static int
table_list(PGconn *conn, const struct request *rq)
{
	PGresult *res;
	int ex = EX_OK, i;

	if ((ex = sql_query(conn, rq->label,
		 "SELECT schema_name || '.' || table_name AS name, "
		 "to_char(adopted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS adopted_at "
		 "FROM airlock.tenant_tables ORDER BY schema_name, table_name",
		 0, NULL, &res)) != EX_OK)
		return ex;
	for (i = 0; i < sql_rows(res); i++)
		printf("%s\t%s\n", db_text(res, i, "name"), db_text(res, i, "adopted_at"));
	sql_clear(res);
	return EX_OK;
}

int
cmd_table(int argc, char **argv)
{
	struct request rq;
	PGconn *conn;
	int ex;

	if ((ex = parse(argc, argv, table_usage, &rq)) != -1)
		return ex;
	if (strcmp(rq.sub, "list") == 0) {
		if (!has_args(&rq, argv[0], 0, 0, ""))
			return EX_USAGE;
	} else if (strcmp(rq.sub, "adopt") == 0) {
		if (!has_args(&rq, argv[0], 1, -1, "the table (SCHEMA.TABLE)"))
			return EX_USAGE;
	} else {
		cli_warnx(argv[0], "unknown subcommand '%s': adopt or list (see %s %s --help)",
		    rq.sub, CLI_PROG, argv[0]);
		return EX_USAGE;
	}
	if ((conn = cli_connect(rq.label, rq.db)) == NULL)
		return EX_UNAVAILABLE;
	ex = strcmp(rq.sub, "list") == 0 ? table_list(conn, &rq) : table_adopt(conn, &rq);
	sql_close(conn);
	return ex;
}
