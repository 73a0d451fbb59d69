/* tool_code.c: a code tool's part of its manifest: interpreter, limits, egress, isolation. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "airlock/gvisor.h"
#include "airlock/log.h"
#include "airlock/tool.h"
#include "tool_int.h"

static const char *const code_keys[] = { "interpreter", "limits", "allow", "isolation", "warm",
	NULL };
#define MAX_WARM 16
static const struct {
	const char *name;
	json_int_t max;
} limit_keys[] = {
	{ "time_s", 3600 },
	{ "cpu_s", 3600 },
	{ "mem_mb", 65536 },
	{ "pids", 4096 },
	{ "stdout_max", 64 * 1024 * 1024 },
	{ "stderr_max", 64 * 1024 * 1024 },
};
#define NLIMITS (sizeof(limit_keys) / sizeof(limit_keys[0]))

/*
 * Checks a code tool's arguments schema against what code_run reads: code (a required
 * string), input (any JSON) and input_tool (an object).  Returns 0, or -1 with err.
 */
static int
check_code_args(json_t *schema, char *err, size_t errlen)
{
	json_t *props = json_object_get(schema, "properties"), *v, *type, *name;
	const char *key;
	size_t i;
	int is_required = 0;

	json_object_foreach (props, key, v) {
		if (!in_list(key, (const char *const[]){ "code", "input", "input_tool", NULL })) {
			log_seterr(err, errlen,
			    "a code tool's arguments are code, input and input_tool, "
			    "not '%s'",
			    key);
			return -1;
		}
	}
	if ((v = json_object_get(props, "code")) != NULL) {
		json_array_foreach (json_object_get(schema, "required"), i, name) {
			if (json_is_string(name) && strcmp(json_string_value(name), "code") == 0)
				is_required = 1;
		}
		type = json_object_get(v, "type");
		if (!json_is_string(type) || strcmp(json_string_value(type), "string") != 0 ||
		    !is_required) {
			log_seterr(err, errlen,
			    "argument 'code' of a code tool must be a required "
			    "string");
			return -1;
		}
	}
	if ((v = json_object_get(props, "input_tool")) != NULL) {
		type = json_object_get(v, "type");
		if (!json_is_string(type) || strcmp(json_string_value(type), "object") != 0) {
			log_seterr(err, errlen,
			    "argument 'input_tool' of a code tool must be an object");
			return -1;
		}
	}
	return 0;
}

/* Checks and normalizes a code tool's "code" object; returns a new one or NULL.  Whether
 * gVisor can start here is checked only for a catalog loaded to be served (is_live: with a
 * database connection), not offline. */
