-- Tamper evidence for the call record: a digest per record (and per captured change), the
-- sealer's checkpoints chained overall and per tenant, insert-only guards, and retention.
--
-- The canonical forms below are documented in docs/AUDITORS.md.  airlockctl audit verify
-- does not call the functions defined here (an owner could replace them): it sends the
-- same expressions itself, built from pg_catalog functions only.

-- seq orders records within a checkpoint; it is not commit order, so nothing is chained at
-- insert.  digest is set by the trigger below for every writer.
ALTER TABLE airlock.calls
    ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN digest text;
CREATE UNIQUE INDEX calls_seq_idx ON airlock.calls (seq);
ALTER TABLE airlock.changes ADD COLUMN digest text;

COMMENT ON COLUMN airlock.calls.seq IS
    'Insertion order (a sequence): the order of records within a checkpoint, not commit order.';
COMMENT ON COLUMN airlock.calls.digest IS
    'SHA-256 (hex) of airlock.call_canonical(row): set by a trigger on insert.';

-- The canonical text of a record: jsonb's text form of an object of its fields.  jsonb's
-- text is canonical: keys sorted (shorter first, then bytewise), duplicates gone, ", " and
-- ": " as separators, strings escaped as JSON (", \, control characters; other characters
-- as UTF-8).  Session settings cannot change it: the time is written in UTC by to_char and
-- duration_ms goes through numeric (float8 -> numeric keeps 15 significant digits whatever
-- extra_float_digits says).
CREATE FUNCTION airlock.call_canonical(c airlock.calls) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
        'id', c.id::text, 'seq', c.seq,
        'at', pg_catalog.to_char(c.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'tenant', c.tenant, 'token_id', c.token_id, 'task', c.task, 'method', c.method,
        'tool', c.tool, 'arguments', c.arguments, 'dry_run', c.dry_run,
        'idempotency_key', c.idempotency_key, 'plan_id', c.plan_id::text,
        'outcome', c.outcome, 'reason', c.reason, 'duration_ms', c.duration_ms::numeric,
        'result_digest', c.result_digest, 'client', c.client, 'egress', c.egress)::text
$$;

