-- A dry-run of an insert records its previewed change with a before-image that is the JSON
-- value null (airlock.record_preview takes e -> 'before'), where a committed insert's
-- captured change has SQL NULL.  airlock.image_json failed on it (jsonb_each of a
-- non-object), so airlock/calls.get of such a dry-run answered 503.  Both nulls are no
-- image.  The stored rows stay as they are: their digests cover them.
CREATE OR REPLACE FUNCTION airlock.image_json(img jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN img IS NULL OR jsonb_typeof(img) = 'null' THEN NULL ELSE coalesce((
        SELECT jsonb_object_agg(k, CASE jsonb_typeof(v) WHEN 'number' THEN to_jsonb(v #>> '{}')
                                       ELSE v END)
        FROM jsonb_each(img) AS e(k, v)), '{}'::jsonb) END
$$;
