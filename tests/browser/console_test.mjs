// console_test.mjs: drives airlockd's /console in Debian's Chromium (playwright-core, pinned
// in package.json; the browser is /usr/bin/chromium, never a download) as its two users
// would: the auditor (admin credential) filters calls and opens a write's diff; the support
// lead (approver token) approves one pending plan and rejects another, and the agent's
// commits of those plans succeed and are refused.  Prints one JSON report on stdout.
//
// Usage: node console_test.mjs < scenario.json
// scenario.json: {url, out_dir, admin, approver, agent, tenant, write: {call_id, tool},
//                 approve: {plan_id, tool, arguments}, reject: {plan_id, tool, arguments}}
// Exit status: 0 when the scenario ran (the report says what was seen; the test judges),
// 3 when Chromium cannot start (the message says why), 1 on any other failure.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.AIRLOCK_CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function readStdin() {
	const chunks = [];
	for await (const c of process.stdin)
		chunks.push(c);
	return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

// The agent, outside the browser: commits a plan with a fresh idempotency key.
async function agentCommit(s, plan) {
	const res = await fetch(`${s.url}/rpc`, {
		method: 'POST',
		headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${s.agent}` },
		body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: {
			name: plan.tool, arguments: plan.arguments, plan_id: plan.plan_id,
			idempotency_key: `console-${plan.plan_id}` } }),
	});
	return res.json();
}

async function login(page, credential) {
	await page.fill('#credential', credential);
	await page.click('#login-button');
	await page.waitForSelector('#app:not([hidden])', { timeout: 10000 });
	await page.waitForSelector('#calls[data-loads]', { timeout: 10000 });
}

// Applies the calls filters and waits until the page of calls they asked for is shown.
async function applyFilters(page) {
	const before = await page.getAttribute('#calls', 'data-loads');
	await page.click('#f-apply');
	await page.waitForFunction((b) => document.getElementById('calls').dataset.loads !== b,
		before, { timeout: 10000 });
}

async function main() {
	const s = await readStdin();
	const report = { console_errors: [], steps: {} };
	const profile = mkdtempSync(join(tmpdir(), 'airlock-chromium-'));
	let context;
	try {
		context = await chromium.launchPersistentContext(profile, {
			executablePath: CHROMIUM, headless: true, args: ARGS,
			viewport: { width: 1280, height: 900 },
		});
	} catch (e) {
		rmSync(profile, { recursive: true, force: true });
		process.stderr.write(`chromium cannot start: ${e.message.split('\n')[0]}\n`);
		process.exit(3);
	}
	try {
		const page = context.pages()[0] ?? await context.newPage();
		// A CSP violation, a script error or a failed request shows up here.
		page.on('console', (m) => {
			if (m.type() === 'error')
				report.console_errors.push(m.text());
		});
		page.on('pageerror', (e) => report.console_errors.push(String(e)));
		const requests = [];
		page.on('request', (r) => requests.push({ url: r.url(), method: r.method(),
			auth: r.headers().authorization ? 'bearer' : null }));

		const resp = await page.goto(`${s.url}/console`);
		report.csp = resp.headers()['content-security-policy'];

		// The auditor: every tenant's calls, filtered down to one write, and its diff.
		await login(page, s.admin);
		report.steps.admin_who = await page.textContent('#who');
		await page.fill('#f-tenant', s.tenant);
		await page.fill('#f-tool', s.write.tool);
		await page.selectOption('#f-outcome', 'ok');
		await applyFilters(page);
		const row = `#calls tbody tr[data-call-id="${s.write.call_id}"]`;
		await page.waitForSelector(row, { timeout: 10000 });
		report.steps.filtered_tools = await page.$$eval('#calls tbody tr',
			(rows) => rows.map((r) => r.dataset.tool));
		report.steps.filtered_outcomes = await page.$$eval('#calls tbody tr',
			(rows) => rows.map((r) => r.dataset.outcome));
		await page.click(row);
		await page.waitForSelector('#call-detail table.diff', { timeout: 10000 });
		report.steps.diff = await page.$$eval('#call-detail table.diff tr.changed', (rows) =>
			rows.map((r) => [r.dataset.column, r.querySelector('.before').textContent,
				r.querySelector('.after').textContent]));
		report.steps.detail_digest = await page.textContent('#call-detail');
		await page.screenshot({ path: join(s.out_dir, 'console-call-diff.png'), fullPage: true });

		await page.click('nav .tab[data-view="chain"]');
		await page.waitForSelector('#chain-state', { timeout: 10000 });
		report.steps.chain_state = await page.textContent('#chain-state');
		report.steps.anchor = await page.inputValue('#anchor');
		await page.screenshot({ path: join(s.out_dir, 'console-chain.png'), fullPage: true });
		await page.click('#logout');
		await page.waitForSelector('#login:not([hidden])');

		// The support lead: its tenant's pending plans, with their previews.
		await login(page, s.approver);
		report.steps.approver_who = await page.textContent('#who');
		report.steps.tenant_filter_hidden = await page.isHidden('#f-tenant-label');
		await page.click('nav .tab[data-view="plans"]');
		const card = (id) => `article.plan[data-plan-id="${id}"]`;
		await page.waitForSelector(`${card(s.approve.plan_id)} .approve`, { timeout: 10000 });
		await page.waitForSelector(`${card(s.reject.plan_id)} .reject`, { timeout: 10000 });
		report.steps.preview_diff = await page.$$eval(`${card(s.approve.plan_id)} table.diff tr.changed`,
			(rows) => rows.map((r) => [r.dataset.column, r.querySelector('.before').textContent,
				r.querySelector('.after').textContent]));
		await page.screenshot({ path: join(s.out_dir, 'console-plans.png'), fullPage: true });

		await page.fill(`${card(s.approve.plan_id)} .note`, 'Checked with the customer');
		await page.click(`${card(s.approve.plan_id)} .approve`);
		await page.waitForFunction((id) => document.getElementById('plans-message').textContent
			.includes(`${id} approved`), s.approve.plan_id, { timeout: 10000 });
		report.steps.approved_message = await page.textContent('#plans-message');
		report.steps.apply_approved = await agentCommit(s, s.approve);

		await page.waitForSelector(`${card(s.reject.plan_id)} .reject`, { timeout: 10000 });
		await page.fill(`${card(s.reject.plan_id)} .note`, 'Duplicate of another request');
		await page.click(`${card(s.reject.plan_id)} .reject`);
		await page.waitForFunction((id) => document.getElementById('plans-message').textContent
			.includes(`${id} rejected`), s.reject.plan_id, { timeout: 10000 });
		report.steps.rejected_message = await page.textContent('#plans-message');
		report.steps.apply_rejected = await agentCommit(s, s.reject);
		report.steps.pending_left = await page.$$eval('article.plan', (a) => a.map((x) => x.dataset.planId));

		// Back to the calls: the agent's commit of the approved plan is there.
		await page.click('nav .tab[data-view="calls"]');
		await page.fill('#f-tool', s.approve.tool);
		await page.selectOption('#f-outcome', '');
		await applyFilters(page);
		const applied = report.steps.apply_approved?.result?.structuredContent?.call_id;
		if (applied) {
			await page.waitForSelector(`#calls tbody tr[data-call-id="${applied}"]`, { timeout: 10000 });
			await page.click(`#calls tbody tr[data-call-id="${applied}"]`);
			await page.waitForSelector('#call-detail table.diff', { timeout: 10000 });
			report.steps.applied_diff = await page.$$eval('#call-detail table.diff tr.changed',
				(rows) => rows.map((r) => [r.dataset.column, r.querySelector('.after').textContent]));
		}
		report.steps.approver_outcomes = await page.$$eval('#calls tbody tr',
			(rows) => rows.map((r) => r.dataset.outcome));
		await page.screenshot({ path: join(s.out_dir, 'console-applied.png'), fullPage: true });

		// Where the credential is not: web storage, cookies, URLs.
		report.storage = await page.evaluate(() => ({ local: localStorage.length,
			session: sessionStorage.length, cookie: document.cookie, url: location.href }));
		report.requests = requests;
		await page.click('nav .tab[data-view="plans"]');
		await page.screenshot({ path: join(s.out_dir, 'console.png'), fullPage: false });
	} finally {
		await context.close();
		rmSync(profile, { recursive: true, force: true });
	}
	process.stdout.write(JSON.stringify(report));
}

main().catch((e) => {
	process.stderr.write(`${e.stack ?? e}\n`);
	process.exit(1);
});
