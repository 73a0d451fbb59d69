-- Code steps: the egress attempts of a sandboxed program, kept with its call record.

ALTER TABLE airlock.calls ADD COLUMN egress jsonb;

COMMENT ON COLUMN airlock.calls.egress IS
    'A code step''s egress attempts through the proxy: [{host, port, allowed, reason}].';
