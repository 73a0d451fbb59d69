-- The gateway's role reduced to narrow functions.  A leaked gateway credential could use
-- direct grants on the airlock schema to tamper unseen: un-revoke a token, mint one by
-- INSERT, choose a record's seq, attach captured changes to a call already recorded, rewrite
-- a key's stored answer.  From here on airlock_gateway holds no INSERT, UPDATE or DELETE on
-- the airlock schema: it EXECUTEs the SECURITY DEFINER functions below (owned by the
-- operator, search_path pinned, arguments checked), each doing only what the gateway needs.
-- The tool statements themselves still run as the tenant's role (set_config('role')), under
-- row-level security.  It keeps SELECT on tenants and tenant tables (its configuration), on
-- calls and changes (calls.get, revert, a write's own captured changes): reading them lets
-- it change nothing.
--
-- "This transaction" below: a row's xmin is the id of the transaction that inserted it.
-- Airlock inserts a call record and its changes in the same transaction (a write's effect,
-- record and key commit together; a preview's record and changes go in one batch) and
-- uses no savepoints there, so xmin is that top-level transaction's id.

CREATE FUNCTION airlock.is_this_transaction(x xid) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT x::text = (pg_current_xact_id()::text::numeric % 4294967296)::text
$$;

-- Tokens ------------------------------------------------------------------------------------

-- The call record of the mint that made the token: audit verify names a token without one.
ALTER TABLE airlock.tokens ADD COLUMN mint_call uuid UNIQUE;
COMMENT ON COLUMN airlock.tokens.mint_call IS
    'The id of the airlock/tokens.mint call record that minted the token.';

-- A token's revocation is final, its grants never change, its expiry may only come sooner
-- (an operator cutting a token short) and calls_used only grows.  For
-- everyone, the owner included (an owner who disables this is what verify is for).
CREATE FUNCTION airlock.guard_token() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
        RAISE EXCEPTION 'token %: a revocation cannot be undone or moved', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.calls_used < OLD.calls_used OR NEW.expires_at > OLD.expires_at OR
       (NEW.id, NEW.hash, NEW.tenant, NEW.task, NEW.tools, NEW.bindings, NEW.can_revert,
        NEW.preview_only, NEW.max_calls, NEW.created_at, NEW.mint_call)
       IS DISTINCT FROM
       (OLD.id, OLD.hash, OLD.tenant, OLD.task, OLD.tools, OLD.bindings, OLD.can_revert,
        OLD.preview_only, OLD.max_calls, OLD.created_at, OLD.mint_call) THEN
        RAISE EXCEPTION 'token %: only its revocation, its call count and an earlier expiry may change', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER airlock_token_guard BEFORE UPDATE ON airlock.tokens
    FOR EACH ROW EXECUTE FUNCTION airlock.guard_token();

-- What authentication needs of a token, by the hex SHA-256 of its secret.
CREATE FUNCTION airlock.token_lookup(hash_hex text)
RETURNS TABLE (token_id text, tenant_name text, tenant_role name, tenant_disabled boolean,
    task text, tools json, bindings jsonb, can_revert boolean, preview_only boolean,
    max_calls integer, calls_used integer, expires_at text, is_expired boolean,
    is_revoked boolean, rate_per_sec double precision, rate_burst double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
    SELECT t.id, t.tenant, n.role, n.disabled, t.task, array_to_json(t.tools), t.bindings,
           t.can_revert, t.preview_only, coalesce(t.max_calls, 0), t.calls_used,
           to_char(t.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           t.expires_at <= now(), t.revoked_at IS NOT NULL,
           coalesce(n.rate_per_sec, 0), coalesce(n.rate_burst, 0)
      FROM airlock.tokens t JOIN airlock.tenants n ON n.name = t.tenant
     WHERE hash_hex ~ '^[0-9a-f]{64}$' AND t.hash = decode(hash_hex, 'hex')
$$;

-- Stores a new token (the admin's airlock/tokens.mint, airlockctl token mint).  The secret
-- never reaches the database: id and hash are the caller's, and the id must be the hash's
-- first 12 hex digits.  mint_call is the id of the mint's own call record, written after
-- (audit verify names a token whose mint left no record).  Returns the expiry (ISO 8601),
-- or no row when there is no such tenant.
CREATE FUNCTION airlock.mint_token(mint_call uuid, token_id text, hash_hex text,
    tenant_name text, task text, tools json, bindings jsonb, can_revert boolean,
    preview_only boolean, max_calls integer, ttl integer)
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
DECLARE
    expires timestamptz;
BEGIN
    IF mint_call IS NULL OR EXISTS (SELECT 1 FROM airlock.calls c WHERE c.id = mint_call)
       OR EXISTS (SELECT 1 FROM airlock.tokens t WHERE t.mint_call = mint_token.mint_call) THEN
        RAISE EXCEPTION 'a mint needs a call id of its own' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF hash_hex IS NULL OR hash_hex !~ '^[0-9a-f]{64}$' OR token_id IS DISTINCT FROM left(hash_hex, 12) THEN
        RAISE EXCEPTION 'a token id is the first 12 hex digits of its hash'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ttl IS NULL OR ttl < 1 OR ttl > 86400 OR max_calls IS NULL OR max_calls < 0
       OR max_calls > 1000000000 OR task IS NULL OR length(task) NOT BETWEEN 1 AND 128
       OR coalesce(can_revert, preview_only) IS NULL THEN
        RAISE EXCEPTION 'ttl, max_calls or task out of range' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF json_typeof(tools) IS DISTINCT FROM 'array' OR json_array_length(tools) NOT BETWEEN 1 AND 256
       OR EXISTS (SELECT 1 FROM json_array_elements(tools) e
                   WHERE json_typeof(e) <> 'string' OR e #>> '{}' !~ '^[a-z][a-z0-9_]{0,63}$') THEN
        RAISE EXCEPTION 'tools must name 1 to 256 tools' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(bindings) IS DISTINCT FROM 'object'
       OR EXISTS (SELECT 1 FROM jsonb_each(bindings) b
                   WHERE b.key !~ '^[a-z][a-z0-9_]{0,63}$' OR jsonb_typeof(b.value) <> 'string'
                      OR length(b.value #>> '{}') > 1024) THEN
        RAISE EXCEPTION 'bindings name arguments and values' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO airlock.tokens (id, hash, tenant, task, tools, bindings, can_revert, preview_only,
        max_calls, expires_at, mint_call)
    SELECT token_id, decode(hash_hex, 'hex'), t.name, task,
           ARRAY(SELECT json_array_elements_text(tools)), bindings, can_revert, preview_only,
           NULLIF(max_calls, 0), now() + make_interval(secs => ttl), mint_call
      FROM airlock.tenants t WHERE t.name = tenant_name
    RETURNING airlock.tokens.expires_at INTO expires;
    IF expires IS NOT NULL THEN
        RETURN NEXT to_char(expires AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
    END IF;
END
$$;

-- Revokes a token, once: returns its tenant and whether it was revoked already; no row when
-- there is no such token.  Nothing here clears a revocation.
CREATE FUNCTION airlock.revoke_token(token_id text)
RETURNS TABLE (token_tenant text, was_revoked boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
BEGIN
    UPDATE airlock.tokens t SET revoked_at = now()
     WHERE t.id = revoke_token.token_id AND t.revoked_at IS NULL
    RETURNING t.tenant, false INTO token_tenant, was_revoked;
    IF NOT FOUND THEN
        SELECT t.tenant, true INTO token_tenant, was_revoked
          FROM airlock.tokens t WHERE t.id = revoke_token.token_id;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    RETURN NEXT;
END
$$;

-- count_call only ever adds one, and now runs as its owner.
ALTER FUNCTION airlock.count_call(text) SECURITY DEFINER
    SET search_path = pg_catalog, airlock, pg_temp;

-- Call records ------------------------------------------------------------------------------

-- Inserts call records (a JSON array of objects with the columns of airlock.calls).  seq is
-- the identity's and digest the trigger's, whatever the caller sends; a record's time must
-- be now, give or take (a call's start, recorded when it ends; clocks of several hosts).
-- A procedure, so CALL answers as the INSERT it replaces did.
CREATE PROCEDURE airlock.record_calls(records json)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
DECLARE
    bad text;
BEGIN
    IF json_typeof(records) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'call records come as a JSON array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT coalesce(r.id::text, '(no id)') INTO bad
      FROM json_populate_recordset(NULL::airlock.calls, records) r
     WHERE r.at IS NULL OR r.at < now() - interval '1 hour' OR r.at > now() + interval '5 minutes'
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'call record %: its time is not now', bad
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO airlock.calls (id, at, tenant, token_id, task, method, tool, arguments, dry_run,
        idempotency_key, plan_id, outcome, reason, duration_ms, result_digest, client, egress)
    SELECT id, at, tenant, token_id, task, method, tool, arguments, dry_run, idempotency_key,
           plan_id, outcome, reason, duration_ms, result_digest, client, egress
      FROM json_populate_recordset(NULL::airlock.calls, records);
END
$$;

-- The changes a preview would have made, kept with its record: only for a dry-run recorded
-- in this same transaction, once.
CREATE PROCEDURE airlock.record_preview(preview_call uuid, changes jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
DECLARE
    c airlock.calls%ROWTYPE;
    here boolean;
BEGIN
    SELECT * INTO c FROM airlock.calls k WHERE k.id = preview_call;
    SELECT airlock.is_this_transaction(k.xmin) INTO here
      FROM airlock.calls k WHERE k.id = preview_call;
    IF c.id IS NULL OR NOT c.dry_run OR NOT here
       OR EXISTS (SELECT 1 FROM airlock.changes x WHERE x.call_id = preview_call) THEN
        RAISE EXCEPTION 'previewed changes go only with a dry-run recorded in this transaction'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF jsonb_typeof(changes) IS DISTINCT FROM 'array' OR EXISTS (SELECT 1
        FROM jsonb_array_elements(changes) e
       WHERE e ->> 'tenant' IS DISTINCT FROM c.tenant AND e ->> 'tenant' IS NOT NULL) THEN
        RAISE EXCEPTION 'previewed changes are of the call''s tenant'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO airlock.changes (call_id, tenant, table_name, key, op, before, after)
    SELECT preview_call, c.tenant, e ->> 'table_name', e -> 'key', e ->> 'op', e -> 'before',
           e -> 'after'
      FROM jsonb_array_elements(changes) e;
END
$$;

CREATE PROCEDURE airlock.record_refusals(counts json)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
BEGIN
    INSERT INTO airlock.refusals (second, client, reason, count, token_id)
    SELECT to_timestamp((r ->> 0)::bigint), r ->> 1, r ->> 2, (r ->> 3)::integer,
           NULLIF(r ->> 4, '')
      FROM json_array_elements(counts) r
     WHERE to_timestamp((r ->> 0)::bigint) BETWEEN now() - interval '1 hour'
                                               AND now() + interval '5 minutes';
END
$$;

-- Captured changes: a change names a call that this transaction recorded as a write (or a
-- preview of one), or none (an operator's repair).  Checked at commit, since a write's
-- record is inserted after its effect.  This is what keeps a change from being attached to
-- a call recorded (or sealed) before, whatever airlock.call_id is set to.
CREATE FUNCTION airlock.check_change_call() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
BEGIN
    IF NEW.call_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM airlock.calls c
        WHERE c.id = NEW.call_id AND airlock.is_this_transaction(c.xmin)
          AND c.method IN ('tools/call', 'airlock/calls.revert') AND c.outcome = 'ok') THEN
        RAISE EXCEPTION 'change % names call %, which this transaction did not record as a write',
            NEW.id, NEW.call_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER airlock_change_call AFTER INSERT ON airlock.changes
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION airlock.check_change_call();

-- The capture trigger, as in 0006, refusing at once a call id already recorded.
CREATE OR REPLACE FUNCTION airlock.capture_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    img_old jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END;
    img_new jsonb := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END;
    img jsonb := coalesce(img_new, img_old);
    k jsonb := '{}'::jsonb;
    col text;
    cid uuid := NULLIF(current_setting('airlock.call_id', true), '')::uuid;
BEGIN
    IF cid IS NOT NULL AND EXISTS (SELECT 1 FROM airlock.calls c WHERE c.id = cid) THEN
        RAISE EXCEPTION 'call % is recorded already: no change may be added to it', cid
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOREACH col IN ARRAY TG_ARGV LOOP
        k := k || jsonb_build_object(col, img -> col);
    END LOOP;
    INSERT INTO airlock.changes (call_id, tenant, table_name, key, op, before, after)
    VALUES (cid,
            (SELECT t.name FROM airlock.tenants t WHERE t.role = (img ->> 'tenant')::name),
            quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME),
            k, lower(TG_OP), img_old, img_new);
    RETURN NULL;
END
$$;

-- Idempotency keys and plans ----------------------------------------------------------------

-- Claims a key for the write running in this transaction, with a plain INSERT (a
-- concurrent duplicate waits on the unique index, then fails with 23505).
CREATE FUNCTION airlock.claim_key(key_tenant text, key_text text, key_fingerprint text,
    key_call uuid, ttl integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
BEGIN
    IF ttl IS NULL OR ttl < 1 OR ttl > 90 * 86400
       OR key_call::text IS DISTINCT FROM NULLIF(current_setting('airlock.call_id', true), '')
       OR EXISTS (SELECT 1 FROM airlock.calls c WHERE c.id = key_call)
       OR NOT EXISTS (SELECT 1 FROM airlock.tenants t WHERE t.name = key_tenant) THEN
        RAISE EXCEPTION 'a key is claimed for the call this transaction runs'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO airlock.idempotency_keys (tenant, key, fingerprint, call_id, expires_at)
    VALUES (key_tenant, key_text, key_fingerprint, key_call, now() + make_interval(secs => ttl));
END
$$;

-- Frees one key, only once it has expired.
CREATE FUNCTION airlock.sweep_key(key_tenant text, key_text text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
    DELETE FROM airlock.idempotency_keys k
     WHERE k.tenant = key_tenant AND k.key = key_text AND k.expires_at < now()
$$;

-- Frees up to 5000 expired keys; returns how many.
CREATE FUNCTION airlock.sweep_keys() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
    WITH gone AS (
        DELETE FROM airlock.idempotency_keys k WHERE (k.tenant, k.key) IN
            (SELECT x.tenant, x.key FROM airlock.idempotency_keys x
              WHERE x.expires_at < now() LIMIT 5000)
        RETURNING 1)
    SELECT count(*) FROM gone
$$;

-- Stores the answer of the write that claimed the key, in the same transaction, once.
CREATE PROCEDURE airlock.store_key_response(key_tenant text, key_text text, answer text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
BEGIN
    UPDATE airlock.idempotency_keys k SET response = answer
     WHERE k.tenant = key_tenant AND k.key = key_text AND k.response IS NULL
       AND airlock.is_this_transaction(k.xmin);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'only the write that claimed a key stores its answer'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

CREATE FUNCTION airlock.key_lookup(key_tenant text, key_text text)
RETURNS TABLE (fingerprint text, response text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
    SELECT k.fingerprint, k.response FROM airlock.idempotency_keys k
     WHERE k.tenant = key_tenant AND k.key = key_text AND k.expires_at >= now()
$$;

-- A dry-run's plan, stored with its record (same id, tenant and tool, same transaction).
CREATE PROCEDURE airlock.create_plan(plan uuid, plan_tenant text, plan_tool text,
    plan_fingerprint text, plan_updates jsonb, plan_inserts jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM airlock.calls c WHERE c.id = plan AND c.dry_run
                     AND c.tenant = plan_tenant AND c.tool = plan_tool
                     AND airlock.is_this_transaction(c.xmin))
       OR jsonb_typeof(plan_updates) IS DISTINCT FROM 'array'
       OR jsonb_typeof(plan_inserts) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'a plan goes only with a dry-run recorded in this transaction'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO airlock.plans (id, tenant, tool, fingerprint, updates, inserts, expires_at)
    VALUES (plan, plan_tenant, plan_tool, plan_fingerprint, plan_updates, plan_inserts,
            now() + interval '15 minutes');
END
$$;

CREATE FUNCTION airlock.plan_get(plan uuid, plan_tenant text)
RETURNS TABLE (tool text, fingerprint text, updates text, inserts text, is_expired boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
    SELECT p.tool, p.fingerprint, p.updates::text, p.inserts::text, p.expires_at < now()
      FROM airlock.plans p WHERE p.id = plan AND p.tenant = plan_tenant
$$;

-- The sealer ---------------------------------------------------------------------------------

-- As in 0007, but the horizon ignores a checkpoint whose last seq the identity never gave
-- out (a forged far-future seq), which would otherwise hide every later record from it.
CREATE OR REPLACE FUNCTION airlock.seal(full_scan boolean DEFAULT false, max_records integer DEFAULT 50000)
RETURNS TABLE (checkpoint_id bigint, records integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    head airlock.checkpoints%ROWTYPE;
    horizon bigint := 0;
    issued bigint;
    cid bigint;
    ids uuid[];
    tenants text[];
    digests text[];
    cds text[];
    lo bigint;
    hi bigint;
    n integer;
    prev text;
    h text;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'airlock.seal() runs under READ COMMITTED: it must see the checkpoints '
                        'committed while it waited';
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext('airlock.seal')) THEN
        RETURN;
    END IF;
    SELECT * INTO head FROM airlock.checkpoints ORDER BY id DESC LIMIT 1;
    IF NOT full_scan THEN
        issued := coalesce(pg_sequence_last_value(
            pg_get_serial_sequence('airlock.calls', 'seq')::regclass), 0);
        SELECT coalesce(k.last_seq, 0) INTO horizon FROM airlock.checkpoints k
         WHERE k.kind = 'seal' AND k.created_at < now() - interval '10 minutes'
           AND k.last_seq <= issued
         ORDER BY k.id DESC LIMIT 1;
        horizon := coalesce(horizon, 0);
    END IF;
    SELECT array_agg(p.id ORDER BY p.seq), array_agg(p.tenant ORDER BY p.seq),
           array_agg(p.digest ORDER BY p.seq), array_agg(p.cd ORDER BY p.seq),
           min(p.seq), max(p.seq), count(*)
      INTO ids, tenants, digests, cds, lo, hi, n
      FROM (SELECT c.id, c.seq, c.tenant, c.digest,
                   (SELECT encode(sha256(convert_to(string_agg(ch.digest, '' ORDER BY ch.id),
                                                    'UTF8')), 'hex')
                      FROM airlock.changes ch WHERE ch.call_id = c.id
                    HAVING count(*) > 0) AS cd
              FROM airlock.calls c
             WHERE c.seq > horizon
               AND NOT EXISTS (SELECT 1 FROM airlock.sealed s WHERE s.call_id = c.id)
             ORDER BY c.seq LIMIT max_records) p;
    IF n = 0 THEN
        RETURN;
    END IF;
    cid := coalesce(head.id, 0) + 1;
    prev := coalesce(head.hash, repeat('0', 64));
    SELECT encode(sha256(convert_to(prev || string_agg(u.d || coalesce(u.cd, ''), '' ORDER BY u.o),
                                    'UTF8')), 'hex')
      INTO h FROM unnest(digests, cds) WITH ORDINALITY AS u(d, cd, o);
    INSERT INTO airlock.checkpoints (id, kind, prev_hash, hash, first_seq, last_seq, count)
    VALUES (cid, 'seal', prev, h, lo, hi, n);
    INSERT INTO airlock.sealed (checkpoint_id, position, call_id, tenant, digest, changes_digest)
    SELECT cid, (u.o - 1)::integer, u.i, u.t, u.d, u.cd
      FROM unnest(ids, tenants, digests, cds) WITH ORDINALITY AS u(i, t, d, cd, o);
    INSERT INTO airlock.tenant_checkpoints (checkpoint_id, tenant, prev_hash, hash, count)
    SELECT cid, g.tenant, g.prev,
           encode(sha256(convert_to(g.prev || g.entries, 'UTF8')), 'hex'), g.n
      FROM (SELECT s.tenant,
                   coalesce((SELECT tc.hash FROM airlock.tenant_checkpoints tc
                              WHERE tc.tenant = s.tenant ORDER BY tc.checkpoint_id DESC LIMIT 1),
                            (SELECT k.archived -> 'tenants' ->> s.tenant FROM airlock.checkpoints k
                              WHERE k.kind = 'archive' ORDER BY k.id DESC LIMIT 1),
                            repeat('0', 64)) AS prev,
                   string_agg(s.digest || coalesce(s.changes_digest, ''), '' ORDER BY s.position)
                       AS entries,
                   count(*)::integer AS n
              FROM airlock.sealed s
             WHERE s.checkpoint_id = cid AND s.tenant IS NOT NULL
             GROUP BY s.tenant) g;
    checkpoint_id := cid;
    records := n;
    RETURN NEXT;
END
$$;

-- One round of sealing that says when it could not run: blocked_by is the process holding
-- the sealer's lock (0 when it cannot be told), NULL when the round ran.  Advisory locks
-- are not permission-checked, so any session can hold this one and stop sealing; airlockd
-- raises an alarm when its rounds keep being blocked.  A full scan (airlockctl audit seal)
-- waits up to 5 s for the lock; a daemon's round tries once.
CREATE FUNCTION airlock.seal_round(full_scan boolean DEFAULT false)
RETURNS TABLE (checkpoint_id bigint, records integer, blocked_by integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, airlock, pg_temp AS $$
DECLARE
    lock_key bigint := hashtext('airlock.seal');
    tries integer := CASE WHEN full_scan THEN 100 ELSE 1 END;
BEGIN
    LOOP
        EXIT WHEN pg_try_advisory_xact_lock(lock_key);
        tries := tries - 1;
        IF tries <= 0 THEN
            checkpoint_id := 0;
            records := 0;
            SELECT coalesce(min(l.pid), 0) INTO blocked_by FROM pg_locks l
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
               AND ((l.classid::bigint << 32) | l.objid::bigint) = lock_key;
            RETURN NEXT;
            RETURN;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN QUERY SELECT s.checkpoint_id, s.records, NULL::integer FROM airlock.seal(full_scan) s;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 0::bigint, 0, NULL::integer;
    END IF;
END
$$;

-- Grants -------------------------------------------------------------------------------------

REVOKE ALL ON airlock.tokens, airlock.idempotency_keys, airlock.plans FROM airlock_gateway;
REVOKE UPDATE (calls_used, revoked_at) ON airlock.tokens FROM airlock_gateway;
REVOKE UPDATE (response) ON airlock.idempotency_keys FROM airlock_gateway;
REVOKE INSERT ON airlock.calls, airlock.changes, airlock.refusals FROM airlock_gateway;
REVOKE EXECUTE ON FUNCTION airlock.seal(boolean, integer) FROM airlock_gateway;

REVOKE EXECUTE ON FUNCTION airlock.is_this_transaction(xid), airlock.guard_token(),
    airlock.token_lookup(text),
    airlock.mint_token(uuid, text, text, text, text, json, jsonb, boolean, boolean, integer, integer),
    airlock.revoke_token(text), airlock.check_change_call(),
    airlock.claim_key(text, text, text, uuid, integer), airlock.sweep_key(text, text),
    airlock.sweep_keys(), airlock.key_lookup(text, text), airlock.plan_get(uuid, text),
    airlock.seal_round(boolean) FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE airlock.record_calls(json), airlock.record_preview(uuid, jsonb),
    airlock.record_refusals(json), airlock.store_key_response(text, text, text),
    airlock.create_plan(uuid, text, text, text, jsonb, jsonb) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION airlock.token_lookup(text),
    airlock.mint_token(uuid, text, text, text, text, json, jsonb, boolean, boolean, integer, integer),
    airlock.revoke_token(text), airlock.claim_key(text, text, text, uuid, integer),
    airlock.sweep_key(text, text), airlock.sweep_keys(), airlock.key_lookup(text, text),
    airlock.plan_get(uuid, text), airlock.seal_round(boolean) TO airlock_gateway;
GRANT EXECUTE ON PROCEDURE airlock.record_calls(json), airlock.record_preview(uuid, jsonb),
    airlock.record_refusals(json), airlock.store_key_response(text, text, text),
    airlock.create_plan(uuid, text, text, text, jsonb, jsonb) TO airlock_gateway;
