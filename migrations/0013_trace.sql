-- W3C trace context on the call record: the trace id of the request's traceparent, so a
-- record can be found from the client's traces and the other way round.
--
-- The trace id is the client's word, not evidence: it is kept beside the record and is not
-- part of its canonical text, so airlock.call_canonical and the digests of every record,
-- before and after this migration, stay as they were (and verify with them).

ALTER TABLE airlock.calls ADD COLUMN trace_id text
    CHECK (trace_id IS NULL OR trace_id ~ '^[0-9a-f]{32}$');

COMMENT ON COLUMN airlock.calls.trace_id IS
    'The W3C trace id (32 lowercase hex digits) of the request''s traceparent, or NULL; not covered by digest.';

CREATE INDEX calls_trace_id_idx ON airlock.calls (trace_id) WHERE trace_id IS NOT NULL;

-- The same as in 0011, storing trace_id too.  CREATE OR REPLACE keeps the owner and the
-- grants (EXECUTE to airlock_gateway only).
CREATE OR REPLACE PROCEDURE airlock.record_calls(records json)
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
        idempotency_key, plan_id, outcome, reason, duration_ms, result_digest, client, egress,
        trace_id)
    SELECT id, at, tenant, token_id, task, method, tool, arguments, dry_run, idempotency_key,
           plan_id, outcome, reason, duration_ms, result_digest, client, egress, trace_id
      FROM json_populate_recordset(NULL::airlock.calls, records);
END
$$;
