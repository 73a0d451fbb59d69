/*
 * methods.c: the JSON-RPC methods airlockd serves, by name.  The methods are grouped by
 * family (m_tools.c, m_tokens.c, m_calls.c, m_plans.c).  Every method that names a token
 * runs on a database worker as one call (call_run: identified, limited, recorded); it is
 * answered only once its record is durable.
 */
#include "airlock/call.h"
#include "airlock/gateway.h"
#include "methods_int.h"

/* A method that names a token, as the table calls it: inside its call. */
#define CALLED(fn)                                                             \
	static json_t *fn##_call(void *vctx, const char *name, json_t *params, \
	    struct rpc_error *err)                                             \
	{                                                                      \
		return call_run(vctx, name, params, fn, err);                  \
	}

CALLED(m_tools_list)
CALLED(m_tools_call)
CALLED(m_tokens_self)
CALLED(m_tokens_mint)
CALLED(m_tokens_revoke)
CALLED(m_calls_get)
CALLED(m_calls_revert)
CALLED(m_calls_list)
CALLED(m_plans_list)
CALLED(m_plans_get)
CALLED(m_plans_decide)
CALLED(m_audit_state)

const struct rpc_method methods_table[] = {
	{ "initialize", m_initialize, 0 },
	{ "server/discover", m_discover, 0 },
	{ "notifications/initialized", m_empty, 0 },
	{ "ping", m_empty, 0 },
	{ "tools/list", m_tools_list_call, RPC_SLOW },
	{ "tools/call", m_tools_call_call, RPC_SLOW },
	{ "airlock/tokens.self", m_tokens_self_call, RPC_SLOW },
	{ "airlock/calls.get", m_calls_get_call, RPC_SLOW },
	{ "airlock/calls.revert", m_calls_revert_call, RPC_SLOW },
	{ "airlock/tokens.mint", m_tokens_mint_call, RPC_SLOW },
	{ "airlock/tokens.revoke", m_tokens_revoke_call, RPC_SLOW },
	{ "airlock/plans.list", m_plans_list_call, RPC_SLOW },
	{ "airlock/calls.list", m_calls_list_call, RPC_SLOW },
	{ "airlock/audit.state", m_audit_state_call, RPC_SLOW },
	{ "airlock/plans.get", m_plans_get_call, RPC_SLOW },
	{ "airlock/plans.approve", m_plans_decide_call, RPC_SLOW },
	{ "airlock/plans.reject", m_plans_decide_call, RPC_SLOW },
	{ NULL, NULL, 0 },
};
