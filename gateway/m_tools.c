/*
 * m_tools.c: the MCP methods: the handshake (initialize, server/discover, ping), tools/list
 * and tools/call, with what tools/call does around a tool: its parameters and call options,
 * what its record keeps of the arguments, and a write's answer and record (run_write, which
 * calls.revert shares).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "airlock/code.h"
#include "airlock/idem.h"
#include "airlock/read.h"
#include "airlock/stmt.h"
#include "methods_int.h"

/* How long a client may keep a tools/list answer: grants are fixed per token, and a
 * catalog reloaded with SIGHUP is seen within this. */
#define LIST_TTL_MS 60000
#define DISCOVER_TTL_MS 3600000

static const char instructions[] =
    "Tools run as one tenant under row-level security. A write is previewed with dry_run "
    "(which answers a plan_id), committed with an idempotency key of your choice (reuse it "
    "when retrying), and can be reverted. Hosts that pass only arguments use the write's "
    "airlock_dry_run, airlock_idempotency_key and airlock_plan_id arguments; adapters may "
    "send them in _meta as airlock/dryRun, airlock/idempotencyKey and airlock/planId.";

json_t *
m_initialize(void *vctx, const char *name, json_t *params, struct rpc_error *err)
{
	const char *asked = NULL, *chosen = gw_mcp_legacy[0];
	size_t i;

	(void)vctx;
	(void)name;
	if (params != NULL && !json_is_object(params)) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
		    "initialize takes params by name");
		return NULL;
	}
	if (params != NULL && json_object_get(params, "protocolVersion") != NULL) {
		asked = json_string_value(json_object_get(params, "protocolVersion"));
		if (asked == NULL) {
			rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
			    "protocolVersion must be a string");
			return NULL;
		}
		/* The client's version when spoken here, else ours, and the client decides. */
		for (i = 0; gw_mcp_legacy[i] != NULL; i++)
			if (strcmp(asked, gw_mcp_legacy[i]) == 0)
				chosen = gw_mcp_legacy[i];
	}
	return json_pack("{s:s, s:{s:{s:b}}, s:o, s:s}", "protocolVersion", chosen, "capabilities",
	    "tools", "listChanged", 0, "serverInfo", gw_server_info(), "instructions",
	    instructions);
}

/* server/discover (2026-07-28): what initialize told, for clients that send none.  The
 * same for everyone, so shared caches may keep it. */
json_t *
m_discover(void *vctx, const char *name, json_t *params, struct rpc_error *err)
{
	json_t *versions = json_array();
	size_t i;

	(void)vctx;
	(void)name;
	(void)params;
	(void)err;
	for (i = 0; gw_mcp_versions[i] != NULL; i++)
		json_array_append_new(versions, json_string(gw_mcp_versions[i]));
	return json_pack("{s:o, s:{s:{s:b}}, s:s, s:i, s:s}", "supportedVersions", versions,
	    "capabilities", "tools", "listChanged", 0, "instructions", instructions, "ttlMs",
	    DISCOVER_TTL_MS, "cacheScope", "public");
}

json_t *
m_empty(void *vctx, const char *name, json_t *params, struct rpc_error *err)
{
	(void)vctx;
	(void)name;
	(void)params;
	(void)err;
	return json_object();
}

static int
is_granted_or_admin(const struct principal *p, const char *tool)
{
	return p->is_admin || auth_is_granted(p, tool);
}

json_t *
m_tools_list(struct call *c, json_t *params, struct rpc_error *err)
{
	struct catalog_ref *ref;
	json_t *tools, *entry;
	size_t i;

	(void)err;
	tools = json_array();
	ref = gw_catalog_get(c->gw);
	for (i = 0; ref != NULL && i < ref->cat->n; i++) {
		const struct tool *t = &ref->cat->tools[i];

		if (!is_granted_or_admin(&c->p, t->name))
			continue;
		entry = json_pack("{s:s, s:s, s:s, s:O, s:O, s:O}", "name", t->name, "title",
		    t->title, "description", t->description, "inputSchema", t->listed_schema,
		    "outputSchema", t->output_schema, "annotations", t->annotations);
		json_array_append_new(tools, entry);
	}
	gw_catalog_put(c->gw, ref);
	entry = json_pack("{s:o}", "tools", tools);
	/* The list is this token's: a cache may keep it for the same token only. */
	if (gw_meta_version(params) != NULL) {
		json_object_set_new(entry, "ttlMs", json_integer(LIST_TTL_MS));
		json_object_set_new(entry, "cacheScope", json_string("private"));
	}
	return entry;
}

