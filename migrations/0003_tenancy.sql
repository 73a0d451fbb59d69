-- Tenancy: the tenant roles, the functions behind airlockctl tenant and table adopt, the
-- standard treatment of the demo tables and what the gateway's login role may touch.
--
-- Roles.  This migration runs as the operator role (not a superuser; CREATEROLE; owns the
-- database and its schemas) and expects the gateway's login role to exist already under the
-- fixed name airlock_gateway, as airlockctl dev-db creates it: LOGIN NOINHERIT, no
-- SUPERUSER, BYPASSRLS or CREATEROLE, owning nothing.  Other deployments create that role
-- before migrating; the first block below refuses to go on without it, or when it could
-- read past row-level security.
--
-- Roles are cluster-wide, so the group role airlock_tenants is created only when missing,
-- and tenant roles (tenant_<name>) are shared by every database of the cluster: run one
-- Airlock database per cluster, or keep tenant names distinct across them.
--
-- Who holds what:
--   airlock_tenants  NOLOGIN group; holds the table privileges (SELECT, INSERT, UPDATE on
--                    each tenant table, SELECT on its _live view; never DELETE or TRUNCATE).
--   tenant_<name>    NOLOGIN, INHERIT, a member of airlock_tenants; the value of the tenant
--                    column of its rows, matched by the policies against current_user.
--   airlock_gateway  a member of every tenant role but NOINHERIT: it has their privileges
--                    only after SET ROLE (set transaction-locally per call), and none of its
--                    own on tenant tables, so without a tenant role it reads nothing.
--   the operator     a member of every tenant role too, so that it can seed or repair data
--                    with SET ROLE; row-level security is FORCE'd, so as the tables' owner it
--                    sees no rows without that.
--
-- PostgreSQL 15: CREATEROLE lets the operator create roles and grant membership in any role
-- that is not a superuser, itself included, so no ADMIN OPTION is involved.  (From
-- PostgreSQL 16 a CREATEROLE role needs ADMIN OPTION on the role it grants, which it holds
-- for the roles it created itself; airlock_tenants and the tenant roles are created here.)

DO $$
DECLARE
    gw pg_roles%ROWTYPE;
BEGIN
    SELECT * INTO gw FROM pg_roles WHERE rolname = 'airlock_gateway';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role airlock_gateway does not exist'
            USING HINT = 'Create the gateway''s login role (LOGIN NOINHERIT NOBYPASSRLS) '
                         'before migrating; airlockctl dev-db does so.';
    END IF;
    IF gw.rolsuper OR gw.rolbypassrls OR gw.rolinherit OR gw.rolcreaterole THEN
        RAISE EXCEPTION 'role airlock_gateway must be NOSUPERUSER NOBYPASSRLS NOINHERIT '
                        'NOCREATEROLE: it would read past row-level security';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'airlock_tenants') THEN
        CREATE ROLE airlock_tenants NOLOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE
            NOREPLICATION NOBYPASSRLS;
    END IF;
END
$$;

COMMENT ON ROLE airlock_tenants IS
    'Airlock: the group every tenant role belongs to; holds the grants on tenant tables.';

GRANT USAGE ON SCHEMA billing TO airlock_tenants;

-- tenant_add: creates the tenant's role and its row.  Runs as the caller (the operator), so
-- it needs CREATEROLE; it is not SECURITY DEFINER, and nobody else may execute it.
CREATE FUNCTION airlock.tenant_add(tenant_name text) RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r name;
BEGIN
    IF tenant_name IS NULL OR tenant_name !~ '^[a-z][a-z0-9_]{0,40}$' THEN
        RAISE EXCEPTION 'invalid tenant name "%"', coalesce(tenant_name, '')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A tenant name is a lowercase letter, then up to 40 lowercase '
                         'letters, digits or underscores.';
    END IF;
    r := ('tenant_' || tenant_name)::name;
    IF EXISTS (SELECT 1 FROM airlock.tenants t WHERE t.name = tenant_name) THEN
        RAISE EXCEPTION 'tenant % already exists', tenant_name
            USING ERRCODE = 'duplicate_object';
    END IF;
    -- A role of that name that is not ours (or a tenant of another database in this
    -- cluster) must not silently become this tenant.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
        RAISE EXCEPTION 'role % already exists; refusing to reuse it for tenant %', r,
            tenant_name
            USING ERRCODE = 'duplicate_object';
    END IF;
    EXECUTE format('CREATE ROLE %I NOLOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE '
                   'NOREPLICATION NOBYPASSRLS', r);
    EXECUTE format('COMMENT ON ROLE %I IS %L', r, 'Airlock tenant ' || tenant_name);
    EXECUTE format('GRANT airlock_tenants TO %I', r);
    EXECUTE format('GRANT %I TO airlock_gateway', r);
    EXECUTE format('GRANT %I TO %I', r, current_user);
    INSERT INTO airlock.tenants (name, role) VALUES (tenant_name, r);
    RETURN r;
