-- Task-scoped tokens (hash only) and the call record every call leaves behind.

CREATE TABLE airlock.tokens (
    id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{12}$'),
    hash         bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    tenant       text NOT NULL REFERENCES airlock.tenants (name),
    task         text NOT NULL CHECK (length(task) BETWEEN 1 AND 128),
    tools        text[] NOT NULL,
    bindings     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(bindings) = 'object'),
    can_revert   boolean NOT NULL DEFAULT false,
    preview_only boolean NOT NULL DEFAULT false,
    max_calls    integer CHECK (max_calls > 0),
    calls_used   integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);

COMMENT ON TABLE airlock.tokens IS
    'Tokens: only the SHA-256 of the secret is kept; id is its first 12 hex digits.';
COMMENT ON COLUMN airlock.tokens.bindings IS
    'Argument name -> the only value (as text) the token may pass for it.';

CREATE INDEX tokens_tenant_idx ON airlock.tokens (tenant);

CREATE TABLE airlock.calls (
    id              uuid PRIMARY KEY,
    at              timestamptz NOT NULL,
    tenant          text,
    token_id        text,
    task            text,
    method          text NOT NULL,
    tool            text,
    arguments       jsonb,
    dry_run         boolean NOT NULL DEFAULT false,
    idempotency_key text,
    plan_id         uuid,
    outcome         text NOT NULL CHECK (outcome IN ('ok', 'tool_error', 'refused', 'error')),
    reason          text,
    duration_ms     double precision,
    result_digest   text,
    client          text
);

COMMENT ON TABLE airlock.calls IS
    'The call record: one row per call, accepted or refused, written before the response.';
COMMENT ON COLUMN airlock.calls.result_digest IS
    'SHA-256 (hex) of the canonical JSON of structuredContent without call_id and replayed: '
    'keys sorted, no whitespace, non-ASCII escaped (see README, "The call record").';

CREATE INDEX calls_tenant_at_idx ON airlock.calls (tenant, at);
CREATE INDEX calls_task_idx ON airlock.calls (task);

-- Refusals before authentication (no, unknown, expired or revoked token; a rate limit per
-- address) are counted per client address and second instead of written one by one.
CREATE TABLE airlock.refusals (
    second timestamptz NOT NULL,
    client text NOT NULL,
    reason text NOT NULL,
    count  integer NOT NULL CHECK (count > 0)
);

CREATE INDEX refusals_second_idx ON airlock.refusals (second);

-- Per-tenant rate limits (token bucket: refill per second and burst); NULL: the gateway's default.
ALTER TABLE airlock.tenants
    ADD COLUMN rate_per_sec double precision CHECK (rate_per_sec > 0),
    ADD COLUMN rate_burst   double precision CHECK (rate_burst >= 1);

-- The gateway reads tokens and tenants, mints and revokes tokens, counts calls; on the
-- call record it may only insert.
GRANT SELECT, INSERT ON airlock.tokens TO airlock_gateway;
GRANT UPDATE (calls_used, revoked_at) ON airlock.tokens TO airlock_gateway;
GRANT INSERT ON airlock.calls, airlock.refusals TO airlock_gateway;
