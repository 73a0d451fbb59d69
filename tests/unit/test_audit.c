/* test_audit.c: gateway/audit.c's result digest: the SHA-256 of the canonical text (compact,
 * keys sorted, non-ASCII escaped), computed by libcrypto, equal to libmd's for short and
 * large values alike. */
#include <sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/audit.h"
#include "tap.h"

/* The digest as it is defined: SHA-256 (libmd's) of audit_canonical's text. */
static void
reference(json_t *v, char hex[65])
{
	char *text = audit_canonical(v);

	SHA256Data((const uint8_t *)(text ? text : ""), text ? strlen(text) : 0, hex);
	free(text);
}

static void
test_known(void)
{
	json_t *v = json_pack("{s:i, s:s}", "b", 1, "a", "\xc3\xa9");
	char hex[65];

	audit_digest(v, hex);
	/* sha256('{"a":"\u00E9","b":1}'): jansson writes the escape in capitals */
	ok(strcmp(hex, "a404a424d1470bda1500b0a9bc2e4a779641fff261042302879211398b469892") == 0,
	    "keys sorted, compact, non-ASCII escaped: %s", hex);
	json_decref(v);
	audit_digest(NULL, hex);
	ok(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0,
	    "no value: the digest of no text");
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
		json_array_append_new(rows, json_pack("{s:i, s:s, s:s, s:s}", "id", i, "status",
		    "paid", "number", "ACME-0000001", "note", "caf\xc3\xa9 \"quoted\""));
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
	test_known();
	test_large();
	return tap_done();
}