END
$$;

COMMENT ON FUNCTION airlock.tenant_add(text) IS
    'Creates the NOLOGIN role tenant_<name> and the tenant''s row; refuses a role that exists.';

-- tenant_set_disabled: the flag the gateway checks before every call (403
-- tenant_disabled).  The role and its memberships stay, so enabling again restores the
-- tenant as it was; the gateway's own check is what refuses the calls.
CREATE FUNCTION airlock.tenant_set_disabled(tenant_name text, is_disabled boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE airlock.tenants t SET disabled = is_disabled WHERE t.name = tenant_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no tenant named "%"', coalesce(tenant_name, '')
            USING ERRCODE = 'undefined_object';
    END IF;
END
$$;

CREATE FUNCTION airlock.tenant_disable(tenant_name text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT airlock.tenant_set_disabled(tenant_name, true) $$;

CREATE FUNCTION airlock.tenant_enable(tenant_name text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT airlock.tenant_set_disabled(tenant_name, false) $$;

-- adopt_table: the standard treatment of a tenant table, re-runnable.  Later migrations
-- extend it (CREATE OR REPLACE, same signature) and re-apply it to every row of
-- airlock.tenant_tables, so everything a tenant table gets is done here, in one place.
--
-- It refuses, naming the fault, a table that:
--   - is not an ordinary or partitioned table, or lives in a system or the airlock schema;
--   - has no column tenant of type name NOT NULL;
--   - has no primary key, or no deleted_at timestamptz column (nothing is deleted);
--   - has a primary key, unique constraint, unique index or exclusion constraint without
--     the tenant column among its key columns: constraints bypass row-level security, so
--     such a constraint's error would tell one tenant whether another holds a value;
--   - has a foreign key, either of its own or from another table referencing it, that does
--     not pair the two tables' tenant columns: it could point at another tenant's row;
--   - has a permissive policy other than tenant_isolation: permissive policies are OR'ed,
--     so any other would widen what a tenant sees (restrictive ones are left alone);
--   - would need a view name longer than PostgreSQL's 63 bytes.
-- Then it enables and FORCEs row-level security (the owner too is subject to it), sets the
-- tenant column's default to current_user, (re)creates the policy tenant_isolation and the
-- view <table>_live (security_invoker, so row-level security applies to whoever reads it),
-- grants SELECT, INSERT, UPDATE on the table and SELECT on the view to airlock_tenants,
-- takes DELETE and TRUNCATE away, and records the table in airlock.tenant_tables.
CREATE FUNCTION airlock.adopt_table(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel     record;
    tatt    smallint;
    fault   record;
    viewname text;
BEGIN
    SELECT c.oid, c.relname, c.relkind, n.nspname
      INTO rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such table' USING ERRCODE = 'undefined_table';
    END IF;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '%.% is not a table', rel.nspname, rel.relname
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF rel.nspname IN ('airlock', 'pg_catalog', 'information_schema')
       OR rel.nspname LIKE 'pg\_%' THEN
        RAISE EXCEPTION '%.% is in the % schema, which holds no tenant tables',
            rel.nspname, rel.relname, rel.nspname
            USING ERRCODE = 'invalid_table_definition';
    END IF;

    SELECT a.attnum INTO tatt
      FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = 'tenant' AND NOT a.attisdropped
       AND a.atttypid = 'name'::regtype AND a.attnotnull;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%.% has no column tenant of type name NOT NULL', rel.nspname,
            rel.relname
            USING ERRCODE = 'invalid_table_definition',
                  HINT = 'Add tenant name NOT NULL DEFAULT current_user and put it in every '
                         'key.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                    WHERE a.attrelid = tbl AND a.attname = 'deleted_at' AND NOT a.attisdropped
                      AND a.atttypid = 'timestamptz'::regtype AND NOT a.attnotnull) THEN
        RAISE EXCEPTION '%.% has no nullable column deleted_at of type timestamptz',
            rel.nspname, rel.relname
            USING ERRCODE = 'invalid_table_definition',
                  HINT = 'Tenant tables are never deleted from: a soft delete sets deleted_at.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = tbl AND i.indisprimary) THEN
        RAISE EXCEPTION '%.% has no primary key', rel.nspname, rel.relname
            USING ERRCODE = 'invalid_table_definition';
    END IF;

    -- Unique indexes: primary keys, unique constraints and bare unique indexes alike.
    -- Only key columns count (the first indnkeyatts of indkey; INCLUDE columns do not).
    FOR fault IN
        SELECT coalesce(con.conname, ic.relname) AS conname,
               CASE WHEN i.indisprimary THEN 'primary key'
                    WHEN con.oid IS NOT NULL THEN 'unique constraint'
                    ELSE 'unique index' END AS kind
          FROM pg_index i
          JOIN pg_class ic ON ic.oid = i.indexrelid
          LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid
                                     AND con.conrelid = i.indrelid
                                     AND con.contype IN ('p', 'u')
         WHERE i.indrelid = tbl AND i.indisunique
           AND NOT EXISTS (SELECT 1 FROM generate_series(0, i.indnkeyatts - 1) k
                            WHERE i.indkey[k] = tatt)
         ORDER BY 1
    LOOP
        RAISE EXCEPTION '%.%: % % leaves out the tenant column', rel.nspname, rel.relname,
            fault.kind, fault.conname
            USING ERRCODE = 'invalid_table_definition',
                  HINT = 'Constraints bypass row-level security: make it (tenant, ...).';
    END LOOP;

    FOR fault IN
        SELECT con.conname
          FROM pg_constraint con
         WHERE con.conrelid = tbl AND con.contype = 'x' AND NOT (tatt = ANY (con.conkey))
         ORDER BY 1
    LOOP
        RAISE EXCEPTION '%.%: exclusion constraint % leaves out the tenant column',
            rel.nspname, rel.relname, fault.conname
            USING ERRCODE = 'invalid_table_definition';
    END LOOP;

    -- Foreign keys both ways: each must pair the referencing table's tenant column with the
    -- referenced table's, in the same position.
    FOR fault IN
        SELECT con.conname, con.conrelid::regclass AS src, con.confrelid::regclass AS dst
          FROM pg_constraint con
         WHERE con.contype = 'f' AND (con.conrelid = tbl OR con.confrelid = tbl)
           AND NOT EXISTS (
               SELECT 1
                 FROM generate_subscripts(con.conkey, 1) k
                 JOIN pg_attribute sa ON sa.attrelid = con.conrelid
                                     AND sa.attnum = con.conkey[k]
                 JOIN pg_attribute da ON da.attrelid = con.confrelid
                                     AND da.attnum = con.confkey[k]
                WHERE sa.attname = 'tenant' AND da.attname = 'tenant')
         ORDER BY 1
    LOOP
        RAISE EXCEPTION '%.%: foreign key % (% references %) leaves out the tenant column',
            rel.nspname, rel.relname, fault.conname, fault.src, fault.dst
            USING ERRCODE = 'invalid_table_definition',
                  HINT = 'Make it FOREIGN KEY (tenant, ...) REFERENCES t (tenant, ...), so no '
                         'row can point at another tenant''s.';
    END LOOP;

    FOR fault IN
        SELECT p.polname
          FROM pg_policy p
         WHERE p.polrelid = tbl AND p.polpermissive AND p.polname <> 'tenant_isolation'
         ORDER BY 1
    LOOP
        RAISE EXCEPTION '%.%: permissive policy % would widen what a tenant sees',
            rel.nspname, rel.relname, fault.polname
            USING ERRCODE = 'invalid_table_definition',
                  HINT = 'Drop it, or make it AS RESTRICTIVE.';
    END LOOP;

    viewname := rel.relname || '_live';
    IF octet_length(viewname) > 63 THEN
        RAISE EXCEPTION '%.%: the view name % would be longer than 63 bytes', rel.nspname,
            rel.relname, viewname
            USING ERRCODE = 'name_too_long';
    END IF;

    EXECUTE format('ALTER TABLE %I.%I ALTER COLUMN tenant SET DEFAULT current_user',
                   rel.nspname, rel.relname);
    EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', rel.nspname, rel.relname);
    EXECUTE format('ALTER TABLE %I.%I FORCE ROW LEVEL SECURITY', rel.nspname, rel.relname);
    -- Isolation only: a policy that hid soft-deleted rows would make PostgreSQL refuse the
    -- soft delete itself (updated rows are checked against the SELECT policies) and its
    -- revert.  The _live view is what leaves them out.
    EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON %I.%I', rel.nspname,
                   rel.relname);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I.%I AS PERMISSIVE FOR ALL TO PUBLIC '
                   'USING (tenant = current_user) WITH CHECK (tenant = current_user)',
                   rel.nspname, rel.relname);

    -- CREATE OR REPLACE keeps whatever depends on the view; it accepts columns added to the
    -- table since (SELECT * is expanded when the view is made, so re-adopting picks them up).
    EXECUTE format('CREATE OR REPLACE VIEW %I.%I WITH (security_invoker = true) AS '
                   'SELECT * FROM %I.%I WHERE deleted_at IS NULL',
                   rel.nspname, viewname, rel.nspname, rel.relname);
    EXECUTE format('ALTER VIEW %I.%I SET (security_invoker = true)', rel.nspname, viewname);
    EXECUTE format('COMMENT ON VIEW %I.%I IS %L', rel.nspname, viewname,
                   format('Rows of %s.%s not soft-deleted, under the reader''s row-level '
                          'security (made by airlockctl table adopt).', rel.nspname,
                          rel.relname));

    EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC', rel.nspname, rel.relname);
    EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC', rel.nspname, viewname);
    EXECUTE format('REVOKE DELETE, TRUNCATE ON %I.%I FROM airlock_tenants', rel.nspname,
                   rel.relname);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I.%I TO airlock_tenants', rel.nspname,
                   rel.relname);
    EXECUTE format('GRANT SELECT ON %I.%I TO airlock_tenants', rel.nspname, viewname);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO airlock_tenants', rel.nspname);

    INSERT INTO airlock.tenant_tables (schema_name, table_name)
    VALUES (rel.nspname, rel.relname)
    ON CONFLICT (schema_name, table_name) DO NOTHING;
