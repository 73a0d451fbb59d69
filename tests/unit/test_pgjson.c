/* test_pgjson.c: gateway/pgjson.c: PostgreSQL values as JSON, and each type's schema. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "airlock/pgjson.h"
#include "conform.h"
#include "tap.h"

/* What PostgreSQL (DateStyle ISO, TimeZone UTC, PostgreSQL 14 and later) can return for each
 * type the gateway maps, edges first. */
static const struct {
	unsigned oid;
	const char *text;
} pg_values[] = {
	{ 20, "9223372036854775807" },
	{ 20, "-9223372036854775808" },
	{ 20, "0" },
	{ 1700, "12.50" },
	{ 1700, "-0.000001" },
	{ 1700, "NaN" },
	{ 1700, "Infinity" },
	{ 1700, "-Infinity" },
	{ 1700, "123456789012345678901234567890.000000000001" },
	{ 1700, "0" },
	{ 701, "1.5" },
	{ 701, "-0" },
	{ 701, "NaN" },
	{ 701, "Infinity" },
	{ 701, "-Infinity" },
	{ 701, "1e+308" },
	{ 701, "2.2250738585072014e-308" },
	{ 700, "3.4028235e+38" },
	{ 700, "-Infinity" },
	{ 700, "1e-45" },
	{ 21, "-32768" },
	{ 23, "2147483647" },
	{ 26, "4294967295" },
	{ 16, "t" },
	{ 16, "f" },
	{ 114, "{\"a\": 1}" },
	{ 114, "123456789012345678901234567890" },
	{ 3802, "null" },
	{ 1184, "2026-11-27 16:44:36.123456+00" },
	{ 1184, "2026-11-27 16:44:36+00" },
	{ 1184, "2026-11-27 16:44:36.5+05:30" },
	{ 1184, "infinity" },
	{ 1184, "-infinity" },
	{ 1184, "0044-03-15 12:00:00+00 BC" },
	{ 1184, "4713-01-01 00:00:00+00 BC" },
	{ 1184, "10000-01-01 00:00:00+00" },
	{ 1184, "294276-12-31 23:59:59.999999+00" },
	{ 1184, "0001-01-01 00:00:00+00" },
	{ 1184, "0400-02-29 00:00:00.5+00" },
	{ 1184, "1850-06-01 12:00:00+00:53:28" },
	{ 1114, "2026-11-27 16:44:36.123456" },
	{ 1114, "2026-11-27 16:44:36" },
	{ 1114, "infinity" },
	{ 1114, "-infinity" },
	{ 1114, "0044-03-15 12:00:00 BC" },
	{ 1114, "10000-01-01 00:00:00" },
	{ 1114, "294276-12-31 23:59:59.999999" },
	{ 1082, "2026-11-27" },
	{ 1082, "infinity" },
	{ 1082, "-infinity" },
	{ 1082, "0044-03-15 BC" },
	{ 1082, "4713-01-01 BC" },
	{ 1082, "10000-01-01" },
	{ 1082, "5874897-12-31" },
	{ 1082, "0001-01-01" },
	{ 2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" },
	{ 25, "hello" },
	{ 25, "" },
	{ 1186, "P1DT2H" },
	{ 1083, "24:00:00" },
	{ 1007, "{1,2}" },
};

/* Values a column's schema must refuse: each schema says more than "a string". */
static const struct {
	unsigned oid;
	const char *json;
} not_values[] = {
	{ 20, "\"12.5\"" },
	{ 20, "\"1e3\"" },
	{ 20, "\"abc\"" },
	{ 20, "12" },
	{ 1700, "\"1e5\"" },
	{ 1700, "\"abc\"" },
	{ 1700, "\"inf\"" },
	{ 1700, "12.5" },
	{ 701, "\"1.5\"" },
	{ 701, "\"abc\"" },
	{ 1184, "\"yesterday\"" },
	{ 1184, "\"2026-02-30T00:00:00+00:00\"" },
	{ 1184, "\"2026-11-27T16:44:36\"" },
	{ 1184, "12" },
	{ 1114, "\"yesterday\"" },
	{ 1114, "\"2026-11-27T16:44:36+00:00\"" },
	{ 1082, "\"2026-02-30\"" },
	{ 1082, "\"27/11/2026\"" },
	{ 2950, "\"not-a-uuid\"" },
	{ 23, "\"1\"" },
	{ 16, "\"t\"" },
};

static void
test_value_formats(void)
{
	json_t *schema, *v;
	char *d;
	size_t i;

	for (i = 0; i < sizeof(pg_values) / sizeof(pg_values[0]); i++) {
		schema = pgjson_type_schema(pg_values[i].oid);
		v = pgjson_value(pg_values[i].oid, pg_values[i].text, 0);
		d = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		why[0] = '\0';
		ok(schema != NULL && v != NULL && conforms(schema, v, "value"),
		    "type %u: '%s' as %s conforms to its schema %s", pg_values[i].oid,
		    pg_values[i].text, d ? d : "NULL", why);
		free(d);
		json_decref(v);
		v = pgjson_value(pg_values[i].oid, NULL, 1);
		ok(conforms(schema, v, "value"), "type %u: null conforms %s", pg_values[i].oid,
		    why);
		json_decref(v);
		json_decref(schema);
	}
	for (i = 0; i < sizeof(not_values) / sizeof(not_values[0]); i++) {
		schema = pgjson_type_schema(not_values[i].oid);
		v = json_loads(not_values[i].json, JSON_DECODE_ANY, NULL);
		ok(schema != NULL && v != NULL && !conforms(schema, v, "value"),
		    "type %u: the schema refuses %s", not_values[i].oid, not_values[i].json);
		json_decref(v);
		json_decref(schema);
	}
}

static void
value_is(unsigned oid, const char *text, const char *want, const char *what)
{
	json_t *v = pgjson_value(oid, text, text == NULL);
	char *d = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	ok(d != NULL && strcmp(d, want) == 0, "value: %s → %s (%s)", what, want, d ? d : "NULL");
	free(d);
	json_decref(v);
}

static void
schema_is(unsigned oid, const char *want, const char *what)
{
	json_t *v = pgjson_type_schema(oid);
	char *d = v ? json_dumps(v, JSON_COMPACT) : NULL;

	ok(d != NULL && strcmp(d, want) == 0, "schema: %s %s (%s)", what, want, d ? d : "NULL");
	free(d);
	json_decref(v);
}

static void
test_values(void)
{
	value_is(21, "-32768", "-32768", "int2");
	value_is(23, "2147483647", "2147483647", "int4");
	value_is(26, "4294967295", "4294967295", "oid");
	value_is(20, "9223372036854775807", "\"9223372036854775807\"", "int8 as a string");
	value_is(20, "42", "\"42\"", "a small int8 still a string");
	value_is(1700, "12.50", "\"12.50\"", "numeric as a string, scale kept");
	value_is(1700, "NaN", "\"NaN\"", "numeric NaN");
	value_is(701, "1.5", "1.5", "float8");
	value_is(700, "-0.25", "-0.25", "float4");
	value_is(701, "123.5", "123.5", "float8 with a fraction");
	value_is(701, "NaN", "\"NaN\"", "float8 NaN as a string");
	value_is(701, "Infinity", "\"Infinity\"", "float8 Infinity as a string");
	value_is(700, "-Infinity", "\"-Infinity\"", "float4 -Infinity as a string");
	value_is(16, "t", "true", "bool true");
	value_is(16, "f", "false", "bool false");
	value_is(3802, "{\"a\": [1, 2]}", "{\"a\":[1,2]}", "jsonb parsed");
	value_is(114, "[1, \"x\"]", "[1,\"x\"]", "json parsed");
	value_is(114, "3", "3", "json scalar");
	value_is(114, "{\"a\": 1, \"a\": 2}", "{\"a\":2}", "json with a duplicate key");
	value_is(114, "123456789012345678901234567890", "\"123456789012345678901234567890\"",
	    "json jansson refuses: the text as a string");
	value_is(1184, "2026-11-27 16:44:36.123+00", "\"2026-11-27T16:44:36.123+00:00\"",
	    "timestamptz");
	value_is(1184, "2026-11-27 16:44:36+00", "\"2026-11-27T16:44:36+00:00\"",
	    "timestamptz without fraction");
	value_is(1184, "2026-11-27 16:44:36.5+05:30", "\"2026-11-27T16:44:36.5+05:30\"",
	    "timestamptz with minutes in the offset");
	value_is(1184, "infinity", "\"infinity\"", "timestamptz infinity");
	value_is(1184, "0044-03-15 12:00:00+00 BC", "\"0044-03-15 12:00:00+00 BC\"",
	    "timestamptz BC left as written");
	value_is(1114, "2026-11-27 16:44:36.123456", "\"2026-11-27T16:44:36.123456\"", "timestamp");
	value_is(1082, "2026-11-27", "\"2026-11-27\"", "date");
	value_is(25, "hello", "\"hello\"", "text");
	value_is(1043, "x", "\"x\"", "varchar");
	value_is(2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	    "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"", "uuid");
	value_is(19, "tenant_a", "\"tenant_a\"", "name");
	value_is(23, NULL, "null", "NULL int4");
	value_is(1700, NULL, "null", "NULL numeric");
	value_is(3802, NULL, "null", "NULL jsonb");

	schema_is(21, "{\"type\":[\"integer\",\"null\"]}", "int2");
	schema_is(23, "{\"type\":[\"integer\",\"null\"]}", "int4");
	schema_is(26, "{\"type\":[\"integer\",\"null\"]}", "oid");
	schema_is(20,
	    "{\"type\":[\"string\",\"null\"],\"pattern\":\"^-?[0-9]+$\","
	    "\"description\":\"int8 as a decimal string.\"}",
	    "int8: a pattern, no format");
	schema_is(1700,
	    "{\"type\":[\"string\",\"null\"],\"pattern\":"
	    "\"^(-?[0-9]+(\\\\.[0-9]+)?|NaN|-?Infinity)$\",\"description\":\"numeric as a "
	    "decimal string, exactly as stored.\"}",
	    "numeric: a pattern");
	schema_is(700,
	    "{\"type\":[\"number\",\"string\",\"null\"],\"pattern\":"
	    "\"^(NaN|-?Infinity)$\"}",
	    "float4: NaN and the infinities as strings");
	schema_is(16, "{\"type\":[\"boolean\",\"null\"]}", "bool");
	schema_is(114, "{}", "json");
	schema_is(3802, "{}", "jsonb");
	schema_is(2950, "{\"type\":[\"string\",\"null\"],\"format\":\"uuid\"}", "uuid");
	schema_is(25, "{\"type\":[\"string\",\"null\"]}", "text");
}

int
main(void)
{
	test_values();
	test_value_formats();
	return tap_done();
}