/*
 * args (borrowed) as a record shows them: each value of a property t marks sensitive as
 * {"hmac_sha256": its keyed digest}, a code tool's input_tool arguments by the input tool's
 * marks.  With is_known_only (a refused call), argument names t does not declare are left
 * out and counted in *n_unknown: a model's stray key may hold anything.  t may be NULL (no
 * such tool: every name is unknown).  Returns a new reference.
 */
static json_t *
shown_args(const struct catalog *cat, const struct tool *t, json_t *args, int is_known_only,
    size_t *n_unknown)
{
	const struct tool *it;
	json_t *out, *props, *prop, *v, *spec;
	const char *k, *name;
	char hex[65];

	if (!json_is_object(args))
		return is_known_only ? json_null() : json_incref(args);
	out = json_object();
	props = t != NULL ? json_object_get(t->schema, "properties") : NULL;
	json_object_foreach (args, k, v) {
		if ((prop = json_object_get(props, k)) == NULL) {
			if (is_known_only)
				(*n_unknown)++;
			else
				json_object_set(out, k, v);
			continue;
		}
		if (json_is_true(json_object_get(prop, "sensitive"))) {
			audit_keyed_digest(v, hex);
			json_object_set_new(out, k, json_pack("{s:s}", "hmac_sha256", hex));
		} else if (t->kind == TOOL_CODE && strcmp(k, "input_tool") == 0) {
			name = json_string_value(json_object_get(v, "name"));
			it = name != NULL && cat != NULL ? tool_find(cat, name) : NULL;
			spec = json_object();
			if (name != NULL)
				json_object_set_new(spec, "name", json_string(name));
			if (json_object_get(v, "arguments") != NULL) {
				if (it != NULL)
					json_object_set_new(spec, "arguments",
					    shown_args(cat, it, json_object_get(v, "arguments"),
						is_known_only, n_unknown));
				else
					(*n_unknown)++; /* whose marks are unknown */
			}
			json_object_set_new(out, k, spec);
		} else
			json_object_set(out, k, v);
	}
	return out;
}

/* The arguments of an accepted call, as its record keeps them.  Returns a new reference. */
static json_t *
recorded_args(const struct catalog *cat, const struct tool *t, json_t *args)
{
	size_t n = 0;

	return args == NULL ? json_null() : shown_args(cat, t, args, 0, &n);
}

/*
 * What a refused call's record keeps of what it sent (borrowed, may be NULL): its keyed
 * digest and size, and a short prefix of its declared arguments, sensitive ones as
 * digests (audit_summary), with how many undeclared names were left out.  A refusal
 * costs the caller little, so its record must cost little too.  Returns a new reference.
 */
static json_t *
refused_args(const struct catalog *cat, const struct tool *t, json_t *sent)
{
	json_t *shown, *out;
	size_t n = 0;

	if (sent == NULL)
		return json_null();
	shown = shown_args(cat, t, sent, 1, &n);
	out = audit_summary(sent, shown);
	json_object_set_new(out, "unknown_keys", json_integer((json_int_t)n));
	json_decref(shown);
	return out;
}

/* Whether a call that answered result (or err) was refused: a protocol refusal, or
 * arguments its tool's schema refused. */
int
m_is_refused(json_t *result, const struct rpc_error *err)
{
	const char *reason;

	if (result == NULL)
		return err->reason != NULL && strcmp(call_outcome_of(err), "refused") == 0;
	reason = json_string_value(
	    json_object_get(json_object_get(json_object_get(result, "structuredContent"), "error"),
		"reason"));
	return reason != NULL && strcmp(reason, "invalid_arguments") == 0;
}

