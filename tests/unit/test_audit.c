/* test_audit.c: gateway/audit.c's canonical form and digests, through its interface: what
 * every record's digest covers must not change with key order or the spelling of text, or
 * `airlockctl audit verify` and the sealed chain would disagree with the daemon.  The digest
 * is computed by libcrypto where present; it must equal libmd's SHA-256 of the same text. */
#include <jansson.h>
#include <sha256.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/audit.h"
#include "tap.h"

/* The canonical text of the JSON text in, or "" when it does not parse. */
static int
canonical_is(const char *in, const char *want)
{
	json_t *v = json_loads(in, JSON_DECODE_ANY, NULL);
	char *got = v != NULL ? audit_canonical(v) : NULL;
	int rc = got != NULL && strcmp(got, want) == 0;

	if (!rc)
		printf("#   %s -> %s, not %s\n", in, got ? got : "(null)", want);
	free(got);
	json_decref(v);
	return rc;
}

static int
digest_is(const char *in, const char *want)
{
	json_t *v = json_loads(in, JSON_DECODE_ANY, NULL);
	char hex[65] = "";

	if (v != NULL)
		audit_digest(v, hex);
	json_decref(v);
	return strcmp(hex, want) == 0;
}

/* The digest as it is defined: SHA-256 (libmd's) of audit_canonical's text. */
static void
reference(json_t *v, char hex[65])
{
	char *text = audit_canonical(v);

	SHA256Data((const uint8_t *)(text ? text : ""), text ? strlen(text) : 0, hex);
	free(text);
}

static void
test_large(void)
{
	json_t *rows = json_array(), *v;
	char hex[65], want[65], *big;
	int i;

	/* Rows as a read returns them: thousands of small pieces, and one string longer than
	 * the hashing buffer. */
	for (i = 0; i < 500; i++)
		json_array_append_new(rows,
		    json_pack("{s:i, s:s, s:s, s:s}", "id", i, "status", "paid", "number",
			"ACME-0000001", "note", "caf\xc3\xa9 \"quoted\""));
	big = malloc(20000);
	memset(big, 'x', 19999);
	big[19999] = '\0';
	v = json_pack("{s:o, s:I, s:b, s:s}", "rows", rows, "row_count", (json_int_t)500,
	    "truncated", 0, "blob", big);
	audit_digest(v, hex);
	reference(v, want);
	ok(strcmp(hex, want) == 0, "a large value: the digest of its canonical text");
	json_decref(v);
	free(big);
}

int
main(void)
{
	char id[AUDIT_ID_LEN + 1], other[AUDIT_ID_LEN + 1], hex[65] = "x";
	json_t *v, *sum;

	/* The canonical form: compact, keys sorted at every depth, non-ASCII escaped. */
	ok(canonical_is("{ \"b\": [true, null], \"a\": 1 }", "{\"a\":1,\"b\":[true,null]}"),
	    "compact, keys sorted");
	ok(canonical_is("{\"z\": {\"y\": 1, \"x\": {\"w\": 2, \"v\": 3}}}",
	       "{\"z\":{\"x\":{\"v\":3,\"w\":2},\"y\":1}}"),
	    "keys sorted in nested objects");
	ok(canonical_is("[3, 1, 2]", "[3,1,2]"), "arrays keep their order");
	ok(canonical_is("{\"e\": \"caf\xc3\xa9\"}", "{\"e\":\"caf\\u00E9\"}"),
	    "non-ASCII escaped (upper-case hex)");
	ok(canonical_is("\"\xf0\x9f\x98\x80\"", "\"\\uD83D\\uDE00\""),
	    "outside the BMP: a surrogate pair");
	ok(canonical_is("\"x\"", "\"x\""), "a scalar alone");
	ok(canonical_is("{}", "{}"), "an empty object");
	ok(canonical_is("{\"s\": \"a\\\"b\\\\c\\n\"}", "{\"s\":\"a\\\"b\\\\c\\n\"}"),
	    "escapes kept");

	/* The digest: SHA-256 of the canonical text, whatever the text it came from. */
	ok(digest_is("{\"c\": {\"y\": 2.5, \"x\": \"\xc3\xa9\"}, \"b\": [true, null], \"a\": 1}",
	       "740258aadfbeb7704ec1afc53ed08a0a5ea9081439d3c9eb73679c65ad0f7d0f"),
	    "digest of a known value");
	ok(digest_is("{\"a\":1,\"b\":[true,null],\"c\":{\"x\":\"\\u00e9\",\"y\":2.5}}",
	       "740258aadfbeb7704ec1afc53ed08a0a5ea9081439d3c9eb73679c65ad0f7d0f"),
	    "the same value spelt otherwise: the same digest");
	ok(digest_is("\"x\"", "ba2df4903a2c14e86dc3bcca58911b44ac1d2514b7227bf6eb08cfb978f55a1b"),
	    "digest of a string");
	ok(!digest_is("{\"a\":2}",
	       "740258aadfbeb7704ec1afc53ed08a0a5ea9081439d3c9eb73679c65ad0f7d0f"),
	    "another value, another digest");

	/* Without the deployment's key, a keyed digest gives nothing away. */
	v = json_pack("{s:s}", "secret", "hunter2");
	ok(!audit_has_key(), "no digest key read");
	audit_keyed_digest(v, hex);
	ok(hex[0] == '\0', "keyed digest without the key: empty");
	sum = audit_summary(v, v);
	ok(sum != NULL &&
		json_integer_value(json_object_get(sum, "bytes")) ==
		    (json_int_t)strlen("{\"secret\":\"hunter2\"}"),
	    "summary: the compact JSON's length");
	ok(sum != NULL && json_is_string(json_object_get(sum, "hmac_sha256")),
	    "summary: a keyed digest field");
	json_decref(sum);
	json_decref(v);

	/* Call ids. */
	audit_new_id(id);
	audit_new_id(other);
	ok(strlen(id) == 36 && audit_is_id(id), "a new id is an id: %s", id);
	ok(id[14] == '4' && strchr("89ab", id[19]) != NULL, "a version 4 UUID");
	ok(strcmp(id, other) != 0, "two new ids differ");
	ok(!audit_is_id("not-an-id"), "text is not an id");
	ok(!audit_is_id("0123456789abcdef0123456789abcdef0123"), "no dashes: not an id");
	id[35] = 'g';
	ok(!audit_is_id(id), "a non-hex digit: not an id");
	test_large();
	return tap_done();
}
