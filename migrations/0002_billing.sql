-- Demo application schema: a small billing system that a support agent works in.
-- Every table holds rows of many tenants: tenant is the tenant's role name, filled in from
-- current_user, and every primary key, unique constraint and foreign key includes it, since
-- constraints bypass row-level security. Nothing is deleted: deleted_at marks a soft delete.

CREATE SCHEMA billing;

CREATE TABLE billing.customers (
    tenant     name NOT NULL DEFAULT current_user,
    id         bigint GENERATED ALWAYS AS IDENTITY,
    email      text NOT NULL CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$' AND length(email) <= 254),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    company    text CHECK (length(company) <= 200),
    plan       text NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'starter', 'pro', 'enterprise')),
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, email)
);

CREATE TABLE billing.invoices (
    tenant      name NOT NULL DEFAULT current_user,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    customer_id bigint NOT NULL,
    number      text NOT NULL CHECK (length(number) BETWEEN 1 AND 40),
    status      text NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'open', 'paid', 'void', 'refunded')),
    currency    text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    amount      numeric(12,2) NOT NULL CHECK (amount >= 0),
    issued_at   timestamptz,
    due_at      timestamptz,
    paid_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, number),
    FOREIGN KEY (tenant, customer_id) REFERENCES billing.customers (tenant, id),
    CHECK (status = 'draft' OR issued_at IS NOT NULL),
    CHECK (status <> 'paid' OR paid_at IS NOT NULL)
);

CREATE INDEX invoices_customer_idx ON billing.invoices (tenant, customer_id);

CREATE TABLE billing.refunds (
    tenant     name NOT NULL DEFAULT current_user,
    id         bigint GENERATED ALWAYS AS IDENTITY,
    invoice_id bigint NOT NULL,
    amount     numeric(12,2) NOT NULL CHECK (amount > 0),
    reason     text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, invoice_id) REFERENCES billing.invoices (tenant, id)
);

CREATE INDEX refunds_invoice_idx ON billing.refunds (tenant, invoice_id);

CREATE TABLE billing.support_notes (
    tenant      name NOT NULL DEFAULT current_user,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    customer_id bigint NOT NULL,
    invoice_id  bigint,
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, customer_id) REFERENCES billing.customers (tenant, id),
    FOREIGN KEY (tenant, invoice_id) REFERENCES billing.invoices (tenant, id)
);

CREATE INDEX support_notes_customer_idx ON billing.support_notes (tenant, customer_id);

COMMENT ON SCHEMA billing IS 'Demo application: customers, invoices, refunds and support notes.';
COMMENT ON COLUMN billing.customers.tenant IS 'The owning tenant''s role name.';
COMMENT ON COLUMN billing.invoices.amount IS 'Total in currency units, two decimals.';
