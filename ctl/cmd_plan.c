/* airlockctl plan: list, show, approve and reject plans held for approval; watch them come. */
#include <sys/select.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <jansson.h>

#include "airlock/approval.h"
#include "airlock/audit.h"
#include "airlock/call.h"
#include "airlock/cli.h"
#include "airlock/sql.h"

static const char usage[] =
    "usage: airlockctl plan list [--tenant T] [--status S] [--json]\n"
    "       airlockctl plan show ID\n"
    "       airlockctl plan approve ID [--note TEXT] [--by NAME]\n"
    "       airlockctl plan reject ID [--note TEXT] [--by NAME]\n"
    "       airlockctl plan watch [--tenant T] [--count N]\n"
    "\n"
    "  list        plans held for an approver, newest first, one per line: id, tenant, tool,\n"
    "              status, asking task, rows (updated+inserted), expires, decided by;\n"
    "              --status pending (the default), approved, rejected, expired or all;\n"
    "              --json prints one JSON object per line instead\n"
    "  show ID     the plan, the asking call's arguments and its preview's changes (whole\n"
    "              images), as JSON\n"
    "  approve ID  approve a pending plan as the operator (recorded as a call of\n"
    "              airlock/plans.approve by 'operator', with the note and NAME, default\n"
    "              'operator'); the agent then commits with the plan_id\n"
    "  reject ID   reject it: a commit with the plan_id is refused from then on\n"
    "  watch       print each plan held for approval as it comes (LISTEN airlock_plans), one\n"
    "              line of JSON each, until interrupted; --count N stops after N\n"
    "\n"
    "options: --db URL (default: $AIRLOCK_DB, else the dev-db operator URL); -h, --help\n"
    "Exit status: 0, 64 bad usage, 65 refused (no such plan, decided already, expired),\n"
    "69 database unreachable.\n";

enum { O_DB = 256, O_TENANT, O_STATUS, O_JSON, O_NOTE, O_BY, O_COUNT };

