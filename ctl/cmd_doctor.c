/* airlockctl doctor: the containment self-check, as a table, for the operator. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "airlock/cli.h"
#include "airlock/doctor.h"
#include "airlock/sql.h"

static const char usage[] =
    "usage: airlockctl doctor [--db URL] [--gateway-role NAME] [--tools DIR]\n"
    "                         [--admin-key-file FILE] [--bwrap PATH] [--pid PID]\n"
    "\n"
    "Checks what containment rests on and prints one line per check (or per fault):\n"
    "check, status (ok, warn, FAIL, or skip when not asked for) and the object at fault.\n"
    "  database  the gateway role is not SUPERUSER, BYPASSRLS, CREATEROLE or INHERIT and\n"
    "            cannot SET ROLE to a role that is; owns no tenant table (the tables\n"
    "            airlock.tenant_tables lists) nor can become its owner; holds no privilege\n"
    "            on one, or its columns, directly or through PUBLIC; every tenant table\n"
    "            has row-level security enabled and forced, no policy keyed on a setting\n"
    "            and no permissive policy but tenant_isolation; every view over one is\n"
    "            security_invoker (a materialized view over one always fails); every\n"
    "            SECURITY DEFINER function pins its search_path; every primary key,\n"
    "            unique constraint or index, exclusion constraint and foreign key of a\n"
    "            tenant table holds the tenant column\n"
    "  argv      no running airlockd (or only --pid PID) has a password in its arguments\n"
    "  admin key --admin-key-file FILE is a regular file only its owner may read\n"
    "  sandbox   bwrap is not setuid, an unprivileged user can make a user namespace,\n"
    "            the kernel has seccomp filters: failures when the catalog (--tools) has\n"
    "            a code tool, else warnings\n"
    "  gvisor    runsc starts a sandbox here: a failure when a code tool asks for\n"
    "            \"isolation\": \"gvisor\", else a warning\n"
    "\n"
    "options:\n"
    "  --db URL              the database (default: $AIRLOCK_DB, else the dev-db's\n"
    "                        operator URL, else libpq's environment)\n"
    "  --gateway-role NAME   the gateway's login role (default airlock_gateway)\n"
    "  --tools DIR           the tool catalog (default: $AIRLOCK_TOOLS, else ./tools)\n"
    "  --admin-key-file FILE the admin credential airlockd reads\n"
    "  --bwrap PATH          the bwrap the sandbox runs (default /usr/bin/bwrap)\n"
    "  --runsc PATH          the runsc the gVisor level runs (default /usr/bin/runsc)\n"
    "  --pid PID             check the arguments of this airlockd only (default: all)\n"
    "  -h, --help            this text\n"
    "Exit status: 0 every check passed (warnings allowed), 78 a check failed,\n"
    "64 bad usage, 69 database unreachable or a check's query failed.\n"
    "airlockd runs the database checks as its own role before it serves, and refuses.\n";

enum { O_DB = 256, O_ROLE, O_TOOLS, O_KEY, O_BWRAP, O_RUNSC, O_PID };

static const struct option options[] = {
	{ "db", required_argument, NULL, O_DB },
	{ "gateway-role", required_argument, NULL, O_ROLE },
	{ "tools", required_argument, NULL, O_TOOLS },
	{ "admin-key-file", required_argument, NULL, O_KEY },
	{ "bwrap", required_argument, NULL, O_BWRAP },
	{ "runsc", required_argument, NULL, O_RUNSC },
	{ "pid", required_argument, NULL, O_PID },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void
print(const struct doc_report *r)
{
	size_t i;

	printf("%-17s %-6s %s\n", "CHECK", "STATUS", "DETAIL");
	for (i = 0; i < r->n; i++)
		printf("%-17s %-6s %s\n", r->rows[i].check, doc_status_name(r->rows[i].status),
		    r->rows[i].detail);
}

int
cmd_doctor(int argc, char **argv)
{
	const char *db = NULL, *role = "airlock_gateway", *tools = getenv("AIRLOCK_TOOLS");
	const char *key = NULL, *bwrap = "/usr/bin/bwrap", *errstr;
	const char *runsc = NULL;
	struct doc_report r;
	PGconn *conn;
	int c, rc, pid = 0, has_code, has_gvisor;

	if (tools == NULL || *tools == '\0')
		tools = "tools";
	while ((c = cli_getopt(argc, argv, "h", options)) != -1)
		switch (c) {
		case O_DB:
			db = optarg;
			break;
		case O_ROLE:
			role = optarg;
			break;
		case O_TOOLS:
			tools = optarg;
			break;
		case O_KEY:
			key = optarg;
			break;
		case O_BWRAP:
			bwrap = optarg;
			break;
		case O_RUNSC:
			runsc = optarg;
			break;
		case O_PID:
			pid = (int)strtonum(optarg, 1, INT_MAX, &errstr);
			if (errstr != NULL) {
				cli_warnx("doctor", "--pid: \"%s\" is %s", optarg, errstr);
				return EX_USAGE;
			}
			break;
		case 'h':
			fputs(usage, stdout);
			return EX_OK;
		default:
			fputs(usage, stderr);
			return EX_USAGE;
		}
	if (optind != argc) {
		cli_warnx("doctor", "unexpected argument '%s'", argv[optind]);
		return EX_USAGE;
	}
	if ((conn = cli_connect("doctor", db)) == NULL)
		return EX_UNAVAILABLE;
	doc_report_init(&r);
	/* A failed query shows as a FAIL row and in has_db_error. */
	(void)doc_check_db(&r, conn, role);
	sql_close(conn);
	doc_check_argv(&r, pid);
	doc_check_key_file(&r, key);
	has_code = doc_catalog_needs(tools, &has_gvisor);
	doc_check_sandbox(&r, bwrap, has_code);
	doc_check_gvisor(&r, runsc, has_gvisor);
	print(&r);
	rc = r.has_db_error ? EX_UNAVAILABLE : r.has_failure ? EX_CONFIG : EX_OK;
	doc_report_free(&r);
	return rc;
}