/* A result the model sees as a failed tool call it can correct. */
static json_t *
tool_error_result(const char *call_id, const struct rpc_error *err, const char *argument)
{
	json_t *sc, *e;

	e = json_pack("{s:s, s:s}", "reason", err->reason, "message", err->message);
	if (err->data != NULL)
		json_object_update(e, err->data);
	if (argument != NULL)
		json_object_set_new(e, "argument", json_string(argument));
	sc = json_pack("{s:s, s:o}", "call_id", call_id, "error", e);
	return json_pack("{s:[{s:s, s:s}], s:o, s:b}", "content", "type", "text", "text",
	    err->message, "structuredContent", sc, "isError", 1);
}

/* A CallToolResult for structuredContent sc (stolen): one text item with its JSON. */
static json_t *
call_result(json_t *sc)
{
	char *text = json_dumps(sc, JSON_COMPACT);
	json_t *result;

	/* The text was just written by jansson from valid strings: no need to check it again. */
	result = json_pack("{s:[{s:s, s:o}], s:o, s:b}", "content", "type", "text", "text",
	    text != NULL ? json_stringn_nocheck(text, strlen(text)) : json_string("{}"),
	    "structuredContent", sc, "isError", 0);
	free(text);
	return result;
}

/* The parameters every method that takes them checks the same way. */
static const char *const call_params[] = { "name", "arguments", "dry_run", "idempotency_key",
	"plan_id", "_meta", NULL };
/*
 * Checks params of method: an object with only the known members, required (a string
 * member) present, and each member of its type: arguments an object; dry_run and force
 * booleans; idempotency_key 1 to 255 characters; plan_id a call id.  Returns 0, or -1
 * with err (-32602 invalid_params) naming the fault.
 */
int
m_check_params(const char *method, json_t *params, const char *const *known, const char *required,
    struct rpc_error *err)
{
	static const char *const booleans[] = { "dry_run", "force", NULL };
	const char *k;
	json_t *v;
	size_t i;

	if (!json_is_object(params) || !json_is_string(json_object_get(params, required))) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
		    "%s takes params by name with a string \"%s\"", method, required);
		return -1;
	}
	json_object_foreach (params, k, v) {
		for (i = 0; known[i] != NULL && strcmp(known[i], k) != 0; i++)
			;
		if (known[i] == NULL) {
			rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
			    "%s has no parameter '%.64s'", method, k);
			return -1;
		}
	}
	v = json_object_get(params, "arguments");
	if (v != NULL && !json_is_object(v)) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
		    "arguments must be an object");
		return -1;
	}
	v = json_object_get(params, "_meta");
	if (v != NULL && !json_is_object(v)) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params", "_meta must be an object");
		return -1;
	}
	for (i = 0; booleans[i] != NULL; i++) {
		v = json_object_get(params, booleans[i]);
		if (v != NULL && !json_is_boolean(v)) {
			rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
			    "%s must be a boolean", booleans[i]);
			return -1;
		}
	}
	v = json_object_get(params, "idempotency_key");
	if (v != NULL &&
	    (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 255)) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
		    "idempotency_key must be a string of 1 to 255 characters");
		return -1;
	}
	v = json_object_get(params, "plan_id");
	if (v != NULL && (!json_is_string(v) || !audit_is_id(json_string_value(v)))) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
		    "plan_id must be a call id");
		return -1;
	}
	return 0;
}

/* Where each call option of tools/call may come from: a member of params, a key of
 * params._meta (for adapters), an argument (for hosts that pass only arguments, where the
 * tool takes its options as arguments). */
static const struct {
	const char *param, *meta, *arg;
} call_options[] = {
	{ "dry_run", "airlock/dryRun", TOOL_OPTION_DRY_RUN },
	{ "idempotency_key", "airlock/idempotencyKey", TOOL_OPTION_KEY },
	{ "plan_id", "airlock/planId", TOOL_OPTION_PLAN },
};
#define N_OPTIONS (sizeof(call_options) / sizeof(call_options[0]))

/* Whether v is a valid value of option i. */
static int
is_option_value(size_t i, json_t *v)
{
	switch (i) {
	case 0:
		return json_is_boolean(v);
	case 1:
		return json_is_string(v) && json_string_length(v) >= 1 &&
		    json_string_length(v) <= 255;
	default:
		return json_is_string(v) && audit_is_id(json_string_value(v));
	}
}