static const struct option options[] = {
	{ "db", required_argument, NULL, O_DB },
	{ "tenant", required_argument, NULL, O_TENANT },
	{ "status", required_argument, NULL, O_STATUS },
	{ "json", no_argument, NULL, O_JSON },
	{ "note", required_argument, NULL, O_NOTE },
	{ "by", required_argument, NULL, O_BY },
	{ "count", required_argument, NULL, O_COUNT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const char list_sql[] = "SELECT airlock.plans_held($1, $2::uuid, $3, 500) AS plan";

/* The preview an approver decides on: the asking call's arguments and changes. */
static const char show_sql[] =
    "SELECT jsonb_pretty(jsonb_build_object('plan', $2::jsonb, 'arguments', c.arguments,"
    " 'changes', (SELECT coalesce(jsonb_agg(jsonb_build_object('table', x.table_name,"
    "  'key', x.key, 'op', x.op, 'before', x.before, 'after', x.after) ORDER BY x.id), '[]')"
    "  FROM airlock.changes x WHERE x.call_id = c.id))) AS preview"
    " FROM airlock.calls c WHERE c.id = $1::uuid";

/* The decision, in the transaction of its record (decide_plan checks that the record is
 * there). */
static const char decide_sql[] =
    "SELECT plan_tenant, plan_tool FROM airlock.decide_plan($1::uuid, $2, NULL, 'operator',"
    " NULL, $3, $4, $5::uuid)";

static volatile sig_atomic_t stopping;

static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static int
list_plans(PGconn *conn, const char *tenant, const char *status, int is_json)
{
	const char *values[3] = { tenant, NULL, status };
	PGresult *res;
	json_t *p;
	int i;

	if ((i = sql_query(conn, "plan", list_sql, 3, values, &res)) != EX_OK)
		return i;
	for (i = 0; i < sql_rows(res); i++) {
		if (is_json) {
			printf("%s\n", db_text(res, i, "plan"));
			continue;
		}
		if ((p = json_loads(db_text(res, i, "plan"), 0, NULL)) == NULL)
			continue;
		printf("%s\t%s\t%s\t%s\t%s\t%lld+%lld\t%s\t%s\n",
		    json_string_value(json_object_get(p, "plan_id")),
		    json_string_value(json_object_get(p, "tenant")),
		    json_string_value(json_object_get(p, "tool")),
		    json_string_value(json_object_get(p, "status")),
		    json_string_value(json_object_get(p, "asked_task")) ?: "-",
		    (long long)json_integer_value(json_object_get(p, "rows_updated")),
		    (long long)json_integer_value(json_object_get(p, "rows_inserted")),
		    json_string_value(json_object_get(p, "expires_at")),
		    json_string_value(json_object_get(p, "approver")) ?: "-");
		json_decref(p);
	}
	sql_clear(res);
	return EX_OK;
}

/* The plan id as the operator's one plan (its JSON, a new string), or NULL (printed). */
static char *
plan_json(PGconn *conn, const char *id, int *rc)
{
	const char *values[3] = { NULL, id, NULL };
	PGresult *res;
	char *out = NULL;

	*rc = EX_OK;
	if (!audit_is_id(id)) {
		cli_warnx("plan", "%s is not a plan id", id);
		*rc = EX_DATAERR;
		return NULL;
	}
	if ((*rc = sql_query(conn, "plan", list_sql, 3, values, &res)) != EX_OK)
		return NULL;
	if (sql_rows(res) == 0) {
		cli_warnx("plan", "no plan %s waits for approval", id);
		*rc = EX_DATAERR;
	} else if ((out = strdup(db_text(res, 0, "plan"))) == NULL)
		*rc = EX_OSERR;
	sql_clear(res);
	return out;
}

static int
show_plan(PGconn *conn, const char *id)
{
	const char *values[2];
	PGresult *res;
	char *plan;
	int rc;

	if ((plan = plan_json(conn, id, &rc)) == NULL)
		return rc;
	values[0] = id;
	values[1] = plan;
	if ((rc = sql_query(conn, "plan", show_sql, 2, values, &res)) != EX_OK) {
		free(plan);
		return rc;
	}
	if (sql_rows(res) != 1) {
		cli_warnx("plan", "plan %s cannot be shown", id);
		rc = EX_UNAVAILABLE;
	} else
		printf("%s\n", db_text(res, 0, "preview"));
	sql_clear(res);
	free(plan);
	return rc;
}

static int
decide(PGconn *conn, const char *id, int is_approve, const char *note, const char *by)
{
	const char *values[5], *tenant, *tool;
	struct audit_record rec;
	char *plan_text = NULL;
	PGresult *res = NULL;
	json_t *plan = NULL, *answer = NULL;
	int rc = EX_UNAVAILABLE;

	if (!audit_is_id(id)) {
		cli_warnx("plan", "%s is not a plan id", id);
		return EX_DATAERR;
	}
	/* The decision's record is the gateway's for airlock/plans.approve or .reject. */
	audit_record_init(&rec, is_approve ? "airlock/plans.approve" : "airlock/plans.reject",
	    "airlockctl");
	if ((rc = sql_exec(conn, "plan", "BEGIN", 0, NULL)) != EX_OK)
		goto out;
	/* No plan held for approval: EX_DATAERR, said by plan_json. */
	if ((plan_text = plan_json(conn, id, &rc)) == NULL)
		goto out;
	plan = json_loads(plan_text, 0, NULL);
	tenant = json_string_value(json_object_get(plan, "tenant"));
	tool = json_string_value(json_object_get(plan, "tool"));
	if (tenant == NULL || tool == NULL) {
		cli_warnx("plan", "plan %s cannot be read", id);
		rc = EX_UNAVAILABLE;
		goto out;
	}
	strlcpy(rec.tenant, tenant, sizeof(rec.tenant));
	strlcpy(rec.token_id, "operator", sizeof(rec.token_id));
	strlcpy(rec.tool, tool, sizeof(rec.tool));
	strlcpy(rec.plan_id, id, sizeof(rec.plan_id));
	rec.arguments = json_pack("{s:s, s:s}", "plan_id", id, "approver", by);
	if (note != NULL)
		json_object_set_new(rec.arguments, "note", json_string(note));
	/* The digest covers the gateway's answer to the same decision. */
	answer = approval_answer(id, is_approve, tenant, tool, "operator", by, note);
	call_digest(answer, rec.result_digest);
	audit_record_end(&rec);
	if (audit_record_now(conn, &rec) == -1) {
		rc = sql_fail("plan", conn, NULL);
		goto out;
	}
	values[0] = id;
	values[1] = is_approve ? "approved" : "rejected";
	values[2] = by;
	values[3] = note;
	values[4] = rec.id;
	/* A plan no longer pending, or expired, is refused with an AL... state: EX_DATAERR. */
	if ((rc = sql_query(conn, "plan", decide_sql, 5, values, &res)) != EX_OK)
		goto out;
	sql_clear(res);
	res = NULL;
	if ((rc = sql_exec(conn, "plan", "COMMIT", 0, NULL)) != EX_OK)
		goto out;
	printf("%s %s (call %s)\n", is_approve ? "approved" : "rejected", id, rec.id);
	rc = EX_OK;
out:
	sql_clear(res);
	if (rc != EX_OK)
		sql_exec_quiet(conn, "ROLLBACK");
	json_decref(plan);
	json_decref(answer);
	free(plan_text);
	audit_record_clear(&rec);
	return rc;
}

/* What watch's notifications go through. */
struct watching {
	const char *tenant; /* only its plans, or NULL */
	long long count;    /* stop after this many lines (0: no end) */
	long long printed;
};

/* Prints one announcement as a line when it is of the tenant watched.  Returns 1 when the
 * count is reached, else 0. */
static int
print_note(const char *payload, void *arg)
{
	struct watching *w = arg;
	json_t *v = json_loads(payload, 0, NULL);

	if (w->tenant == NULL ||
	    (v != NULL &&
		strcmp(w->tenant, json_string_value(json_object_get(v, "tenant")) ?: "") == 0)) {
		printf("%s\n", payload);
		fflush(stdout);
		w->printed++;
	}
	json_decref(v);
	return w->count > 0 && w->printed >= w->count;
}

/* Prints each announcement on airlock_plans (of tenant, when not NULL) as a line, until
 * interrupted or count lines were printed (0: no end). */
static int
watch(PGconn *conn, const char *tenant, long long count)
{
	struct watching w = { tenant, count, 0 };
	struct sigaction sa;
	int rc;

	if ((rc = sql_exec(conn, "plan", "LISTEN airlock_plans", 0, NULL)) != EX_OK)
		return rc;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* Listening from here on: a test (or a person) knows it will see what comes next. */
	fprintf(stderr, "watching airlock_plans\n");
	return sql_notifications(conn, "plan", print_note, &w, &stopping);
}

int
cmd_plan(int argc, char **argv)
{
	const char *db = NULL, *tenant = NULL, *status = "pending", *note = NULL;
	const char *by = "operator", *action, *errstr;
	long long count = 0;
	int opt, is_json = 0, rc = EX_USAGE;
	PGconn *conn;

	while ((opt = cli_getopt(argc, argv, "h", options)) != -1) {
		switch (opt) {
		case 'h':
			fputs(usage, stdout);
			return EX_OK;
		case O_DB:
			db = optarg;
			break;
		case O_TENANT:
			tenant = optarg;
			break;
		case O_STATUS:
			status = optarg;
			break;
		case O_JSON:
			is_json = 1;
			break;
		case O_NOTE:
			note = optarg;
			break;
		case O_BY:
			by = optarg;
			break;
		case O_COUNT:
			count = strtonum(optarg, 1, 1000000, &errstr);
			if (errstr != NULL) {
				cli_warnx("plan", "--count %s: %s", optarg, errstr);
				return EX_USAGE;
			}
			break;
		default:
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		return EX_USAGE;
	}
	action = argv[optind++];
	if (strcmp(status, "pending") != 0 && strcmp(status, "approved") != 0 &&
	    strcmp(status, "rejected") != 0 && strcmp(status, "expired") != 0 &&
	    strcmp(status, "all") != 0) {
		cli_warnx("plan", "--status: pending, approved, rejected, expired or all");
		return EX_USAGE;
	}
	if (strlen(by) == 0 || strlen(by) > 128 || (note != NULL && strlen(note) > 2000)) {
		cli_warnx("plan", "--by takes 1 to 128 characters, --note at most 2000");
		return EX_USAGE;
	}
	if (!((strcmp(action, "list") == 0 || strcmp(action, "watch") == 0)
		    ? optind == argc
		    : (strcmp(action, "show") == 0 || strcmp(action, "approve") == 0 ||
			  strcmp(action, "reject") == 0) &&
			optind + 1 == argc)) {
		cli_warnx("plan", "unknown action or wrong arguments: %s (see --help)", action);
		return EX_USAGE;
	}
	if ((conn = cli_connect("plan", db)) == NULL)
		return EX_UNAVAILABLE;
	if (strcmp(action, "list") == 0)
		rc = list_plans(conn, tenant, strcmp(status, "all") == 0 ? NULL : status, is_json);
	else if (strcmp(action, "show") == 0)
		rc = show_plan(conn, argv[optind]);
	else if (strcmp(action, "approve") == 0)
		rc = decide(conn, argv[optind], 1, note, by);
	else if (strcmp(action, "reject") == 0)
		rc = decide(conn, argv[optind], 0, note, by);
	else
		rc = watch(conn, tenant, count);
	sql_close(conn);
	return rc;
}
