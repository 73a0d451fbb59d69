-- Reversible writes: captured changes, idempotency keys, plans, and the change-capture
-- trigger added to the standard treatment of tenant tables.

-- A write's call record is inserted at the end of its transaction, after its effect, so that
-- it can carry the outcome; its changes are captured before that.  The key from changes to
-- calls is therefore checked at commit: a change whose call id matches no record written in
-- the same transaction (a forged id) makes the commit fail.
CREATE TABLE airlock.changes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id    uuid REFERENCES airlock.calls (id) DEFERRABLE INITIALLY DEFERRED,
    tenant     text,
    table_name text NOT NULL,
    key        jsonb NOT NULL,
    op         text NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    before     jsonb,
    after      jsonb,
    at         timestamptz NOT NULL DEFAULT clock_timestamp()
);

COMMENT ON TABLE airlock.changes IS
    'One row per row changed in a tenant table: before and after images, by call.';
COMMENT ON COLUMN airlock.changes.call_id IS
    'The call that made the change (from the transaction-local airlock.call_id); NULL for '
    'changes made outside a call, such as an operator''s repair.';

CREATE INDEX changes_call_idx ON airlock.changes (call_id, id);
CREATE INDEX changes_row_idx ON airlock.changes (table_name, key);

CREATE TABLE airlock.idempotency_keys (
    tenant      text NOT NULL,
    key         text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint text NOT NULL,
    call_id     uuid NOT NULL,
    response    jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, key)
);

COMMENT ON TABLE airlock.idempotency_keys IS
    'Keys of committed writes, per tenant: claimed with a plain INSERT in the write''s own '
    'transaction, so key and effect commit together or not at all.';

CREATE INDEX idempotency_keys_expires_idx ON airlock.idempotency_keys (expires_at);

