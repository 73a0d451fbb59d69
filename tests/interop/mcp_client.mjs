// mcp_client.mjs: drives airlockd's /mcp with the official MCP TypeScript SDK client, as an
// MCP host would, and prints what came back as one JSON document for the test to judge.
//
// Usage: node mcp_client.mjs URL TOKEN < plan.json
// plan.json: {"calls": [{"name": TOOL, "arguments": {...}, "params": {...extra params}}
//                       or {"method": METHOD, "params": {...}} (a request of Airlock's own)]}
// A string "$ref:N.path.to.value" anywhere in a call stands for that value of the Nth
// call's result (a preview's plan_id for its commit, a commit's call_id for its revert).
//
// Output: {"server": serverVersion, "protocol": negotiated version, "tools": [names],
//          "schema_faults": {tool: message}, "warnings": [...],
//          "results": [{"result": CallToolResult} or {"error": {code, message, data}}]}
// Exit status: 0 when the session ran to its end (whatever each call answered), 1 when
// connecting or listing failed.
//
// Every callTool goes through the SDK's own check of structuredContent against the tool's
// outputSchema (Ajv with ajv-formats, as the SDK sets it up).  On top of that, each
// outputSchema is compiled once more by a strict Ajv, which refuses what the SDK's lenient
// one only warns about (unknown formats, unknown keywords), and every structuredContent
// is validated by it too.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError, ResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';

import { readPlan, resolve } from './plan.mjs';

const addFormats = addFormatsModule.default ?? addFormatsModule;

function errorJson(e) {
	if (e instanceof McpError)
		return { code: e.code, message: e.message, data: e.data ?? null };
	return { code: null, message: String(e?.message ?? e), data: null };
}

async function main() {
	const [url, token] = process.argv.slice(2);
	if (!url || !token) {
		process.stderr.write('usage: node mcp_client.mjs URL TOKEN < plan.json\n');
		process.exit(64);
	}
	const plan = await readPlan();

	// Whatever a validator or the SDK logs (an unknown format "ignored", for instance) is
	// part of the verdict.
	const warnings = [];
	for (const level of ['warn', 'log', 'error']) {
		console[level] = (...args) => warnings.push(args.map(String).join(' '));
	}

	const strict = new Ajv({ strict: true, allowUnionTypes: true, allErrors: true });
	addFormats(strict);

	const client = new Client({ name: 'airlock-interop', version: '1.0.0' });
	const transport = new StreamableHTTPClientTransport(new URL(url), {
		requestInit: { headers: { Authorization: `Bearer ${token}` } },
	});
	const out = { server: null, protocol: null, tools: [], schema_faults: {}, warnings,
	    results: [] };
	try {
		await client.connect(transport);
		out.server = client.getServerVersion() ?? null;
		out.protocol = transport.protocolVersion ?? null;
		const listed = await client.listTools();
		const strictValidators = new Map();
		for (const t of listed.tools) {
			out.tools.push(t.name);
			try {
				strictValidators.set(t.name, strict.compile(t.outputSchema));
			} catch (e) {
				out.schema_faults[t.name] = String(e.message);
			}
		}
		for (const planned of plan.calls) {
			const c = resolve(planned, out.results);
			const entry = {};
			try {
				if (c.method !== undefined) {
					entry.result = await client.request({ method: c.method,
					    params: c.params ?? {} }, ResultSchema);
					out.results.push(entry);
					continue;
				}
				entry.result = await client.callTool({ name: c.name,
				    arguments: c.arguments ?? {}, ...(c.params ?? {}) });
				const check = strictValidators.get(c.name);
				if (check && entry.result.structuredContent !== undefined &&
				    !check(entry.result.structuredContent))
					entry.strict_errors = check.errors;
			} catch (e) {
				entry.error = errorJson(e);
			}
			out.results.push(entry);
		}
	} catch (e) {
		out.fatal = errorJson(e);
	} finally {
		await client.close().catch(() => {});
	}
	process.stdout.write(JSON.stringify(out) + '\n');
	process.exit(out.fatal ? 1 : 0);
}

main().catch((e) => {
	process.stderr.write(`mcp_client: ${e?.stack ?? e}\n`);
	process.exit(1);
});