static json_t *
check_code(json_t *code, int is_live, char *err, size_t errlen)
{
	json_t *interp, *limits, *allow, *v, *out_limits = NULL, *out_allow = NULL;
	json_t *isolation, *warm;
	const char *key, *s, *colon, *errstr;
	size_t i, k;
	char why[600];

	if (!json_is_object(code)) {
		log_seterr(err, errlen, "code must be an object {interpreter, limits, allow}");
		return NULL;
	}
	json_object_foreach (code, key, v) {
		if (!in_list(key, code_keys)) {
			log_seterr(err, errlen,
			    "code: unknown key '%s' (known: interpreter, limits, "
			    "allow, isolation, warm)",
			    key);
			return NULL;
		}
	}
	interp = json_object_get(code, "interpreter");
	if (!json_is_string(interp) ||
	    (strcmp(json_string_value(interp), "python3") != 0 &&
		strcmp(json_string_value(interp), "sh") != 0)) {
		log_seterr(err, errlen, "code: interpreter must be \"python3\" or \"sh\"");
		return NULL;
	}
	limits = json_object_get(code, "limits");
	if (limits != NULL && !json_is_object(limits)) {
		log_seterr(err, errlen, "code: limits must be an object");
		return NULL;
	}
	json_object_foreach (limits, key, v) {
		for (k = 0; k < NLIMITS; k++)
			if (strcmp(key, limit_keys[k].name) == 0)
				break;
		if (k == NLIMITS) {
			log_seterr(err, errlen,
			    "code: unknown limit '%s' (known: time_s, cpu_s, "
			    "mem_mb, pids, stdout_max, stderr_max)",
			    key);
			return NULL;
		}
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > limit_keys[k].max) {
			log_seterr(err, errlen,
			    "code: limit '%s' must be an integer from 1 to %lld", key,
			    (long long)limit_keys[k].max);
			return NULL;
		}
	}
	allow = json_object_get(code, "allow");
	if (allow != NULL && !json_is_array(allow)) {
		log_seterr(err, errlen, "code: allow must be an array of \"host:port\" strings");
		return NULL;
	}
	if (json_array_size(allow) > 64) {
		log_seterr(err, errlen, "code: allow lists more than 64 entries");
		return NULL;
	}
	json_array_foreach (allow, i, v) {
		s = json_string_value(v);
		if (s == NULL || (colon = strrchr(s, ':')) == NULL || colon == s ||
		    colon - s > 253) {
			log_seterr(err, errlen, "code: allow entry %zu must be \"host:port\"",
			    i + 1);
			return NULL;
		}
		for (const char *p = s; p < colon; p++)
			if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' &&
			    !(s[0] == '[' && (*p == ':' || *p == '[' || *p == ']'))) {
				log_seterr(err, errlen, "code: allow entry '%s' has a bad host", s);
				return NULL;
			}
		strtonum(colon + 1, 1, 65535, &errstr);
		if (errstr != NULL || colon[1 + strspn(colon + 1, "0123456789")] != '\0') {
			log_seterr(err, errlen,
			    "code: allow entry '%s' needs a port from 1 to 65535", s);
			return NULL;
		}
	}
	isolation = json_object_get(code, "isolation");
	if (isolation != NULL &&
	    (!json_is_string(isolation) ||
		(strcmp(json_string_value(isolation), "namespace") != 0 &&
		    strcmp(json_string_value(isolation), "gvisor") != 0))) {
		log_seterr(err, errlen,
		    "code: isolation must be \"namespace\" (bubblewrap) or "
		    "\"gvisor\" (runsc)");
		return NULL;
	}
	if (is_live && isolation != NULL && strcmp(json_string_value(isolation), "gvisor") == 0 &&
	    sb_gvisor_proven(NULL, why, sizeof(why)) == -1) {
		log_seterr(err, errlen,
		    "code: isolation \"gvisor\" is refused: %s (install "
		    "Debian's runsc package and run airlockd as root, or use \"namespace\")",
		    why);
		return NULL;
	}
	warm = json_object_get(code, "warm");
	if (warm != NULL &&
	    (!json_is_integer(warm) || json_integer_value(warm) < 0 ||
		json_integer_value(warm) > MAX_WARM)) {
		log_seterr(err, errlen, "code: warm must be an integer from 0 to %d", MAX_WARM);
		return NULL;
	}
	out_limits = limits != NULL ? json_deep_copy(limits) : json_object();
	out_allow = allow != NULL ? json_deep_copy(allow) : json_array();
	v = json_pack("{s:O, s:o, s:o, s:s, s:I}", "interpreter", interp, "limits", out_limits,
	    "allow", out_allow, "isolation",
	    isolation != NULL ? json_string_value(isolation) : "namespace", "warm",
	    warm != NULL ? json_integer_value(warm) : (json_int_t)0);
	if (v == NULL)
		log_seterr(err, errlen, "out of memory");
	return v;
}

int
tool_code_load(struct tool *t, json_t *m, int is_live, char *err, size_t errlen)
{
	json_t *v;
	char fault[1024];

	if (json_object_get(m, "statement") != NULL || json_object_get(m, "max_rows") != NULL) {
		log_seterr(err, errlen, "%s: a code tool takes no statement and no max_rows",
		    t->file);
		return -1;
	}
	if ((v = json_object_get(m, "code")) == NULL) {
		log_seterr(err, errlen,
		    "%s: a code tool needs code: {interpreter, limits, "
		    "allow}",
		    t->file);
		return -1;
	}
	if ((t->code = check_code(v, is_live, fault, sizeof(fault))) == NULL ||
	    check_code_args(t->schema, fault, sizeof(fault)) == -1) {
		log_seterr(err, errlen, "%s: %s", t->file, fault);
		return -1;
	}
	return 0;
}
