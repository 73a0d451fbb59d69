/* airlockctl call: show a recorded call with everything it changed; revert one as the operator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <jansson.h>

#include "airlock/audit.h"
#include "airlock/call.h"
#include "airlock/cli.h"
#include "airlock/sql.h"
#include "airlock/write.h"

static const char usage[] =
    "usage: airlockctl call show ID\n"
    "       airlockctl call revert ID [--dry-run] [--force]\n"
    "\n"
    "  show ID     the call record and every change it made, with full before and after\n"
    "              images, as JSON\n"
    "  revert ID   undo a recorded write from its before-images, as a new call (recorded,\n"
    "              its own changes captured); refuses when a row changed since, naming it,\n"
    "              unless --force.  --dry-run shows what it would do\n"
    "\n"
    "options: --db URL (default: $AIRLOCK_DB, else the dev-db operator URL); -h, --help\n"
    "Exit status: 0, 64 bad usage, 65 refused (no such call, not revertible, conflict),\n"
    "69 database unreachable.\n";

enum { O_DB = 256, O_DRY, O_FORCE };

static const struct option options[] = {
	{ "db", required_argument, NULL, O_DB },
	{ "dry-run", no_argument, NULL, O_DRY },
	{ "force", no_argument, NULL, O_FORCE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const char show_sql[] =
    "SELECT jsonb_pretty(jsonb_build_object('call', to_jsonb(c), 'changes',"
    " (SELECT coalesce(jsonb_agg(jsonb_build_object('table', x.table_name, 'key', x.key,"
    "  'op', x.op, 'before', x.before, 'after', x.after, 'at', x.at) ORDER BY x.id), '[]')"
    "  FROM airlock.changes x WHERE x.call_id = c.id))) AS call"
    " FROM airlock.calls c WHERE c.id = $1::uuid";

static int
show(PGconn *conn, const char *id)
{
	const char *values[1] = { id };
	PGresult *res;
	int rc = EX_OK;

	if ((rc = sql_query(conn, "call", show_sql, 1, values, &res)) != EX_OK)
		return rc;
	if (sql_rows(res) == 0) {
		cli_warnx("call", "no call %s", id);
		rc = EX_DATAERR;
	} else
		printf("%s\n", db_text(res, 0, "call"));
	sql_clear(res);
	return rc;
}

/* Finishes the operator's revert record before its commit. */
static void
finish(struct audit_record *rec, json_t *sc, void *arg)
{
	(void)arg;
	rec->outcome = "ok";
	call_digest(sc, rec->result_digest);
}

/* A dry-run's record: its transaction rolled back, so it is written now. */
static void
record_dry_run(PGconn *conn, struct audit_record *rec, json_t *sc)
{
	finish(rec, sc, NULL);
	/* A failure is said; the dry run's answer stands. */
	if (audit_record_now(conn, rec) == -1)
		sql_fail("call", conn, NULL);
}

static int
revert(PGconn *conn, const char *conninfo, const char *id, int is_dry_run, int is_force)
{
	struct rpc_error err = { 0 };
	struct audit_record rec;
	struct write_revert rv;
	struct write_req req;
	struct db db;
	char tenant[64], role[64], tool[65], key[AUDIT_ID_LEN + 8], *groups = NULL, *text;
	json_t *sc = NULL, *args;
	int is_replay, is_recorded, rc = EX_DATAERR;

	db_init(&db, conninfo);
	db.conn = conn;
	if (write_revert_target(&db, id, NULL, NULL, tenant, role, tool, &groups, &err) == -1) {
		cli_warnx("call", "%s", err.message);
		rc = err.code == RPC_UNAVAILABLE ? EX_UNAVAILABLE : EX_DATAERR;
		goto out;
	}
	audit_record_init(&rec, "airlock/calls.revert", "airlockctl");
	strlcpy(rec.tenant, tenant, sizeof(rec.tenant));
	strlcpy(rec.token_id, "operator", sizeof(rec.token_id));
	strlcpy(rec.tool, "airlock/calls.revert", sizeof(rec.tool));
	rec.arguments = args = json_pack("{s:s, s:b}", "call_id", id, "force", is_force);
	rec.is_dry_run = is_dry_run;
	snprintf(key, sizeof(key), "cli-%s", rec.id);
	write_revert_req(&rv, &req, id, groups, is_force, role, tenant);
	req.idem_key = is_dry_run ? NULL : key;
	req.is_dry_run = is_dry_run;
	req.rec = &rec;
	req.finish = finish;
	sc = write_run(&db, &req, &is_replay, &is_recorded, &err);
	if (sc == NULL) {
		cli_warnx("call", "%s", err.message);
		rc = err.code == RPC_UNAVAILABLE ? EX_UNAVAILABLE : EX_DATAERR;
	} else {
		if (is_dry_run)
			record_dry_run(conn, &rec, sc);
		text = json_dumps(sc, JSON_INDENT(2));
		printf("%s\n", text ? text : "");
		free(text);
		fprintf(stderr, "%s call %s as call %s\n", is_dry_run ? "would revert" : "reverted",
		    id, rec.id);
		rc = EX_OK;
	}
	audit_record_clear(&rec);
out:
	rpc_error_clear(&err);
	json_decref(sc);
	free(groups);
	db.conn = NULL; /* the caller's connection */
	db_close(&db);
	return rc;
}

int
cmd_call(int argc, char **argv)
{
	const char *db = NULL, *action;
	char conninfo[1024];
	int opt, is_dry_run = 0, is_force = 0, rc;
	PGconn *conn;

	while ((opt = cli_getopt(argc, argv, "h", options)) != -1) {
		switch (opt) {
		case 'h':
			fputs(usage, stdout);
			return EX_OK;
		case O_DB:
			db = optarg;
			break;
		case O_DRY:
			is_dry_run = 1;
			break;
		case O_FORCE:
			is_force = 1;
			break;
		default:
			return EX_USAGE;
		}
	}
	if (optind + 2 != argc ||
	    (strcmp(argv[optind], "show") != 0 && strcmp(argv[optind], "revert") != 0)) {
		fputs(usage, stderr);
		return EX_USAGE;
	}
	action = argv[optind];
	if (!audit_is_id(argv[optind + 1])) {
		cli_warnx("call", "%s is not a call id", argv[optind + 1]);
		return EX_USAGE;
	}
	if (cli_conninfo(db, conninfo, sizeof(conninfo)) == -1 ||
	    (conn = cli_connect("call", db)) == NULL)
		return EX_UNAVAILABLE;
	/* Images are compared as jsonb text, in which a timestamptz is written in the session's
	 * time zone: the gateway's sessions write and compare them in UTC, so this one must too,
	 * whatever PGTZ or the server's default says.  The revert's fingerprint is keyed. */
	if ((rc = sql_exec(conn, "call",
		 "SET datestyle = 'ISO'; SET timezone = 'UTC'; "
		 "SET intervalstyle = 'iso_8601'",
		 0, NULL)) != EX_OK) {
		sql_close(conn);
		return rc;
	}
	if (strcmp(action, "revert") == 0 && audit_key_load(conn) == -1) {
		cli_warnx("call", "cannot set up the session: %s", sql_conn_error(conn));
		sql_close(conn);
		return EX_UNAVAILABLE;
	}
	if (strcmp(action, "show") == 0)
		rc = show(conn, argv[optind + 1]);
	else
		rc = revert(conn, conninfo, argv[optind + 1], is_dry_run, is_force);
	sql_close(conn);
	return rc;
}
