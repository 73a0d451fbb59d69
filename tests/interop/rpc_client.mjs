// rpc_client.mjs: drives airlockd's /rpc with a plain JSON-RPC 2.0 client library from the
// npm registry (json-rpc-2.0), as an orchestrator that speaks no MCP would, and prints what
// came back as one JSON document for the test to judge.
//
// Usage: node rpc_client.mjs URL TOKEN < plan.json
// plan.json: {"calls": [{"method": M, "params": {...}} or {"batch": [{"method", "params"}]}]}
// A string "$ref:N.path.to.value" anywhere in a call stands for that value of the Nth
// call's result.
//
// Output: {"results": [{"result": ...} or {"error": {code, message, data}} or
//          {"batch": [{"result"} or {"error"}]}]}
// Exit status: 0 when every call ran (whatever it answered), 1 otherwise.
import jsonrpc from 'json-rpc-2.0';

import { readPlan, resolve } from './plan.mjs';

const { JSONRPCClient, JSONRPCErrorException } = jsonrpc;

function errorJson(e) {
	if (e instanceof JSONRPCErrorException)
		return { code: e.code, message: e.message, data: e.data ?? null };
	return { code: null, message: String(e?.message ?? e), data: null };
}

async function main() {
	const [url, token] = process.argv.slice(2);
	if (!url || !token) {
		process.stderr.write('usage: node rpc_client.mjs URL TOKEN < plan.json\n');
		process.exit(64);
	}
	const plan = await readPlan();
	// Every answer with a JSON body goes to the library, whatever its HTTP status: a single
	// request's 401, 429 or 503 carries its JSON-RPC error too.
	const client = new JSONRPCClient(async (request) => {
		const response = await fetch(url, {
			method: 'POST',
			headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
			body: JSON.stringify(request),
		});
		if ((response.headers.get('content-type') ?? '').startsWith('application/json'))
			client.receive(await response.json());
		else if (response.status !== 202)
			throw new Error(`HTTP ${response.status}`);
	});
	const out = { results: [] };
	for (const planned of plan.calls) {
		const c = resolve(planned, out.results);
		if (c.batch !== undefined) {
			const answers = await client.requestAdvanced(c.batch.map((r, i) => ({
			    jsonrpc: '2.0', id: i + 1, method: r.method, params: r.params })));
			out.results.push({ batch: answers.map((a) => (a.error ? { error: a.error } :
			    { result: a.result })) });
			continue;
		}
		try {
			out.results.push({ result: await client.request(c.method, c.params) });
		} catch (e) {
			out.results.push({ error: errorJson(e) });
		}
	}
	process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
	process.stderr.write(`rpc_client: ${e?.stack ?? e}\n`);
	process.exit(1);
});
