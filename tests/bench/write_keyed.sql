-- pgbench: what airlockd does for a keyed add_support_note, by hand: the key claimed, the
-- INSERT as the tenant (its change captured by the trigger), the captured changes read, the
-- call record and the key's answer stored, all in one synchronous transaction.
\set cid random(:lo, :hi)
BEGIN ISOLATION LEVEL READ COMMITTED;
SELECT gen_random_uuid()::text AS callid \gset
SELECT set_config('airlock.call_id', :callid, true), set_config('statement_timeout', '2000', true), set_config('lock_timeout', '2000', true);
SELECT airlock.sweep_key('acme', :callid);
SELECT airlock.claim_key('acme', :callid, md5(:callid) || md5(:callid), :callid::uuid, 86400);
SELECT set_config('role', 'tenant_acme', true);
INSERT INTO billing.support_notes (customer_id, invoice_id, body) VALUES (:cid, NULL, 'bench note') RETURNING id, customer_id, invoice_id, body, created_at;
SELECT current_user::text;
SELECT set_config('role', 'none', true);
SELECT count(*), coalesce(jsonb_agg(jsonb_build_object('table', table_name, 'key', airlock.image_json(key), 'after', airlock.image_json(after)) ORDER BY id), '[]')::text FROM airlock.changes WHERE call_id = :callid::uuid;
CALL airlock.record_calls(json_build_array(json_build_object('id', :callid::text, 'at', now(), 'tenant', 'acme', 'token_id', 'pgbench00000', 'task', 'bench', 'method', 'tools/call', 'tool', 'add_support_note', 'arguments', json_build_object('customer_id', :cid::integer, 'body', 'bench note'), 'dry_run', false, 'idempotency_key', :callid::text, 'outcome', 'ok', 'duration_ms', 1.0, 'result_digest', md5(:callid) || md5(:callid), 'client', '127.0.0.1')));
CALL airlock.store_key_response('acme', :callid, '{}');
COMMIT;
