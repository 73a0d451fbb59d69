/* pgjson.h: PostgreSQL values, as libpq gives them in text format, turned into JSON. */
/*
 * Owns nothing: every function returns a new reference its caller frees with json_decref.
 */
#ifndef AIRLOCK_PGJSON_H
#define AIRLOCK_PGJSON_H

#include <jansson.h>

/*
 * One result value as JSON by column type: int2/int4/oid → integer; int8 and numeric →
 * string, always; float4/float8 → number (NaN/Infinity → string); bool → true/false;
 * json/jsonb → parsed JSON (the text as a string when jansson refuses it); timestamptz →
 * RFC 3339 "2026-11-27T16:44:36.123+00:00" and timestamp → "2026-11-27T16:44:36.123" (from
 * DateStyle ISO text), but what RFC 3339 cannot write (infinity, BC, years past 9999) as
 * PostgreSQL wrote it; date → "YYYY-MM-DD" likewise; everything else → string; NULL → null.
 * Returns a new reference, or NULL when out of memory.
 */
json_t *pgjson_value(unsigned type_oid, const char *text, int is_null);

/*
 * The JSON Schema for one column type, nullable, that every value pgjson_value gives for
 * that type conforms to, standard formats included: e.g. {"type":["string","null"],
 * "pattern":"^-?[0-9]+$", ...} for int8, and for timestamptz an anyOf of format date-time
 * and a pattern for PostgreSQL's infinities, BC dates and years past 9999.  Only formats
 * JSON Schema defines.  Returns a new reference, or NULL when out of memory.
 */
json_t *pgjson_type_schema(unsigned type_oid);

#endif
