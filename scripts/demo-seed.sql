-- Demo data for two tenants, acme and globex, in the billing schema.
--
-- Run by psql as the operator, after the migrations and after
--     airlockctl tenant add acme
--     airlockctl tenant add globex
-- with
--     psql -X -v ON_ERROR_STOP=1 "$(airlockctl dev-db url)" -f scripts/demo-seed.sql
--
-- Each tenant's rows are inserted under SET ROLE tenant_<name>, so the tenant column is
-- filled in by its default (current_user) and the policies check every row, exactly as for a
-- call.  The operator is a member of every tenant role for this; as the tables' owner it
-- sees no rows without SET ROLE, since row-level security is FORCE'd.
--
-- Re-running is harmless: a tenant that already has customers is skipped (with a notice),
-- and everything happens in one transaction.
--
-- Ids.  The identity sequences belong to the tables, which hold every tenant's rows, so ids
-- are shared across tenants.  On a fresh database seeded by this file alone:
--     customers      acme 1..5     globex 6..9
--     invoices       acme 1..8     globex 9..14
--     refunds        acme 1        globex 2
--     support_notes  acme 1..3     globex 4..6
-- acme's customer 1 (alice@northwind.example) and globex's customer 6 share an email: unique
-- constraints are per tenant.  Soft-deleted: acme invoice ACME-0008 and note 3, globex
-- invoice GLX-1006 and note 6.  Rows refer to each other by email and invoice number, not by
-- id, so the file works wherever the sequences stand; only the ids above then shift.

BEGIN;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['acme', 'globex'] LOOP
        IF NOT EXISTS (SELECT 1 FROM airlock.tenants WHERE name = t) THEN
            RAISE EXCEPTION 'tenant % does not exist', t
                USING HINT = format('Run airlockctl tenant add %s first.', t);
        END IF;
    END LOOP;
END
$$;

SET ROLE tenant_acme;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM billing.customers) THEN
        RAISE NOTICE 'tenant acme already has customers; skipped';
        RETURN;
    END IF;

    INSERT INTO billing.customers (email, name, company, plan, created_at) VALUES
        ('alice@northwind.example', 'Alice Nguyen', 'Northwind Traders', 'pro',
         '2025-09-02 09:14:00+00'),
        ('bob.martins@contoso.example', 'Bob Martins', 'Contoso Ltd', 'starter',
         '2025-10-11 15:40:00+00'),
        ('carol@fabrikam.example', 'Carol Diaz', 'Fabrikam Inc', 'enterprise',
         '2025-11-20 08:05:00+00'),
        ('dan.okafor@tailspin.example', 'Dan Okafor', 'Tailspin Toys', 'free',
         '2026-01-07 12:30:00+00'),
        ('erin@wingtip.example', 'Erin Walsh', 'Wingtip Supplies', 'starter',
         '2026-02-18 17:22:00+00');

    INSERT INTO billing.invoices
        (customer_id, number, status, currency, amount, issued_at, due_at, paid_at, deleted_at)
    SELECT c.id, v.number, v.status, v.currency, v.amount, v.issued_at, v.due_at, v.paid_at,
           v.deleted_at
      FROM (VALUES
        ('alice@northwind.example', 'ACME-0001', 'paid', 'USD', 1200.00,
         timestamptz '2026-01-01 00:00+00', timestamptz '2026-01-31 00:00+00',
         timestamptz '2026-01-12 10:03+00', NULL::timestamptz),
        ('alice@northwind.example', 'ACME-0002', 'open', 'USD', 1200.00,
         '2026-02-01 00:00+00', '2026-03-03 00:00+00', NULL, NULL),
        ('alice@northwind.example', 'ACME-0003', 'refunded', 'USD', 349.50,
         '2026-02-10 00:00+00', '2026-03-12 00:00+00', '2026-02-14 16:45+00', NULL),
        ('bob.martins@contoso.example', 'ACME-0004', 'paid', 'USD', 89.00,
         '2026-01-15 00:00+00', '2026-02-14 00:00+00', '2026-01-20 09:00+00', NULL),
        ('bob.martins@contoso.example', 'ACME-0005', 'void', 'USD', 89.00,
         '2026-02-15 00:00+00', '2026-03-17 00:00+00', NULL, NULL),
        ('carol@fabrikam.example', 'ACME-0006', 'open', 'EUR', 18750.00,
         '2026-03-01 00:00+00', '2026-04-30 00:00+00', NULL, NULL),
        ('erin@wingtip.example', 'ACME-0007', 'draft', 'USD', 420.00,
         NULL, NULL, NULL, NULL),
        ('dan.okafor@tailspin.example', 'ACME-0008', 'open', 'USD', 15.99,
         '2026-02-20 00:00+00', '2026-03-22 00:00+00', NULL, '2026-02-21 11:00+00')
      ) AS v (email, number, status, currency, amount, issued_at, due_at, paid_at, deleted_at)
      JOIN billing.customers c ON c.email = v.email
     ORDER BY v.number;

    INSERT INTO billing.refunds (invoice_id, amount, reason)
    SELECT i.id, 349.50, 'Duplicate charge for the February add-on; refunded in full.'
      FROM billing.invoices i WHERE i.number = 'ACME-0003';

    INSERT INTO billing.support_notes (customer_id, invoice_id, body, deleted_at)
    SELECT c.id, i.id, v.body, v.deleted_at
      FROM (VALUES
        (1, 'alice@northwind.example', 'ACME-0003',
         'Customer reports being charged twice for the analytics add-on. Confirmed; refund issued.',
         NULL::timestamptz),
        (2, 'carol@fabrikam.example', 'ACME-0006',
         'Procurement needs the invoice in EUR with their PO number 4500-7781 on it.', NULL),
        (3, 'dan.okafor@tailspin.example', NULL,
         'Asked to close the account; note written on the wrong customer, withdrawn.',
         '2026-02-21 11:05+00')
      ) AS v (ord, email, number, body, deleted_at)
      JOIN billing.customers c ON c.email = v.email
      LEFT JOIN billing.invoices i ON i.number = v.number
     ORDER BY v.ord;