/*
 * A tools/call's params with its options gathered: each option from wherever it was given
 * (params, _meta, arguments) as a member of params, and the arguments without the options.
 * Returns a new object, or NULL with err: invalid_params (-32602) for an option given
 * twice with different values or a _meta value of the wrong type, or a tool error
 * (code 0, invalid_arguments, *bad_arg naming the argument) for an argument of the wrong
 * type.
 */
static json_t *
gather_options(const struct tool *t, json_t *params, const char **bad_arg, struct rpc_error *err)
{
	static const char *const rules[] = { "a boolean", "a string of 1 to 255 characters",
		"a call id" };
	json_t *out = json_copy(params), *meta, *args, *v, *chosen;
	size_t i;

	*bad_arg = NULL;
	if (out == NULL)
		goto oom;
	meta = json_object_get(params, "_meta");
	args = json_object_get(params, "arguments");
	if (t->has_call_options && json_is_object(args)) {
		if ((args = json_copy(args)) == NULL)
			goto oom;
		json_object_set_new(out, "arguments", args);
	} else
		args = NULL;
	for (i = 0; i < N_OPTIONS; i++) {
		chosen = json_object_get(params, call_options[i].param);
		if ((v = json_object_get(meta, call_options[i].meta)) != NULL) {
			if (!is_option_value(i, v)) {
				rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
				    "_meta %s must "
				    "be %s",
				    call_options[i].meta, rules[i]);
				goto fail;
			}
			if (chosen != NULL && !json_equal(chosen, v))
				goto twice;
			chosen = v;
		}
		if ((v = json_object_get(args, call_options[i].arg)) != NULL) {
			if (!is_option_value(i, v)) {
				*bad_arg = call_options[i].arg;
				rpc_error_set(err, 0, "invalid_arguments",
				    "argument '%s' must be %s", call_options[i].arg, rules[i]);
				goto fail;
			}
			if (chosen != NULL && !json_equal(chosen, v))
				goto twice;
			chosen = v;
		}
		if (chosen != NULL && json_object_set(out, call_options[i].param, chosen) == -1)
			goto oom;
		json_object_del(args, call_options[i].arg);
	}
	return out;
twice:
	rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
	    "%s is given twice with "
	    "different values",
	    call_options[i].param);
	goto fail;
oom:
	rpc_error_internal(err);
fail:
	json_decref(out);
	return NULL;
}

/* Whether a refusal is one the model can correct by itself: on /mcp it is answered as an
 * isError result with its reason, which the model sees, rather than as a protocol error,
 * which most hosts do not show it. */
static int
is_correctable(const char *reason)
{
	static const char *const reasons[] = { "key_required", "key_mismatch", "binding_mismatch",
		"plan_stale", "plan_mismatch", "plan_expired", NULL };
	size_t i;

	for (i = 0; reason != NULL && reasons[i] != NULL; i++)
		if (strcmp(reason, reasons[i]) == 0)
			return 1;
	return 0;
}

/* Limits the images of a write's answer sc to the columns it may show.  Idempotent. */
static void
limit_answer(json_t *sc, const struct shown_cols *cols)
{
	if (!cols->is_whole)
		m_limit_changes(json_object_get(sc, "changes"), cols->t);
}

/* write_run's finish callback: shapes a committed write's answer (arg: its shown_cols)
 * before it is stored for replays, and completes its record from it. */
static void
finish_write_record(struct audit_record *rec, json_t *sc, void *arg)
{
	limit_answer(sc, arg);
	audit_record_end(rec);
	rec->outcome = "ok";
	rec->reason = NULL;
	call_digest(sc, rec->result_digest);
}

json_t *
m_run_write(struct call *c, struct write_req *req, json_t *params, const struct shown_cols *cols,
    struct rpc_error *err)
{
	const struct write_stmt *st = req->st;
	const char *key = NULL, *plan_id;
	json_t *sc, *result = NULL;
	int is_dry_run, is_replay = 0;

