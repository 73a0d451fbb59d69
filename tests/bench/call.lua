-- call.lua: a wrk script that POSTs JSON-RPC tools/call requests to /rpc, one customer at
-- random per request, and counts every answer that is not a success (an HTTP status other
-- than 200, a JSON-RPC error or an isError result) so the driver can report only 2xx work.
--
-- Environment: BENCH_TOKEN (a bearer token), BENCH_KIND (read, write or dryrun),
-- BENCH_CID_LO/BENCH_CID_HI (the tenant's customer ids), BENCH_NONCE (makes keys unique
-- across runs).

local token = os.getenv("BENCH_TOKEN")
local kind = os.getenv("BENCH_KIND") or "read"
local lo = tonumber(os.getenv("BENCH_CID_LO") or "1")
local hi = tonumber(os.getenv("BENCH_CID_HI") or "1")
local nonce = os.getenv("BENCH_NONCE") or "0"
local threads = {}
local n_threads = 0

function setup(thread)
	n_threads = n_threads + 1
	thread:set("thread_no", n_threads)
	table.insert(threads, thread)
end

function init(args)
	bad = 0
	seq = 0
	math.randomseed(os.time() * 1000 + thread_no)
	headers = { ["Content-Type"] = "application/json",
		    ["Authorization"] = "Bearer " .. token }
end

function request()
	local cid = math.random(lo, hi)
	local body
	seq = seq + 1
	if kind == "write" then
		body = string.format('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":'
		    .. '{"name":"add_support_note","arguments":{"customer_id":%d,"body":"bench note"},'
		    .. '"idempotency_key":"bench-%s-%d-%d"}}', seq, cid, nonce, thread_no, seq)
	elseif kind == "dryrun" then
		body = string.format('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":'
		    .. '{"name":"add_support_note","arguments":{"customer_id":%d,"body":"bench note"},'
		    .. '"dry_run":true}}', seq, cid)
	else
		body = string.format('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":'
		    .. '{"name":"lookup_invoices","arguments":{"customer_id":%d}}}', seq, cid)
	end
	return wrk.format("POST", "/rpc", headers, body)
end

function response(status, hdrs, body)
	if status ~= 200 or string.find(body, '"isError":true', 1, true) ~= nil
	    or string.find(body, '"error":{', 1, true) ~= nil then
		bad = bad + 1
	end
end

function done(summary, latency, requests)
	local n_bad = 0
	for _, t in ipairs(threads) do
		n_bad = n_bad + t:get("bad")
	end
	io.write(string.format('BENCH {"requests":%d,"duration_us":%d,"bad":%d,'
	    .. '"socket_errors":%d,"p50_us":%d,"p99_us":%d}\n', summary.requests,
	    summary.duration, n_bad, summary.errors.connect + summary.errors.read +
	    summary.errors.write + summary.errors.timeout, latency:percentile(50),
	    latency:percentile(99)))
end