CREATE TABLE airlock.plans (
    id          uuid PRIMARY KEY,       -- the dry-run's call id
    tenant      text NOT NULL,
    tool        text NOT NULL,
    fingerprint text NOT NULL,
    updates     jsonb NOT NULL,         -- [{table, key, before_digest}], sorted
    inserts     jsonb NOT NULL,         -- {table: rows inserted}
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

COMMENT ON TABLE airlock.plans IS
    'What a dry-run of a write would do: a commit with this plan_id must do exactly that.';

-- Images as clients see them: numbers become strings (numeric and bigint values would lose
-- digits in a double), everything else as stored.
CREATE FUNCTION airlock.image_json(img jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN img IS NULL THEN NULL ELSE coalesce((
        SELECT jsonb_object_agg(k, CASE jsonb_typeof(v) WHEN 'number' THEN to_jsonb(v #>> '{}')
                                       ELSE v END)
        FROM jsonb_each(img) AS e(k, v)), '{}'::jsonb) END
$$;

-- The digest a plan binds a row's before-image with: SHA-256 of jsonb's own text form.
CREATE FUNCTION airlock.image_digest(img jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT encode(sha256(convert_to(coalesce(img::text, ''), 'UTF8')), 'hex')
$$;

-- The change-capture trigger.  SECURITY DEFINER (the operator) so that tenant roles need no
-- privilege on airlock.changes; search_path pinned.  The call id is read from the
-- transaction-local setting and may be absent (NULLIF of an empty value).  TG_ARGV holds the
-- primary key's columns.
CREATE FUNCTION airlock.capture_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    img_old jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END;
    img_new jsonb := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END;
    img jsonb := coalesce(img_new, img_old);
    k jsonb := '{}'::jsonb;
    col text;
BEGIN
    FOREACH col IN ARRAY TG_ARGV LOOP
        k := k || jsonb_build_object(col, img -> col);
    END LOOP;
    INSERT INTO airlock.changes (call_id, tenant, table_name, key, op, before, after)
    VALUES (NULLIF(current_setting('airlock.call_id', true), '')::uuid,
            (SELECT t.name FROM airlock.tenants t WHERE t.role = (img ->> 'tenant')::name),
            quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME),
            k, lower(TG_OP), img_old, img_new);
    RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION airlock.capture_change() FROM PUBLIC;

-- Installs (again) the capture trigger on one table, keyed by its primary key.
CREATE FUNCTION airlock.capture_changes(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cols text;
BEGIN
    SELECT string_agg(quote_literal(a.attname), ', ' ORDER BY array_position(i.indkey, a.attnum))
      INTO cols
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = tbl AND i.indisprimary;
    IF cols IS NULL THEN
        RAISE EXCEPTION '% has no primary key', tbl;
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS airlock_capture ON %s', tbl);
    EXECUTE format('CREATE TRIGGER airlock_capture AFTER INSERT OR UPDATE OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION airlock.capture_change(%s)', tbl, cols);
END
$$;

-- The standard treatment grows by the trigger: adopt_table keeps its name and signature
-- (airlockctl table adopt calls it) and now runs the earlier treatment, then this one.
ALTER FUNCTION airlock.adopt_table(regclass) RENAME TO adopt_table_0003;

CREATE FUNCTION airlock.adopt_table(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM airlock.adopt_table_0003(tbl);
    PERFORM airlock.capture_changes(tbl);
END
$$;

REVOKE EXECUTE ON FUNCTION airlock.adopt_table(regclass), airlock.adopt_table_0003(regclass),
    airlock.capture_changes(regclass) FROM PUBLIC;

-- Re-apply the treatment to every adopted table.
SELECT airlock.adopt_table(format('%I.%I', schema_name, table_name)::regclass)
  FROM airlock.tenant_tables;

-- Revert: puts one row back to an image, as the calling tenant (SECURITY INVOKER: row-level
-- security and the tenant's privileges apply), after checking that the row is still as the
-- reverted call left it (expected, unless force).  A row changed since raises SQLSTATE
-- AL409 naming it.  Columns of the primary key and the tenant are never written.
CREATE FUNCTION airlock.restore_row(tbl regclass, k jsonb, expected jsonb, image jsonb,
    force boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cond text;
    sets text;
    cur jsonb;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM airlock.tenant_tables t
                    WHERE format('%I.%I', t.schema_name, t.table_name)::regclass = tbl) THEN
        RAISE EXCEPTION '% is not a tenant table', tbl;
    END IF;
    SELECT string_agg(format('t.%I = (jsonb_populate_record(NULL::%s, $1)).%I', key, tbl, key), ' AND ')
      INTO cond FROM jsonb_object_keys(k) AS key;
    SELECT string_agg(format('%I = r.%I', a.attname, a.attname), ', ')
      INTO sets
      FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
       AND a.attidentity = '' AND a.attname <> 'tenant' AND NOT k ? a.attname;
    EXECUTE format('SELECT to_jsonb(t) FROM %s t WHERE %s FOR UPDATE', tbl, cond) INTO cur USING k;
    IF cur IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'AL409', MESSAGE = format('%s %s no longer exists', tbl, k);
    END IF;
    IF NOT force AND cur IS DISTINCT FROM expected THEN
        RAISE EXCEPTION USING ERRCODE = 'AL409', MESSAGE = format('%s %s changed since', tbl, k),
            DETAIL = k::text, TABLE = tbl::text;
    END IF;
    EXECUTE format('UPDATE %s t SET %s FROM jsonb_populate_record(NULL::%s, $2) r WHERE %s',
                   tbl, sets, tbl, cond) USING k, image;
END
$$;

GRANT EXECUTE ON FUNCTION airlock.restore_row(regclass, jsonb, jsonb, jsonb, boolean)
    TO airlock_tenants;
GRANT SELECT ON airlock.tenant_tables TO airlock_tenants;
GRANT USAGE ON SCHEMA airlock TO airlock_tenants;

-- The gateway: captured changes to read, keys to claim, answer and sweep, plans to keep,
-- and the call record, which it also reads for airlock/calls.get and revert.
GRANT SELECT ON airlock.changes TO airlock_gateway;
GRANT SELECT, INSERT, DELETE ON airlock.idempotency_keys TO airlock_gateway;
GRANT UPDATE (response) ON airlock.idempotency_keys TO airlock_gateway;
GRANT SELECT, INSERT ON airlock.plans TO airlock_gateway;
GRANT SELECT ON airlock.calls TO airlock_gateway;
GRANT INSERT ON airlock.changes TO airlock_gateway;
GRANT EXECUTE ON FUNCTION airlock.image_json(jsonb), airlock.image_digest(jsonb) TO airlock_gateway;