	is_dry_run = c->p.is_preview_only || json_is_true(json_object_get(params, "dry_run"));
	plan_id = json_string_value(json_object_get(params, "plan_id"));
	c->rec.is_dry_run = is_dry_run;
	/* A call that needs approval and names no plan is held as a preview: it needs no key
	 * (without one, write_run commits nothing). */
	if (!is_dry_run &&
	    (plan_id != NULL || !st->needs_approval ||
		json_object_get(params, "idempotency_key") != NULL ||
		c->ctx->idem_header != NULL) &&
	    (key = idem_key_of(params, c->ctx->idem_header, err)) == NULL)
		return NULL;
	if (key != NULL)
		strlcpy(c->rec.idem_key, key, sizeof(c->rec.idem_key));
	if (plan_id != NULL)
		strlcpy(c->rec.plan_id, plan_id, sizeof(c->rec.plan_id));
	req->idem_key = key;
	req->plan_id = plan_id;
	req->is_dry_run = is_dry_run;
	req->rec = &c->rec;
	req->finish = finish_write_record;
	req->arg = (void *)(uintptr_t)cols;
	sc = write_run(c->ctx->db, req, &is_replay, &c->is_recorded, err);
	if (sc == NULL) {
		if (call_is_tool_error(err)) {
			result = tool_error_result(c->rec.id, err, NULL);
			rpc_error_clear(err);
		}
		return result;
	}
	/* A preview, and a reply stored before answers were limited, are limited here. */
	limit_answer(sc, cols);
	/* A call held for approval became a preview in write_run. */
	if (c->rec.is_dry_run)
		json_object_set_new(sc, "call_id", json_string(c->rec.id));
	if (!json_is_boolean(json_object_get(sc, "replayed")))
		json_object_set_new(sc, "replayed", json_false());
	/* A dry-run or a replay is recorded when the call ends, with the digest of this
	 * answer (call_digest). */
	/* Answers, previews, stored replies and calls.get show the tool's columns only, as its
	 * RETURNING declares them: a preview-only token must not read what the tool does not
	 * show.  The record keeps whole images, for revert and for the operator. */
	return call_result(sc);
}

/* Whether t's call is checked in its write's own transaction: a write of a token without
 * a quota, whose check writes nothing (a quota's count must outlive a dry-run's rollback). */
static int
is_checked_in_write(const struct tool *t, const struct principal *p)
{
	return t->kind == TOOL_WRITE && p->max_calls == 0 && !p->is_admin;
}

/* tools/call of a write tool. */
static json_t *
call_write(struct call *c, const struct tool *t, unsigned long version, json_t *params,
    json_t *args, struct rpc_error *err)
{
	struct shown_cols cols;
	struct write_stmt st;
	struct write_req req;
	char name[STMT_NAME_MAX], fp[65], **values = NULL;
	json_t *result = NULL;

	if (stmt_prepare(c->ctx->db, t, version, name, err) == -1)
		return NULL;
	if (write_stmt_tool(&st, t, name, args, &values) == -1) {
		rpc_error_internal(err);
		return NULL;
	}
	write_fingerprint(t->name, args, fp);
	st.needs_approval = tool_needs_approval(t, args);
	st.approval_rows = t->approval_rows;
	st.is_four_eyes = t->is_four_eyes;
	cols.t = t;
	cols.is_whole = 0;
	memset(&req, 0, sizeof(req));
	req.st = &st;
	req.check = is_checked_in_write(t, &c->p) ? &c->p : NULL;
	req.role = c->p.role;
	req.tenant = c->p.tenant;
	req.tool = t->name;
	req.fingerprint = fp;
	result = m_run_write(c, &req, params, &cols, err);
	write_unbind(t, values);
	return result;
}

