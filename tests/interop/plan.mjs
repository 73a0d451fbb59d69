// plan.mjs: what the interop clients share: reading the plan from stdin and resolving the
// "$ref:N.path.to.value" strings in it against the results so far.

// The plan on stdin as JSON ({"calls": []} when stdin is empty).
export async function readPlan() {
	const chunks = [];
	for await (const c of process.stdin)
		chunks.push(c);
	const text = Buffer.concat(chunks).toString('utf8').trim();
	return text === '' ? { calls: [] } : JSON.parse(text);
}

// v with every "$ref:N.path" string replaced by that value of the Nth result's result.
export function resolve(v, results) {
	if (typeof v === 'string' && v.startsWith('$ref:')) {
		const [n, ...path] = v.slice(5).split('.');
		return path.reduce((o, k) => (o == null ? o : o[k]), results[Number(n)]?.result);
	}
	if (Array.isArray(v))
		return v.map((x) => resolve(x, results));
	if (v !== null && typeof v === 'object')
		return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x, results)]));
	return v;
}
