-- A key's stored response is the text that was sent, not jsonb (which reorders keys), so a
-- replay is the same answer byte for byte but for replayed and the JSON-RPC id.
ALTER TABLE airlock.idempotency_keys ALTER COLUMN response TYPE text USING response::text;
