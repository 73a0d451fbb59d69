-- pgbench: what airlockd does for an audited lookup_invoices, by hand: the tenant's role and
-- call id set, the tool's statement, the role check, then the call record inserted through
-- the same procedure airlockd uses, and a synchronous commit.
\set cid random(:lo, :hi)
BEGIN;
SELECT gen_random_uuid()::text AS callid \gset
SELECT set_config('role', 'tenant_acme', true), set_config('airlock.call_id', :callid, true), set_config('statement_timeout', '2000', true), set_config('lock_timeout', '2000', true);
SELECT id, number, status, currency, amount, issued_at, due_at, paid_at FROM billing.invoices_live WHERE customer_id = :cid AND (NULL::text IS NULL OR status = NULL) ORDER BY issued_at DESC NULLS LAST, id DESC LIMIT 20;
SELECT current_user::text;
SELECT set_config('role', 'none', true);
CALL airlock.record_calls(json_build_array(json_build_object('id', :callid::text, 'at', now(), 'tenant', 'acme', 'token_id', 'pgbench00000', 'task', 'bench', 'method', 'tools/call', 'tool', 'lookup_invoices', 'arguments', json_build_object('customer_id', :cid::integer), 'dry_run', false, 'outcome', 'ok', 'duration_ms', 1.0, 'result_digest', md5(:callid) || md5(:callid), 'client', '127.0.0.1')));
COMMIT;