END
$$;

RESET ROLE;

SET ROLE tenant_globex;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM billing.customers) THEN
        RAISE NOTICE 'tenant globex already has customers; skipped';
        RETURN;
    END IF;

    INSERT INTO billing.customers (email, name, company, plan, created_at) VALUES
        ('alice@northwind.example', 'Alice Nguyen', 'Northwind Traders', 'starter',
         '2025-12-01 10:00:00+00'),
        ('h.simpson@springfield-power.example', 'Homer Simpson', 'Springfield Power', 'free',
         '2025-08-30 07:55:00+00'),
        ('ops@umbrella-logistics.example', 'Yuki Tanaka', 'Umbrella Logistics', 'enterprise',
         '2025-07-14 13:10:00+00'),
        ('finance@initrode.example', 'Priya Raman', 'Initrode', 'pro',
         '2026-01-22 09:45:00+00');

    INSERT INTO billing.invoices
        (customer_id, number, status, currency, amount, issued_at, due_at, paid_at, deleted_at)
    SELECT c.id, v.number, v.status, v.currency, v.amount, v.issued_at, v.due_at, v.paid_at,
           v.deleted_at
      FROM (VALUES
        ('ops@umbrella-logistics.example', 'GLX-1001', 'paid', 'GBP', 52000.00,
         timestamptz '2025-12-01 00:00+00', timestamptz '2026-01-30 00:00+00',
         timestamptz '2026-01-05 14:20+00', NULL::timestamptz),
        ('ops@umbrella-logistics.example', 'GLX-1002', 'open', 'GBP', 52000.00,
         '2026-03-01 00:00+00', '2026-04-30 00:00+00', NULL, NULL),
        ('finance@initrode.example', 'GLX-1003', 'refunded', 'USD', 2499.00,
         '2026-02-01 00:00+00', '2026-03-03 00:00+00', '2026-02-03 08:15+00', NULL),
        ('alice@northwind.example', 'GLX-1004', 'open', 'USD', 299.00,
         '2026-02-25 00:00+00', '2026-03-27 00:00+00', NULL, NULL),
        ('h.simpson@springfield-power.example', 'GLX-1005', 'draft', 'USD', 0.00,
         NULL, NULL, NULL, NULL),
        ('finance@initrode.example', 'GLX-1006', 'void', 'USD', 2499.00,
         '2026-01-31 00:00+00', '2026-03-02 00:00+00', NULL, '2026-02-01 09:00+00')
      ) AS v (email, number, status, currency, amount, issued_at, due_at, paid_at, deleted_at)
      JOIN billing.customers c ON c.email = v.email
     ORDER BY v.number;

    INSERT INTO billing.refunds (invoice_id, amount, reason)
    SELECT i.id, 2499.00, 'Annual plan cancelled within the 14-day window.'
      FROM billing.invoices i WHERE i.number = 'GLX-1003';

    INSERT INTO billing.support_notes (customer_id, invoice_id, body, deleted_at)
    SELECT c.id, i.id, v.body, v.deleted_at
      FROM (VALUES
        (1, 'ops@umbrella-logistics.example', 'GLX-1002',
         'Payment will arrive in two instalments; agreed with their controller by phone.',
         NULL::timestamptz),
        (2, 'finance@initrode.example', 'GLX-1003',
         'Cancelled within the trial window, full refund approved by billing lead.', NULL),
        (3, 'h.simpson@springfield-power.example', NULL,
         'Duplicate of an earlier note, withdrawn.', '2026-01-10 12:00+00')
      ) AS v (ord, email, number, body, deleted_at)
      JOIN billing.customers c ON c.email = v.email
      LEFT JOIN billing.invoices i ON i.number = v.number
     ORDER BY v.ord;
END
$$;

RESET ROLE;

COMMIT;
