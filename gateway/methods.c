/*
 * methods.c: the JSON-RPC methods airlockd serves, by name.  The methods are grouped by
 * family (m_tools.c, m_tokens.c, m_calls.c, m_plans.c).  Every method that names a token
 * runs on a database worker and leaves a call record; a call is answered only once its
 * record is durable.
 */
#include "airlock/gateway.h"
#include "methods_int.h"

const struct rpc_method methods_table[] = {
	{ "initialize", m_initialize, 0 },
	{ "server/discover", m_discover, 0 },
	{ "notifications/initialized", m_empty, 0 },
	{ "ping", m_empty, 0 },
	{ "tools/list", m_tools_list, RPC_SLOW },
	{ "tools/call", m_tools_call, RPC_SLOW },
	{ "airlock/tokens.self", m_tokens_self, RPC_SLOW },
	{ "airlock/calls.get", m_calls_get, RPC_SLOW },
	{ "airlock/calls.revert", m_calls_revert, RPC_SLOW },
	{ "airlock/tokens.mint", m_tokens_mint, RPC_SLOW },
	{ "airlock/tokens.revoke", m_tokens_revoke, RPC_SLOW },
	{ "airlock/plans.list", m_plans_list, RPC_SLOW },
	{ "airlock/calls.list", m_calls_list, RPC_SLOW },
	{ "airlock/audit.state", m_audit_state, RPC_SLOW },
	{ "airlock/plans.get", m_plans_get, RPC_SLOW },
	{ "airlock/plans.approve", m_plans_decide, RPC_SLOW },
	{ "airlock/plans.reject", m_plans_decide, RPC_SLOW },
	{ NULL, NULL, 0 },
};
