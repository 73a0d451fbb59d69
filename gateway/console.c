/*
 * console.c: the audit console.  Three static files (gateway/console/), embedded in the
 * binary at build time (console_files.h, made by xxd -i), served at /console with headers
 * that let the page run only its own script and style and talk only to its own origin; and
 * the reads the page makes through JSON-RPC (calls.list, audit.state).  The page holds the
 * credential in memory only and sends it as a Bearer header: no cookie, so no request a
 * cross-site page can forge carries it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "airlock/console.h"
#include "airlock/log.h"
#include "console_files.h"

/* Nothing inline, nothing from elsewhere: script, style and fetch() from this origin only;
 * never framed; no form is ever submitted (the login form is read by the script). */
#define CONSOLE_CSP                                                                \
	"default-src 'self'; script-src 'self'; style-src 'self'; "                \
	"connect-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; " \
	"form-action 'none'; frame-ancestors 'none'"

static const struct {
	const char *path;
	const unsigned char *data;
	const unsigned int *len;
	const char *type;
} files[] = {
	{ "/console", gateway_console_index_html, &gateway_console_index_html_len,
	    "text/html; charset=utf-8" },
	{ "/console/", gateway_console_index_html, &gateway_console_index_html_len,
	    "text/html; charset=utf-8" },
	{ "/console/console.js", gateway_console_console_js, &gateway_console_console_js_len,
	    "text/javascript; charset=utf-8" },
	{ "/console/console.css", gateway_console_console_css, &gateway_console_console_css_len,
	    "text/css; charset=utf-8" },
	{ "/console/favicon.svg", gateway_console_favicon_svg, &gateway_console_favicon_svg_len,
	    "image/svg+xml" },
};
#define NFILES (sizeof(files) / sizeof(files[0]))

int
console_is_path(const char *path)
{
	return strcmp(path, "/console") == 0 || strncmp(path, "/console/", 9) == 0;
}

struct MHD_Response *
console_response(const char *path, unsigned *status)
{
	static const char not_found[] = "not found\n";
	struct MHD_Response *resp;
	size_t i;

	for (i = 0; i < NFILES && strcmp(files[i].path, path) != 0; i++)
		;
	if (i == NFILES) {
		*status = MHD_HTTP_NOT_FOUND;
		resp = MHD_create_response_from_buffer(strlen(not_found),
		    (void *)(uintptr_t)not_found, MHD_RESPMEM_PERSISTENT);
		if (resp != NULL)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
			    "text/plain; charset=utf-8");
		return resp;
	}
	*status = MHD_HTTP_OK;
	resp = MHD_create_response_from_buffer(*files[i].len, (void *)(uintptr_t)files[i].data,
	    MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return NULL;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, files[i].type);
	MHD_add_response_header(resp, "Content-Security-Policy", CONSOLE_CSP);
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
	MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return resp;
}

int
console_is_same_origin(const char *origin, const char *host)
{
	const char *rest;

	if (host == NULL || host[0] == '\0')
		return 0;
	if (strncasecmp(origin, "http://", 7) == 0)
		rest = origin + 7;
	else if (strncasecmp(origin, "https://", 8) == 0)
		rest = origin + 8;
	else
		return 0;
	return strcasecmp(rest, host) == 0;
}

static const char calls_sql[] =
    "SELECT jsonb_build_object('call_id', c.id, 'seq', c.seq,"
    " 'at', to_char(c.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
    " 'tenant', c.tenant, 'token_id', c.token_id, 'task', c.task, 'method', c.method,"
    " 'tool', c.tool, 'outcome', c.outcome, 'reason', c.reason, 'dry_run', c.dry_run,"
    " 'plan_id', c.plan_id, 'duration_ms', round(c.duration_ms::numeric, 3),"
    " 'changes', (SELECT count(*) FROM airlock.changes x WHERE x.call_id = c.id))::text AS call,"
    " c.seq FROM airlock.calls c"
    " WHERE ($1::text IS NULL OR c.tenant = $1) AND ($2::text IS NULL OR c.tool = $2)"
    " AND ($3::text IS NULL OR c.outcome = $3) AND ($4::timestamptz IS NULL OR c.at >= $4)"
    " AND ($5::timestamptz IS NULL OR c.at < $5) AND ($6::bigint IS NULL OR c.seq < $6)"
    " ORDER BY c.seq DESC LIMIT $7::integer + 1";

static const char chain_sql[] = "SELECT airlock.chain_state($1)::text AS state";

json_t *
console_calls(struct db *db, const struct console_filter *f, struct rpc_error *err)
{
	const char *values[7], *state;
	char limit[16];
	PGresult *res;
	json_t *calls = NULL, *out = NULL, *v;
	int i, n;

	snprintf(limit, sizeof(limit), "%d", f->limit);
	values[0] = f->tenant;
	values[1] = f->tool;
	values[2] = f->outcome;
	values[3] = f->from;
	values[4] = f->to;
	values[5] = f->before;
	values[6] = limit;
	if (db_ensure(db) == -1) {
		db_unavailable(err);
		return NULL;
	}
	res = db_exec(db, "console_calls", calls_sql, 7, values);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* Class 22: a time or a seq PostgreSQL could not read. */
		if (state != NULL && strncmp(state, "22", 2) == 0)
			rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
			    "from, to and before "
			    "must be a time (ISO 8601) and a seq");
		else {
			log_warn("calls.list: %s", PQresultErrorMessage(res));
			db_unavailable(err);
		}
		goto out;
	}
	calls = json_array();
	n = PQntuples(res) > f->limit ? f->limit : PQntuples(res);
	for (i = 0; i < n; i++)
		if ((v = json_loads(db_value(res, i, "call"), 0, NULL)) != NULL)
			json_array_append_new(calls, v);
	/* One more row than asked says there is a next page. */
	out = json_pack("{s:o, s:o}", "calls", calls, "next_before",
	    PQntuples(res) > f->limit ? json_string(db_text(res, n - 1, "seq")) : json_null());
out:
	PQclear(res);
	return out;
}

json_t *
console_chain(struct db *db, const char *tenant, struct rpc_error *err)
{
	const char *values[1] = { tenant };
	PGresult *res;
	json_t *out = NULL;

	if (db_ensure(db) == -1) {
		db_unavailable(err);
		return NULL;
	}
	res = db_exec(db, "console_chain", chain_sql, 1, values);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    (out = json_loads(db_value(res, 0, "state"), 0, NULL)) == NULL) {
		log_warn("audit.state: %s", PQresultErrorMessage(res));
		db_unavailable(err);
	}
	PQclear(res);
	return out;
}