CREATE FUNCTION airlock.change_canonical(c airlock.changes) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
        'id', c.id, 'call_id', c.call_id::text, 'tenant', c.tenant,
        'table_name', c.table_name, 'key', c.key, 'op', c.op, 'before', c.before,
        'after', c.after,
        'at', pg_catalog.to_char(c.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text
$$;

CREATE FUNCTION airlock.set_digest() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_TABLE_NAME = 'calls' THEN
        NEW.digest := encode(sha256(convert_to(airlock.call_canonical(NEW), 'UTF8')), 'hex');
    ELSE
        NEW.digest := encode(sha256(convert_to(airlock.change_canonical(NEW), 'UTF8')), 'hex');
    END IF;
    RETURN NEW;
END
$$;

-- Records written before this migration get their digest now, before the guards exist.
UPDATE airlock.calls c
   SET digest = encode(sha256(convert_to(airlock.call_canonical(c), 'UTF8')), 'hex');
UPDATE airlock.changes c
   SET digest = encode(sha256(convert_to(airlock.change_canonical(c), 'UTF8')), 'hex');
ALTER TABLE airlock.calls ALTER COLUMN digest SET NOT NULL;
ALTER TABLE airlock.changes ALTER COLUMN digest SET NOT NULL;

CREATE TRIGGER airlock_digest BEFORE INSERT ON airlock.calls
    FOR EACH ROW EXECUTE FUNCTION airlock.set_digest();
CREATE TRIGGER airlock_digest BEFORE INSERT ON airlock.changes
    FOR EACH ROW EXECUTE FUNCTION airlock.set_digest();

-- Checkpoints.  kind 'seal': the records sealed in airlock.sealed, hash =
-- sha256(prev_hash || for each entry in position order: digest || changes_digest), all in
-- hex text.  kind 'archive': records removed by retention; hash = sha256(prev_hash ||
-- archived::text).  The first checkpoint's prev_hash is 64 zeros.
CREATE TABLE airlock.checkpoints (
    id         bigint PRIMARY KEY CHECK (id > 0),
    kind       text NOT NULL CHECK (kind IN ('seal', 'archive')),
    prev_hash  text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash       text NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$'),
    first_seq  bigint,
    last_seq   bigint,
    count      integer NOT NULL CHECK (count >= 0),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    archived   jsonb
);

COMMENT ON TABLE airlock.checkpoints IS
    'The audit chain: each checkpoint links committed records, in a recorded order, to the '
    'previous checkpoint''s hash.  Insert-only.';

-- One row per sealed record.  No foreign key to airlock.calls: a record removed behind
-- the gateway's back must leave its entry, for verify to name it.
CREATE TABLE airlock.sealed (
    checkpoint_id  bigint NOT NULL REFERENCES airlock.checkpoints (id),
    position       integer NOT NULL CHECK (position >= 0),
    call_id        uuid NOT NULL,
    tenant         text,
    digest         text NOT NULL,
    changes_digest text,
    PRIMARY KEY (checkpoint_id, position)
);
CREATE UNIQUE INDEX sealed_call_idx ON airlock.sealed (call_id);

COMMENT ON COLUMN airlock.sealed.changes_digest IS
    'sha256 of the concatenated digests (hex) of the call''s changes in id order; NULL when none.';

-- The per-tenant chains: for each checkpoint and each tenant with records in it, hash =
-- sha256(the tenant's previous hash || its entries, as above, in position order).
CREATE TABLE airlock.tenant_checkpoints (
    checkpoint_id bigint NOT NULL REFERENCES airlock.checkpoints (id),
    tenant        text NOT NULL,
    prev_hash     text NOT NULL,
    hash          text NOT NULL,
    count         integer NOT NULL,
    PRIMARY KEY (tenant, checkpoint_id)
);

-- Insert-only: UPDATE, DELETE and TRUNCATE raise for everyone, the owner included, except
-- DELETE by airlock.archive() (the retention path), which turns the transaction-local
-- setting airlock.archiving on.  The setting is no secret: for the gateway, the missing
-- privileges are the wall; the triggers keep the owner from removing records by mistake,
-- and an owner who disables them on purpose is what verify is for.
CREATE FUNCTION airlock.refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('airlock.archiving', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'airlock.% is insert-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['calls', 'changes', 'refusals', 'checkpoints', 'sealed',
                             'tenant_checkpoints'] LOOP
        EXECUTE format('CREATE TRIGGER airlock_insert_only BEFORE UPDATE OR DELETE ON airlock.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION airlock.refuse_change()', t);
        EXECUTE format('CREATE TRIGGER airlock_no_truncate BEFORE TRUNCATE ON airlock.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION airlock.refuse_change()', t);
        EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON airlock.%I FROM PUBLIC, airlock_gateway', t);
    END LOOP;
END
$$;

-- The sealer.  One at a time across instances (a transaction-level advisory lock; a
-- second sealer returns at once).  It takes committed records not in airlock.sealed, in
-- seq order, and links them into one checkpoint.  A record whose transaction commits after
-- this snapshot is not seen now and lands in the next checkpoint: sealing never depends on
-- commit order, only on what is committed, and airlock.sealed's unique call_id keeps a
-- record from being sealed twice.
--
-- Which records to look at: those past the horizon, the highest seq sealed by a checkpoint
-- made more than 10 minutes ago (no transaction of Airlock's lives that long; the tools'
-- statement and lock timeouts are seconds), so each run costs what is recent, not the
-- whole table.  full_scan looks at every record (airlockctl audit seal does).
--
-- SECURITY DEFINER, owned by the operator, EXECUTE granted to the gateway: airlockd seals
-- without holding any privilege on the checkpoint tables, so a compromised gateway cannot
-- write a checkpoint of its own making; it can only make this procedure run.
CREATE FUNCTION airlock.seal(full_scan boolean DEFAULT false, max_records integer DEFAULT 50000)
RETURNS TABLE (checkpoint_id bigint, records integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    head airlock.checkpoints%ROWTYPE;
    horizon bigint := 0;
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
        SELECT coalesce(k.last_seq, 0) INTO horizon FROM airlock.checkpoints k
         WHERE k.kind = 'seal' AND k.created_at < now() - interval '10 minutes'
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
    -- Each tenant's chain continues from its latest checkpoint, else from what retention
    -- recorded for it, else from zeros.
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

REVOKE EXECUTE ON FUNCTION airlock.seal(boolean, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION airlock.seal(boolean, integer) TO airlock_gateway;

-- Retention: removes the checkpoints up to and including through, their records and the
-- records' changes, and appends an 'archive' checkpoint holding the removed chain's last
-- hash (overall and per tenant), so the chain that remains still links.  The caller
-- (airlockctl audit archive) has exported exactly those records first: records must match
-- the number of entries removed, and file_sha256 (the export's SHA-256) is kept in the
-- checkpoint.  Runs as the operator; nobody else may execute it.
CREATE FUNCTION airlock.archive(through bigint, records bigint, file_sha256 text)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    head airlock.checkpoints%ROWTYPE;
    last airlock.checkpoints%ROWTYPE;
    old jsonb;
    tenants jsonb;
    n bigint;
    info jsonb;
    cid bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('airlock.seal'));
    SELECT * INTO head FROM airlock.checkpoints ORDER BY id DESC LIMIT 1;
    SELECT * INTO last FROM airlock.checkpoints WHERE id = through;
    IF NOT FOUND OR last.kind <> 'seal' THEN
        RAISE EXCEPTION 'no seal checkpoint %', through;
    END IF;
    SELECT count(*) INTO n FROM airlock.sealed WHERE checkpoint_id <= through;
    IF n <> records THEN
        RAISE EXCEPTION 'archive of % records, but % are sealed up to checkpoint %',
            records, n, through;
    END IF;
    SELECT k.archived INTO old FROM airlock.checkpoints k
     WHERE k.kind = 'archive' ORDER BY k.id DESC LIMIT 1;
    SELECT coalesce(old -> 'tenants', '{}'::jsonb) || coalesce(jsonb_object_agg(t.tenant, t.hash), '{}')
      INTO tenants
      FROM (SELECT DISTINCT ON (tc.tenant) tc.tenant, tc.hash FROM airlock.tenant_checkpoints tc
             WHERE tc.checkpoint_id <= through ORDER BY tc.tenant, tc.checkpoint_id DESC) t;
    PERFORM set_config('airlock.archiving', 'on', true);
    DELETE FROM airlock.changes ch USING airlock.sealed s
     WHERE s.checkpoint_id <= through AND ch.call_id = s.call_id;
    DELETE FROM airlock.calls c USING airlock.sealed s
     WHERE s.checkpoint_id <= through AND c.id = s.call_id;
    DELETE FROM airlock.tenant_checkpoints WHERE checkpoint_id <= through;
    DELETE FROM airlock.sealed WHERE checkpoint_id <= through;
    DELETE FROM airlock.checkpoints WHERE id <= through;
    PERFORM set_config('airlock.archiving', 'off', true);
    info := jsonb_build_object('through', through, 'hash', last.hash, 'tenants', tenants,
        'records', records, 'file_sha256', file_sha256,
        'sealed_before', to_char(last.created_at AT TIME ZONE 'UTC',
                                 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));
    cid := head.id + 1;
    INSERT INTO airlock.checkpoints (id, kind, prev_hash, hash, count, archived)
    VALUES (cid, 'archive', head.hash,
            encode(sha256(convert_to(head.hash || info::text, 'UTF8')), 'hex'), 0, info);
    RETURN cid;
END
$$;

REVOKE EXECUTE ON FUNCTION airlock.archive(bigint, bigint, text) FROM PUBLIC;
