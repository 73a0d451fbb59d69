-- Counting a call against its token's quota as one statement that fails when the quota is
-- used up (or the token expired or was revoked meanwhile), so the count can travel in the
-- same pipeline as a read, and roll back with it.
CREATE FUNCTION airlock.count_call(token_id text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    UPDATE airlock.tokens SET calls_used = calls_used + 1
     WHERE id = token_id AND revoked_at IS NULL AND expires_at > now()
       AND (max_calls IS NULL OR calls_used < max_calls)
    RETURNING calls_used INTO n;
    IF n IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'AL403', MESSAGE = 'the token may make no more calls';
    END IF;
    RETURN n;
END
$$;

REVOKE EXECUTE ON FUNCTION airlock.count_call(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION airlock.count_call(text) TO airlock_gateway;