END
$$;

COMMENT ON FUNCTION airlock.adopt_table(regclass) IS
    'The standard treatment of a tenant table (row-level security, _live view, grants '
    'without DELETE); re-runnable; refuses keys that leave out the tenant column.';

-- Only the operator (the owner) runs these, through airlockctl.
REVOKE EXECUTE ON FUNCTION airlock.tenant_add(text), airlock.tenant_set_disabled(text, boolean),
    airlock.tenant_disable(text), airlock.tenant_enable(text), airlock.adopt_table(regclass)
    FROM PUBLIC;

SELECT airlock.adopt_table('billing.customers');
SELECT airlock.adopt_table('billing.invoices');
SELECT airlock.adopt_table('billing.refunds');
SELECT airlock.adopt_table('billing.support_notes');

-- The gateway: it finds tenants and tenant tables by itself, and reaches the billing
-- schema's objects (their privileges come from the tenant role it sets per call).
GRANT USAGE ON SCHEMA airlock, billing TO airlock_gateway;
GRANT SELECT ON airlock.tenants, airlock.tenant_tables TO airlock_gateway;

-- The tool catalog check makes a temporary view inside a transaction it rolls back; dev-db
-- takes TEMPORARY from PUBLIC, so the gateway gets it by name.
DO $$
BEGIN
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO airlock_gateway', current_database());
END
$$;
