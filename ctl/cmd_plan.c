/* airlockctl plan: list, show, approve and reject plans held for approval; watch them come. */
#include <sys/select.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <jansson.h>

#include "airlock/audit.h"
#include "airlock/cli.h"

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

static const char list_sql[] = "SELECT airlock.plans_held($1, $2::uuid, $3, 500)";

/* The preview an approver decides on: the asking call's arguments and changes. */
static const char show_sql[] =
    "SELECT jsonb_pretty(jsonb_build_object('plan', $2::jsonb, 'arguments', c.arguments,"
    " 'changes', (SELECT coalesce(jsonb_agg(jsonb_build_object('table', x.table_name,"
    "  'key', x.key, 'op', x.op, 'before', x.before, 'after', x.after) ORDER BY x.id), '[]')"
    "  FROM airlock.changes x WHERE x.call_id = c.id)))"
    " FROM airlock.calls c WHERE c.id = $1::uuid";

/* The decision's record and the decision, in one transaction (decide_plan checks that the
 * record is there). */
static const char record_sql[] =
    "INSERT INTO airlock.calls (id, at, tenant, token_id, method, tool, arguments, plan_id,"
    " outcome, result_digest, client)"
    " SELECT $1::uuid, now(), p.tenant, 'operator', $2, p.tool, $3::jsonb, p.id, 'ok', $4,"
    " 'airlockctl' FROM airlock.plans p WHERE p.id = $5::uuid AND p.approval IS NOT NULL";
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

	res = PQexecParams(conn, list_sql, 3, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_warnx("plan", "%s", PQresultErrorMessage(res));
		PQclear(res);
		return EX_UNAVAILABLE;
	}
	for (i = 0; i < PQntuples(res); i++) {
		if (is_json) {
			printf("%s\n", PQgetvalue(res, i, 0));
			continue;
		}
		if ((p = json_loads(PQgetvalue(res, i, 0), 0, NULL)) == NULL)
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
	PQclear(res);
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
	res = PQexecParams(conn, list_sql, 3, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_warnx("plan", "%s", PQresultErrorMessage(res));
		*rc = EX_UNAVAILABLE;
	} else if (PQntuples(res) == 0) {
		cli_warnx("plan", "no plan %s waits for approval", id);
		*rc = EX_DATAERR;
	} else if ((out = strdup(PQgetvalue(res, 0, 0))) == NULL)
		*rc = EX_OSERR;
	PQclear(res);
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
	res = PQexecParams(conn, show_sql, 2, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		cli_warnx("plan", "%s", PQresultErrorMessage(res));
		rc = EX_UNAVAILABLE;
	} else
		printf("%s\n", PQgetvalue(res, 0, 0));
	PQclear(res);
	free(plan);
	return rc;
}

static int
decide(PGconn *conn, const char *id, int is_approve, const char *note, const char *by)
{
	const char *rec_v[5], *values[5];
	char call_id[AUDIT_ID_LEN + 1], digest[65], *args_text = NULL;
	PGresult *res = NULL;
	json_t *args, *result;
	int rc = EX_UNAVAILABLE;

	if (!audit_is_id(id)) {
		cli_warnx("plan", "%s is not a plan id", id);
		return EX_DATAERR;
	}
	audit_new_id(call_id);
	args = json_pack("{s:s, s:s}", "plan_id", id, "approver", by);
	if (note != NULL)
		json_object_set_new(args, "note", json_string(note));
	args_text = json_dumps(args, JSON_COMPACT);
	/* The digest covers what the gateway's answer for a decision holds. */
	result = json_pack("{s:s, s:s, s:s, s:s, s:o}", "plan_id", id, "status",
	    is_approve ? "approved" : "rejected", "decided_by", "operator", "approver", by,
	    "note", note ? json_string(note) : json_null());
	audit_digest(result, digest);
	json_decref(result);
	rec_v[0] = call_id;
	rec_v[1] = is_approve ? "airlock/plans.approve" : "airlock/plans.reject";
	rec_v[2] = args_text;
	rec_v[3] = digest;
	rec_v[4] = id;
	values[0] = id;
	values[1] = is_approve ? "approved" : "rejected";
	values[2] = by;
	values[3] = note;
	values[4] = call_id;
	res = PQexec(conn, "BEGIN");
	PQclear(res);
	res = PQexecParams(conn, record_sql, 5, NULL, rec_v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		cli_warnx("plan", "%s", PQresultErrorMessage(res));
		goto out;
	}
	if (strcmp(PQcmdTuples(res), "1") != 0) {
		cli_warnx("plan", "no plan %s waits for approval", id);
		rc = EX_DATAERR;
		goto out;
	}
	PQclear(res);
	res = PQexecParams(conn, decide_sql, 5, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		cli_warnx("plan", "%s", PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) ?
		    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : PQerrorMessage(conn));
		if (state != NULL && strncmp(state, "AL", 2) == 0)
			rc = EX_DATAERR;
		goto out;
	}
	PQclear(res);
	res = PQexec(conn, "COMMIT");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		cli_warnx("plan", "%s", PQresultErrorMessage(res));
		goto out;
	}
	printf("%s %s (call %s)\n", is_approve ? "approved" : "rejected", id, call_id);
	rc = EX_OK;
out:
	PQclear(res);
	if (rc != EX_OK)
		PQclear(PQexec(conn, "ROLLBACK"));
	json_decref(args);
	free(args_text);
	return rc;
}

/* Prints each announcement on airlock_plans (of tenant, when not NULL) as a line, until
 * interrupted or count lines were printed (0: no end). */
static int
watch(PGconn *conn, const char *tenant, long long count)
{
	struct sigaction sa;
	PGnotify *n;
	PGresult *res;
	fd_set fds;
	json_t *v;
	int fd, printed = 0;

	res = PQexec(conn, "LISTEN airlock_plans");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		cli_warnx("plan", "%s", PQresultErrorMessage(res));
		PQclear(res);
		return EX_UNAVAILABLE;
	}
	PQclear(res);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* Listening from here on: a test (or a person) knows it will see what comes next. */
	fprintf(stderr, "watching airlock_plans\n");
	while (!stopping && (count == 0 || printed < count)) {
		fd = PQsocket(conn);
		FD_ZERO(&fds);
		FD_SET(fd, &fds);
		if (select(fd + 1, &fds, NULL, NULL, NULL) == -1) {
			if (errno == EINTR)
				continue;
			cli_warnx("plan", "select: %s", strerror(errno));
			return EX_OSERR;
		}
		if (PQconsumeInput(conn) == 0) {
			cli_warnx("plan", "%s", PQerrorMessage(conn));
			return EX_UNAVAILABLE;
		}
		while ((n = PQnotifies(conn)) != NULL) {
			v = json_loads(n->extra, 0, NULL);
			if (tenant == NULL || (v != NULL && strcmp(tenant,
			    json_string_value(json_object_get(v, "tenant")) ?: "") == 0)) {
				printf("%s\n", n->extra);
				fflush(stdout);
				printed++;
			}
			json_decref(v);
			PQfreemem(n);
			if (count > 0 && printed >= count)
				break;
		}
	}
	return EX_OK;
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
	if (!((strcmp(action, "list") == 0 || strcmp(action, "watch") == 0) ? optind == argc :
	    (strcmp(action, "show") == 0 || strcmp(action, "approve") == 0 ||
	    strcmp(action, "reject") == 0) && optind + 1 == argc)) {
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
	PQfinish(conn);
	return rc;
}
