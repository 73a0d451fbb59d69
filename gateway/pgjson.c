/* pgjson.c: PostgreSQL values (text format) as JSON, and the JSON Schema of each column type. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "airlock/pgjson.h"

/* Type OIDs from PostgreSQL's pg_type.dat; they are fixed. */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_OID 26
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_DATE 1082
#define OID_TIMESTAMP 1114
#define OID_TIMESTAMPTZ 1184
#define OID_NUMERIC 1700
#define OID_UUID 2950
#define OID_JSONB 3802

/* Whether s[0..n) are all digits. */
static int
all_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

/*
 * RFC 3339 from a DateStyle ISO timestamp: "2026-11-27 16:44:36.123+00" becomes
 * "2026-11-27T16:44:36.123+00:00", and without an offset (timestamp without time zone)
 * "2026-11-27 16:44:36" becomes "2026-11-27T16:44:36".  What RFC 3339 cannot say (infinity,
 * BC, years past 9999, an offset with seconds) is returned as PostgreSQL wrote it, which
 * pgjson_type_schema describes too.
 */
static json_t *
iso_timestamp(const char *text, int has_offset)
{
	char out[96];
	size_t n = strlen(text), i;

	if (n < 19 || n + 4 >= sizeof(out) || !all_digits(text, 4) || text[4] != '-' ||
	    !all_digits(text + 5, 2) || text[7] != '-' || !all_digits(text + 8, 2) ||
	    text[10] != ' ' || !all_digits(text + 11, 2) || text[13] != ':' ||
	    !all_digits(text + 14, 2) || text[16] != ':' || !all_digits(text + 17, 2))
		return json_string(text);
	memcpy(out, text, n + 1);
	out[10] = 'T';
	i = 19;
	if (out[i] == '.' && isdigit((unsigned char)out[i + 1]))
		for (i++; isdigit((unsigned char)out[i]); i++)
			;
	if (!has_offset)
		return out[i] == '\0' ? json_string(out) : json_string(text);
	if ((out[i] != '+' && out[i] != '-') || !all_digits(out + i + 1, 2))
		return json_string(text);
	if (out[i + 3] == '\0')
		strlcat(out, ":00", sizeof(out));
	else if (out[i + 3] != ':' || !all_digits(out + i + 4, 2) || out[i + 6] != '\0')
		return json_string(text);
	return json_string(out);
}

json_t *
pgjson_value(unsigned type_oid, const char *text, int is_null)
{
	const char *errstr;
	long long n;
	double d;
	char *end;
	json_t *v;

	if (is_null || text == NULL)
		return json_null();
	switch (type_oid) {
	case OID_INT2:
	case OID_INT4:
	case OID_OID:
		n = strtonum(text, LLONG_MIN, LLONG_MAX, &errstr);
		return errstr == NULL ? json_integer(n) : json_string(text);
	case OID_FLOAT4:
	case OID_FLOAT8:
		errno = 0;
		d = strtod(text, &end);
		if (*text == '\0' || *end != '\0' || !isfinite(d))
			return json_string(text);
		return json_real(d);
	case OID_BOOL:
		if (strcmp(text, "t") == 0)
			return json_true();
		if (strcmp(text, "f") == 0)
			return json_false();
		return json_string(text);
	case OID_JSON:
	case OID_JSONB:
		v = json_loads(text, JSON_DECODE_ANY, NULL);
		return v != NULL ? v : json_string(text);
	case OID_TIMESTAMPTZ:
		return iso_timestamp(text, 1);
	case OID_TIMESTAMP:
		return iso_timestamp(text, 0);
	default:
		/* int8, numeric, date, text and the rest: the text itself. */
		return json_string(text);
	}
}

/*
 * Patterns for what a column type's values look like where no standard format says it.
 * They are plain POSIX extended expressions as well as ECMA 262 ones (the dialect JSON
 * Schema names), so both kinds of validator read them alike.  Beside RFC 3339, PostgreSQL's
 * own text for the dates and times RFC 3339 cannot write: the infinities, BC (year 1 BC
 * and before) and years past 9999.
 */
#define PAT_INT8 "^-?[0-9]+$"
#define PAT_NUMERIC "^(-?[0-9]+(\\.[0-9]+)?|NaN|-?Infinity)$"
#define PAT_FLOAT "^(NaN|-?Infinity)$"
#define PAT_PG_TIMESTAMPTZ                                                    \
	"^(-?infinity|[0-9]{4,}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}" \
	"(\\.[0-9]+)?[+-][0-9]{2}(:[0-9]{2}){0,2}( BC)?)$"
#define PAT_TIMESTAMP                                                         \
	"^(-?infinity|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"  \
	"(\\.[0-9]+)?|[0-9]{4,}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}" \
	"(\\.[0-9]+)?( BC)?)$"
#define PAT_PG_DATE "^(-?infinity|[0-9]{4}-[0-9]{2}-[0-9]{2} BC|[0-9]{5,}-[0-9]{2}-[0-9]{2})$"

/* A nullable string in a standard format, or PostgreSQL's text matching pattern. */
static json_t *
format_or_pattern(const char *format, const char *pattern, const char *description)
{
	return json_pack("{s:[{s:s, s:s}, {s:s, s:s}, {s:s}], s:s}", "anyOf", "type", "string",
	    "format", format, "type", "string", "pattern", pattern, "type", "null", "description",
	    description);
}

json_t *
pgjson_type_schema(unsigned type_oid)
{
	switch (type_oid) {
	case OID_INT2:
	case OID_INT4:
	case OID_OID:
		return json_pack("{s:[ss]}", "type", "integer", "null");
	case OID_INT8:
		return json_pack("{s:[ss], s:s, s:s}", "type", "string", "null", "pattern",
		    PAT_INT8, "description", "int8 as a decimal string.");
	case OID_NUMERIC:
		return json_pack("{s:[ss], s:s, s:s}", "type", "string", "null", "pattern",
		    PAT_NUMERIC, "description", "numeric as a decimal string, exactly as stored.");
	case OID_FLOAT4:
	case OID_FLOAT8:
		/* The pattern applies to strings only: NaN and the infinities come as strings. */
		return json_pack("{s:[sss], s:s}", "type", "number", "string", "null", "pattern",
		    PAT_FLOAT);
	case OID_BOOL:
		return json_pack("{s:[ss]}", "type", "boolean", "null");
	case OID_JSON:
	case OID_JSONB:
		/* Any JSON value, null included. */
		return json_object();
	case OID_TIMESTAMPTZ:
		return format_or_pattern("date-time", PAT_PG_TIMESTAMPTZ,
		    "RFC 3339 in UTC; "
		    "infinity, -infinity, BC and years past 9999 as PostgreSQL writes them.");
	case OID_TIMESTAMP:
		/* RFC 3339's date-time needs an offset: no format, a pattern. */
		return json_pack("{s:[ss], s:s, s:s}", "type", "string", "null", "pattern",
		    PAT_TIMESTAMP, "description",
		    "ISO 8601 without offset; infinity, -infinity, "
		    "BC and years past 9999 as PostgreSQL writes them.");
	case OID_DATE:
		return format_or_pattern("date", PAT_PG_DATE,
		    "RFC 3339 full-date; infinity, "
		    "-infinity, BC and years past 9999 as PostgreSQL writes them.");
	case OID_UUID:
		return json_pack("{s:[ss], s:s}", "type", "string", "null", "format", "uuid");
	default:
		return json_pack("{s:[ss]}", "type", "string", "null");
	}
}