json_t *
m_tools_call(struct call *c, json_t *params, struct rpc_error *err)
{
	struct catalog_ref *ref = NULL;
	const struct tool *t = NULL;
	const char *tool_name, *bad_arg = NULL;
	json_t *args = NULL, *rows = NULL, *sc, *result = NULL, *sent = params;
	char msg[256];
	int truncated, is_dry_run;

	if (m_check_params("tools/call", params, call_params, "name", err) == -1)
		goto done;
	tool_name = json_string_value(json_object_get(params, "name"));
	strlcpy(c->rec.tool, tool_name, sizeof(c->rec.tool));
	ref = gw_catalog_get(c->gw);
	t = ref ? tool_find(ref->cat, tool_name) : NULL;
	if (t == NULL) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "tool_not_found", "No tool named '%.64s'",
		    tool_name);
		goto done;
	}
	if (t->kind == TOOL_CODE && !c->ctx->is_sandbox) {
		/* Only a single tools/call is routed to the sandbox pool; in a batch a program
		 * would hold a database worker for as long as it runs. */
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
		    "Code tool '%s' is called "
		    "on its own, not in a batch",
		    t->name);
		goto done;
	}
	if (!auth_is_granted(&c->p, t->name)) {
		rpc_error_set(err, RPC_FORBIDDEN,
		    c->p.is_admin ? "admin_required" : "tool_not_granted",
		    c->p.is_admin		   ? "The admin credential calls no tools"
			: c->p.approver[0] != '\0' ? "An approver token calls no tools"
						   : "This token does not grant tool '%s'",
		    t->name);
		goto done;
	}
	/* From here on params holds the options wherever they were given, and arguments
	 * without them; sent stays what the client sent, for a refusal's record. */
	if ((params = gather_options(t, sent, &bad_arg, err)) == NULL) {
		if (err->code == 0) {
			result = tool_error_result(c->rec.id, err, bad_arg);
			rpc_error_clear(err);
		}
		goto done;
	}
	args = tool_check_args(t, json_object_get(params, "arguments"), &bad_arg, msg, sizeof(msg));
	if (args == NULL) {
		rpc_error_set(err, 0, "invalid_arguments", "%s", msg);
		result = tool_error_result(c->rec.id, err, bad_arg);
		rpc_error_clear(err);
		goto done;
	}
	if (auth_check_bindings(&c->p, t, args, err) == -1)
		goto done;
	/* A read counts its call in its own round trip (read_run), and so does a write of a
	 * token without a quota (write_run checks it in the write's transaction); the others
	 * count here. */
	if (t->kind != TOOL_READ && !is_checked_in_write(t, &c->p) &&
	    auth_count_call(c->ctx->db, &c->p, err) == -1)
		goto done;
	/* Accepted so far: the record keeps the arguments (a write's goes in with its effect). */
	c->rec.arguments = recorded_args(ref->cat, t, args);
	if (t->kind == TOOL_CODE) {
		is_dry_run =
		    c->p.is_preview_only || json_is_true(json_object_get(params, "dry_run"));
		c->rec.is_dry_run = is_dry_run;
		sc = code_run(ref->cat, c->gw->cfg, c->ctx->db, &c->p, t, args, c->rec.id,
		    is_dry_run, &c->rec.egress, err);
		if (sc == NULL) {
			if (call_is_tool_error(err)) {
				result = tool_error_result(c->rec.id, err, NULL);
				rpc_error_clear(err);
			}
			goto done;
		}
		json_object_set_new(sc, "call_id", json_string(c->rec.id));
		result = call_result(sc);
		goto done;
	}
	if (t->kind == TOOL_WRITE) {
		result = call_write(c, t, ref->cat->version, params, args, err);
		goto done;
	}
	if (read_run(c->ctx->db, t, ref->cat->version, c->p.role, c->rec.id, args, &c->p, &rows,
		&truncated, err) == -1) {
		if (call_is_tool_error(err)) {
			result = tool_error_result(c->rec.id, err, NULL);
			rpc_error_clear(err);
		}
		goto done;
	}
	sc = read_result(rows, truncated);
	json_object_set_new(sc, "call_id", json_string(c->rec.id));
	json_object_set_new(sc, "replayed", json_false());
	result = call_result(sc);
done:
	if (c->rec.arguments == NULL || m_is_refused(result, err)) {
		json_decref(c->rec.arguments);
		c->rec.arguments = refused_args(ref != NULL ? ref->cat : NULL, t,
		    json_object_get(sent, "arguments"));
	}
	if (result == NULL && c->ctx->is_mcp && is_correctable(err->reason) &&
	    !atomic_load(&c->ctx->is_cancelled)) {
		result = tool_error_result(c->rec.id, err, NULL);
		rpc_error_clear(err);
		c->is_refusal_result = 1;
	}
	if (params != sent)
		json_decref(params);
	json_decref(rows);
	json_decref(args);
	gw_catalog_put(c->gw, ref);
	return result;
}
