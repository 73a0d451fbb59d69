-- Reads that write nothing of their own, and revocation pushed to every gateway at once.
--
-- count_call travels in every read's pipeline (and runs before every other call that
-- counts).  Until now it UPDATEd the token's row on every call, so every read was a writing
-- transaction with its own WAL flush, and every call of one token queued on that row's
-- lock.  Now only a token with a quota is written; for the others the check is a plain read
-- of the token and its tenant, as exact as before: a revocation, an expiry or a tenant's
-- disabling committed before the call's transaction began refuses the call.  Each refusal
-- has its own SQLSTATE, so the gateway answers it as authentication would:
--     AL401  the token was revoked            (401 token_revoked)
--     AL440  the token has expired            (401 token_expired)
--     AL402  the token's tenant is disabled   (403 tenant_disabled)
--     AL403  the token's quota is used up     (403 quota_exhausted)
-- Where a quota exists the UPDATE stays in the read's transaction (a read that fails leaves
-- the count undone); the gateway commits that transaction with synchronous_commit off, as its
-- commit record precedes, in the WAL, the audit batch that holds the call's record, and the
-- call is answered only once that batch is flushed.
CREATE OR REPLACE FUNCTION airlock.count_call(token_id text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
DECLARE
    quota integer;
    used integer;
    is_revoked boolean;
    is_expired boolean;
    is_disabled boolean;
    n integer;
BEGIN
    SELECT t.max_calls, t.calls_used, t.revoked_at IS NOT NULL, t.expires_at <= now(),
           tn.disabled
      INTO quota, used, is_revoked, is_expired, is_disabled
      FROM airlock.tokens t JOIN airlock.tenants tn ON tn.name = t.tenant
     WHERE t.id = count_call.token_id;
    IF NOT FOUND OR is_revoked THEN
        RAISE EXCEPTION USING ERRCODE = 'AL401', MESSAGE = 'the token was revoked';
    ELSIF is_expired THEN
        RAISE EXCEPTION USING ERRCODE = 'AL440', MESSAGE = 'the token has expired';
    ELSIF is_disabled THEN
        RAISE EXCEPTION USING ERRCODE = 'AL402', MESSAGE = 'the tenant is disabled';
    ELSIF quota IS NULL THEN
        RETURN used;
    END IF;
    -- Under the row's lock, on its newest version: a concurrent revocation or count wins.
    UPDATE airlock.tokens t SET calls_used = t.calls_used + 1
     WHERE t.id = count_call.token_id AND t.revoked_at IS NULL AND t.expires_at > now()
       AND t.calls_used < t.max_calls
    RETURNING t.calls_used INTO n;
    IF n IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'AL403', MESSAGE = 'the token may make no more calls';
    END IF;
    RETURN n;
END
$$;

-- Gateways keep what never changes of a token (tenant, grants, bindings, task, expiry) for
-- at most a second; a revocation (or any change but a count), a token's removal and any
-- change of a tenant (disabled, its rate) are announced on the channel airlock_tokens, so every gateway forgets them at
-- once: the payload is the token's id, or 'tenant:' and the tenant's name.  Triggers, so
-- that every way of changing them announces it (airlockctl, airlock/tokens.revoke, SQL).
CREATE FUNCTION airlock.announce_token_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_TABLE_NAME = 'tenants' THEN
        PERFORM pg_notify('airlock_tokens', 'tenant:' || OLD.name);
    ELSE
        PERFORM pg_notify('airlock_tokens', OLD.id);
    END IF;
    RETURN NULL;
END
$$;

-- Any change but a count is announced: the guard allows only a revocation, but an owner may
-- lift it to write a row by hand, and a gateway must not keep the old one.
CREATE TRIGGER airlock_token_announce
    AFTER UPDATE OF revoked_at, expires_at, hash, tenant, task, tools, bindings, can_revert,
        preview_only, max_calls, approver OR DELETE ON airlock.tokens
    FOR EACH ROW EXECUTE FUNCTION airlock.announce_token_change();

CREATE TRIGGER airlock_tenant_announce
    AFTER UPDATE OR DELETE ON airlock.tenants
    FOR EACH ROW EXECUTE FUNCTION airlock.announce_token_change();
