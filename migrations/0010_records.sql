-- Bounded and keyed records: the deployment's digest key, the token a counted refusal
-- came with, and the sweep of expired plans.

-- The key of the keyed digests (HMAC-SHA256) that stand for sensitive argument values, for
-- what a refused call sent, and for the fingerprints that bind idempotency keys and plans
-- to their arguments.  Unkeyed, a digest of a small value (a PIN, a phone number) is undone
-- by trying every value.  One key per deployment, made here, so every airlockd sharing the
-- database uses the same one.  gen_random_uuid() draws from the server's strong random
-- source (pgcrypto may not be installed): two of them give 244 random bits.
CREATE TABLE airlock.digest_key (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    key        bytea NOT NULL CHECK (length(key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE airlock.digest_key IS
    'The deployment''s key for keyed digests (HMAC-SHA256) in call records, idempotency keys '
    'and plans.  Readable by the operator and the gateway only; replacing it makes earlier '
    'digests incomparable with new ones.';

INSERT INTO airlock.digest_key (key)
SELECT decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex');

REVOKE ALL ON airlock.digest_key FROM PUBLIC;
GRANT SELECT ON airlock.digest_key TO airlock_gateway;

-- Refusals of a real token (revoked, expired, over its rate limit) are counted with its id.
ALTER TABLE airlock.refusals ADD COLUMN token_id text;

COMMENT ON COLUMN airlock.refusals.token_id IS
    'The token id (12 hex digits) when the refused token exists: revoked, expired, its tenant '
    'disabled, or over its own or its tenant''s rate limit; NULL before a token is known.';

-- Plans live 15 minutes; an expired plan is kept an hour more, so a late commit is told
-- plan_expired rather than plan_mismatch, then swept with the idempotency keys.  SECURITY
-- DEFINER: the gateway deletes nothing else in airlock.plans.
CREATE FUNCTION airlock.sweep_plans(max_rows integer DEFAULT 5000) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH gone AS (
        DELETE FROM airlock.plans WHERE id IN (
            SELECT p.id FROM airlock.plans p
             WHERE p.expires_at < now() - interval '1 hour' LIMIT max_rows)
        RETURNING 1)
    SELECT count(*) FROM gone
$$;

REVOKE EXECUTE ON FUNCTION airlock.sweep_plans(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION airlock.sweep_plans(integer) TO airlock_gateway;

CREATE INDEX plans_expires_idx ON airlock.plans (expires_at);

-- The tool whose columns a revert's answer and calls.get show: a revert's own record names
-- airlock/calls.revert, so the chain of reverted calls is followed back to the write that
-- began it.  NULL when the chain ends elsewhere (the caller then shows keys only).
CREATE FUNCTION airlock.origin_tool(call uuid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE chain(tool, target, depth) AS (
        SELECT c.tool, c.arguments ->> 'call_id', 0 FROM airlock.calls c WHERE c.id = call
        UNION ALL
        SELECT c.tool, c.arguments ->> 'call_id', chain.depth + 1
          FROM chain JOIN airlock.calls c
            ON chain.tool = 'airlock/calls.revert'
           AND c.id = CASE WHEN chain.target ~ ('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-'
                                                 '[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')
                           THEN chain.target::uuid END
         WHERE chain.depth < 1000)
    SELECT NULLIF(tool, 'airlock/calls.revert') FROM chain ORDER BY depth DESC LIMIT 1
$$;

REVOKE EXECUTE ON FUNCTION airlock.origin_tool(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION airlock.origin_tool(uuid) TO airlock_gateway;
