-- pgbench: the same read without its call record: a transaction that writes nothing.
\set cid random(:lo, :hi)
BEGIN;
SELECT gen_random_uuid()::text AS callid \gset
SELECT set_config('role', 'tenant_acme', true), set_config('airlock.call_id', :callid, true), set_config('statement_timeout', '2000', true), set_config('lock_timeout', '2000', true);
SELECT id, number, status, currency, amount, issued_at, due_at, paid_at FROM billing.invoices_live WHERE customer_id = :cid AND (NULL::text IS NULL OR status = NULL) ORDER BY issued_at DESC NULLS LAST, id DESC LIMIT 20;
SELECT current_user::text;
COMMIT;
