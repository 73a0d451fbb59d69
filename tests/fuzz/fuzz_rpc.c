/* fuzz_rpc.c: libFuzzer target for gateway/rpc.c: any body, parsed and dispatched. */
#include <stddef.h>
#include <stdint.h>

#include "airlock/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *
echo(void *ctx, const char *name, json_t *params, struct rpc_error *err)
{
	(void)ctx;
	(void)name;
	if (params == NULL) {
		rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params", "no params");
		err->data = json_pack("{s:i}", "retryAfterSeconds", 1);
		return NULL;
	}
	return json_incref(params);
}

static const struct rpc_method table[] = {
	{ "echo", echo, 0 },
	{ "slow", echo, RPC_SLOW },
	{ NULL, NULL, 0 },
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct rpc_limits lim = { .max_depth = 32, .max_batch = 50 };
	struct rpc_msg msg = { 0 };
	struct rpc_error err = { 0 };
	char *out;

	rpc_parse(&msg, &lim, (const char *)data, size);
	if (rpc_needs_worker(&msg, table) && size % 2) {
		rpc_error_set(&err, RPC_TOO_MANY, "concurrency_limited", "busy");
		rpc_fail_all(&msg, &err);
	} else
		rpc_execute(&msg, table, NULL);
	if (msg.response != NULL && (out = json_dumps(msg.response, JSON_COMPACT)) != NULL)
		free(out);
	rpc_msg_clear(&msg);
	return 0;
}
