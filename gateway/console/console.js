// console.js: the Airlock console.  The credential lives in one variable of this closure
// only (never in a URL, a cookie or web storage) and goes out as a Bearer header with each
// JSON-RPC call to /rpc on this origin.  Everything shown is put in the page as text
// (textContent), never as HTML: call arguments and notes are written by agents and people.
'use strict';

(() => {
	let credential = null;
	let me = null;		// tokens.self: {admin: true} or an approver token's
	let rid = 0;
	let nextBefore = null;
	let selected = null;
	let loads = 0;		// pages of calls shown: what a test waits on after a filter

	const $ = (id) => document.getElementById(id);

	function el(tag, attrs, ...children) {
		const e = document.createElement(tag);
		for (const [k, v] of Object.entries(attrs || {})) {
			if (v === undefined || v === null)
				continue;
			if (k === 'class')
				e.className = v;
			else if (k.startsWith('data-'))
				e.setAttribute(k, v);
			else
				e[k] = v;
		}
		for (const c of children)
			e.append(c instanceof Node ? c : document.createTextNode(c ?? ''));
		return e;
	}

	function json(v) {
		return JSON.stringify(v, null, 2);
	}

	async function rpc(method, params) {
		const res = await fetch('/rpc', {
			method: 'POST',
			headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${credential}` },
			body: JSON.stringify({ jsonrpc: '2.0', id: ++rid, method, params: params || {} }),
			credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer',
		});
		let body;
		try {
			body = await res.json();
		} catch {
			throw new Error(`HTTP ${res.status}`);
		}
		if (body.error) {
			const e = new Error(body.error.message);
			e.reason = body.error.data?.reason;
			throw e;
		}
		return body.result;
	}

	// Login ------------------------------------------------------------------------------

	async function login(ev) {
		ev.preventDefault();
		const input = $('credential');
		credential = input.value.trim();
		input.value = '';
		$('login-error').textContent = '';
		try {
			me = await rpc('airlock/tokens.self');
			if (!me.admin && !me.approver)
				throw new Error('This console needs the admin credential or an approver token');
		} catch (e) {
			credential = null;
			me = null;
			$('login-error').textContent = `Not logged in: ${e.message}`;
			return;
		}
		$('who').textContent = me.admin ? 'admin' :
			`${me.approver} (approver, tenant ${me.tenant})`;
		$('login').hidden = true;
		$('app').hidden = false;
		$('logout').hidden = false;
		// An approver sees its own tenant only: the gateway holds it to that anyway.
		$('f-tenant-label').hidden = !me.admin;
		show('calls');
		await Promise.all([loadCalls(false), loadPlans()]);
	}

	function logout() {
		credential = null;
		me = null;
		$('app').hidden = true;
		$('logout').hidden = true;
		$('login').hidden = false;
		$('who').textContent = '';
		$('calls').tBodies[0].replaceChildren();
		$('plans').replaceChildren();
		$('call-detail').hidden = true;
	}

	function show(view) {
		for (const b of document.querySelectorAll('nav .tab'))
			b.setAttribute('aria-pressed', String(b.dataset.view === view));
		for (const v of ['calls', 'plans', 'chain'])
			$(`${v}-view`).hidden = v !== view;
		if (view === 'plans')
			loadPlans();
		if (view === 'chain')
			loadChain();
	}

	// Calls ------------------------------------------------------------------------------

	function isoOf(local) {
		return local ? new Date(local).toISOString() : undefined;
	}

	function filters() {
		const f = { limit: 50 };
		const tenant = $('f-tenant').value.trim(), tool = $('f-tool').value.trim();
		if (me.admin && tenant)
			f.tenant = tenant;
		if (tool)
			f.tool = tool;
		if ($('f-outcome').value)
			f.outcome = $('f-outcome').value;
		if ($('f-from').value)
			f.from = isoOf($('f-from').value);
		if ($('f-to').value)
			f.to = isoOf($('f-to').value);
		return f;
	}

	async function loadCalls(more) {
		const body = $('calls').tBodies[0];
		const f = filters();
		if (more && nextBefore)
			f.before = nextBefore;
		$('calls-error').textContent = '';
		let page;
		try {
			page = await rpc('airlock/calls.list', f);
		} catch (e) {
			$('calls-error').textContent = e.message;
			return;
		}
		if (!more)
			body.replaceChildren();
		for (const c of page.calls) {
			const tr = el('tr', { 'data-call-id': c.call_id, 'data-tool': c.tool ?? '',
				'data-outcome': c.outcome },
			el('td', {}, c.at.replace('T', ' ').replace('Z', '')),
			el('td', {}, c.tenant ?? ''), el('td', {}, c.task ?? ''),
			el('td', {}, c.method), el('td', {}, c.tool ?? ''),
			el('td', { class: `outcome-${c.outcome}` }, c.outcome),
			el('td', {}, c.reason ?? ''), el('td', {}, c.dry_run ? 'yes' : ''),
			el('td', {}, c.changes ? String(c.changes) : ''));
			tr.addEventListener('click', () => openCall(c.call_id, tr));
			body.append(tr);
		}
		nextBefore = page.next_before;
		$('older').hidden = !nextBefore;
		$('calls').dataset.loads = String(++loads);
	}

	// One change as a row diff: each column of the images, before and after side by side,
	// the columns that changed marked.
	function diffTable(ch) {
		const before = ch.before || {}, after = ch.after || {};
		const cols = [...new Set([...Object.keys(before), ...Object.keys(after)])];
		const rows = cols.map((k) => {
			const b = k in before ? JSON.stringify(before[k]) : '';
			const a = k in after ? JSON.stringify(after[k]) : '';
			return el('tr', { class: b === a ? 'same' : 'changed', 'data-column': k },
				el('th', {}, k), el('td', { class: 'before' }, b), el('td', { class: 'after' }, a));
		});
		return el('div', { class: 'change' },
			el('div', { class: 'diff-head' },
				`${ch.action} ${ch.table} ${JSON.stringify(ch.key)}`),
			el('table', { class: 'diff' },
				el('thead', {}, el('tr', {}, el('th', {}, 'column'), el('th', {}, 'before'),
					el('th', {}, 'after'))),
				el('tbody', {}, ...rows)));
	}

	async function openCall(id, tr) {
		if (selected)
			selected.classList.remove('selected');
		selected = tr;
		tr.classList.add('selected');
		const box = $('call-detail');
		box.hidden = false;
		box.replaceChildren(el('p', {}, 'Loading…'));
		let got;
		try {
			got = await rpc('airlock/calls.get', { call_id: id });
		} catch (e) {
			box.replaceChildren(el('p', { class: 'error' }, e.message));
			return;
		}
		const c = got.call;
		const fields = [['call', c.call_id], ['at', c.at], ['tenant', c.tenant],
			['task', c.task], ['method', c.method], ['tool', c.tool], ['outcome', c.outcome],
			['reason', c.reason], ['dry run', String(c.dry_run)],
			['idempotency key', c.idempotency_key], ['plan', c.plan_id],
			['duration (ms)', c.duration_ms], ['result digest', c.result_digest]];
		box.replaceChildren(
			el('h2', {}, `${c.method} ${c.tool ?? ''}`),
			el('dl', { class: 'fields' }, ...fields.flatMap(([k, v]) =>
				[el('dt', {}, k), el('dd', {}, v === null || v === undefined ? '–' : String(v))])),
			el('div', { class: 'diff-head' }, 'Arguments (sensitive ones as keyed digests)'),
			el('pre', { class: 'arguments' }, json(c.arguments)),
			el('div', { class: 'diff-head' }, got.changes.length ?
				`Changes (${got.changes.length})` : 'No changes'),
			...got.changes.map(diffTable));
	}

	// Plans ------------------------------------------------------------------------------

	async function loadPlans() {
		const status = $('plan-status').value;
		const box = $('plans');
		let list;
		try {
			list = (await rpc('airlock/plans.list', { status, limit: 50 })).plans;
		} catch (e) {
			box.replaceChildren(el('p', { class: 'error' }, e.message));
			return;
		}
		if (status === 'pending')
			$('pending-count').textContent = list.length ? String(list.length) : '';
		const cards = [];
		for (const p of list) {
			let detail;
			try {
				detail = (await rpc('airlock/plans.get', { plan_id: p.plan_id })).plan;
			} catch (e) {
				detail = { ...p, arguments: null, changes: [] };
			}
			cards.push(planCard(detail));
		}
		box.replaceChildren(...(cards.length ? cards : [el('p', {}, `No ${status} plans.`)]));
	}

	function planCard(p) {
		const note = el('input', { type: 'text', class: 'note', placeholder: 'Note (why)',
			maxLength: 2000 });
		const card = el('article', { class: 'plan', 'data-plan-id': p.plan_id },
			el('h3', {}, `${p.tool} `, el('span', { class: `status-${p.status}` }, p.status)),
			el('dl', { class: 'fields' },
				el('dt', {}, 'plan'), el('dd', {}, p.plan_id),
				el('dt', {}, 'tenant'), el('dd', {}, p.tenant),
				el('dt', {}, 'asked by'), el('dd', {}, `task ${p.asked_task ?? '–'} (token ${p.asked_by ?? '–'})`),
				el('dt', {}, 'asked at'), el('dd', {}, p.created_at),
				el('dt', {}, 'expires'), el('dd', {}, p.expires_at),
				el('dt', {}, 'four eyes'), el('dd', {}, p.four_eyes ? 'yes: the asking task cannot approve' : 'no'),
				el('dt', {}, 'rows'), el('dd', {}, `${p.rows_updated} updated, ${p.rows_inserted} inserted`),
				...(p.decided_at ? [el('dt', {}, 'decided'),
					el('dd', {}, `${p.status} by ${p.approver} at ${p.decided_at}${p.note ? `: ${p.note}` : ''}`)] : []),
				...(p.applied_by ? [el('dt', {}, 'applied by call'), el('dd', {}, p.applied_by)] : [])),
			el('div', { class: 'diff-head' }, 'Arguments'),
			el('pre', { class: 'arguments' }, json(p.arguments)),
			el('div', { class: 'diff-head' }, 'Preview'),
			...(p.changes || []).map(diffTable));
		if (p.status === 'pending') {
			const approve = el('button', { type: 'button', class: 'approve' }, 'Approve');
			const reject = el('button', { type: 'button', class: 'reject' }, 'Reject');
			approve.addEventListener('click', () => decide(p.plan_id, true, note, card));
			reject.addEventListener('click', () => decide(p.plan_id, false, note, card));
			card.append(el('div', { class: 'decide' }, note, approve, reject));
		}
		return card;
	}

	async function decide(planId, approve, note, card) {
		for (const b of card.querySelectorAll('button'))
			b.disabled = true;
		const params = { plan_id: planId };
		if (note.value.trim())
			params.note = note.value.trim();
		try {
			const r = await rpc(approve ? 'airlock/plans.approve' : 'airlock/plans.reject', params);
			$('plans-message').className = 'message';
			$('plans-message').textContent = `Plan ${r.plan_id} ${r.status}.`;
		} catch (e) {
			$('plans-message').className = 'error';
			$('plans-message').textContent = `Plan ${planId}: ${e.message}`;
		}
		await loadPlans();
	}

	// Chain ------------------------------------------------------------------------------

	async function loadChain() {
		const box = $('chain');
		let s;
		try {
			s = await rpc('airlock/audit.state', {});
		} catch (e) {
			box.replaceChildren(el('dt', {}, 'error'), el('dd', { class: 'error' }, e.message));
			return;
		}
		const anchor = el('input', { type: 'text', readOnly: true, value: s.hash ?? '',
			id: 'anchor' });
		const copy = el('button', { type: 'button' }, 'Copy');
		copy.addEventListener('click', async () => {
			anchor.select();
			try {
				await navigator.clipboard.writeText(anchor.value);
				copy.textContent = 'Copied';
			} catch {
				copy.textContent = 'Select and copy';
			}
		});
		const fine = s.head_links && s.recent_bad === 0;
		box.replaceChildren(
			el('dt', {}, 'state'), el('dd', { id: 'chain-state', class: fine ? 'status-approved' : 'status-rejected' },
				fine ? 'intact at a glance' : 'a problem: run airlockctl audit verify'),
			el('dt', {}, 'head checkpoint'), el('dd', {}, s.checkpoint === null ? 'none yet' : String(s.checkpoint)),
			el('dt', {}, 'sealed at'), el('dd', {}, s.sealed_at ?? '–'),
			el('dt', {}, 'anchor (head hash)'), el('dd', {}, anchor, ' ', copy),
			...(s.tenant ? [el('dt', {}, `tenant ${s.tenant} head`),
				el('dd', {}, s.tenant_hash ? `${s.tenant_hash} (checkpoint ${s.tenant_checkpoint})` : 'none yet')] : []),
			el('dt', {}, 'head links to the one before'), el('dd', {}, s.head_links ? 'yes' : 'NO'),
			el('dt', {}, 'records not sealed yet'), el('dd', {}, String(s.unsealed)),
			el('dt', {}, 'newest records checked'), el('dd', {},
				`${s.recent_checked}, ${s.recent_bad} not matching their digest`));
	}

	document.addEventListener('DOMContentLoaded', () => {
		$('login-form').addEventListener('submit', login);
		$('logout').addEventListener('click', logout);
		$('filters').addEventListener('submit', (ev) => {
			ev.preventDefault();
			$('call-detail').hidden = true;
			loadCalls(false);
		});
		$('older').addEventListener('click', () => loadCalls(true));
		$('plan-status').addEventListener('change', loadPlans);
		for (const b of document.querySelectorAll('nav .tab'))
			b.addEventListener('click', () => show(b.dataset.view));
	});
})();
