/* methods.c: the JSON-RPC methods airlockd serves: the MCP handshake and the tools. */
#include <string.h>

#include "airlock/gateway.h"

#define SERVER_VERSION "0.1.0"

/* MCP revisions this gateway speaks, newest first. */
static const char *const protocol_versions[] = { "2025-11-25", "2025-06-18", NULL };

static json_t *
m_initialize(void *vctx, const char *name, json_t *params, struct rpc_error *err)
{
	const char *asked = NULL, *chosen = protocol_versions[0];
	size_t i;

	(void)vctx; (void)name;
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
		for (i = 0; protocol_versions[i] != NULL; i++)
			if (strcmp(asked, protocol_versions[i]) == 0)
				chosen = protocol_versions[i];
	}
	return json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s}, s:s}",
	    "protocolVersion", chosen,
	    "capabilities", "tools", "listChanged", 0,
	    "serverInfo", "name", "airlock", "version", SERVER_VERSION,
	    "instructions", "Tools run as one tenant under row-level security. Writes take an "
	    "idempotency key, can be previewed with dry_run, and can be reverted.");
}

static json_t *
m_empty(void *vctx, const char *name, json_t *params, struct rpc_error *err)
{
	(void)vctx; (void)name; (void)params; (void)err;
	return json_object();
}

static json_t *
m_tools_list(void *vctx, const char *name, json_t *params, struct rpc_error *err)
{
	(void)vctx; (void)name; (void)params; (void)err;
	return json_pack("{s:[]}", "tools");
}

const struct rpc_method methods_table[] = {
	{ "initialize", m_initialize, 0 },
	{ "notifications/initialized", m_empty, 0 },
	{ "ping", m_empty, 0 },
	{ "tools/list", m_tools_list, 0 },
	{ NULL, NULL, 0 },
};
