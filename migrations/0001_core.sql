-- Core schema: the tenants and the tables registered as tenant tables.
-- airlockctl migrate creates the airlock schema and airlock.schema_migrations before this runs.

CREATE TABLE airlock.tenants (
    name       text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,40}$'),
    role       name NOT NULL UNIQUE,
    disabled   boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE airlock.tenants IS
    'One row per tenant; role is the tenant''s NOLOGIN role, the value of the tenant column in tenant tables.';
COMMENT ON COLUMN airlock.tenants.disabled IS
    'A disabled tenant''s calls are refused (403 tenant_disabled).';

CREATE TABLE airlock.tenant_tables (
    schema_name text NOT NULL,
    table_name  text NOT NULL,
    adopted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, table_name)
);

COMMENT ON TABLE airlock.tenant_tables IS
    'Tables given the tenant treatment by airlockctl table adopt (row-level security, _live view, grants).';
