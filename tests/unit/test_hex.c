/* Unit tests for gateway/hex.c: the one hex encoding. */
#include <string.h>

#include "airlock/hex.h"
#include "tap.h"

int
main(void)
{
	const unsigned char bytes[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
	char out[2 * sizeof(bytes) + 1], small[5] = "zzzz";

	memset(out, 'x', sizeof(out));
	hex_encode(bytes, sizeof(bytes), out);
	ok(strcmp(out, "00017f80abff") == 0, "every nibble, lower case: %s", out);
	hex_encode(bytes, 0, small);
	ok(small[0] == '\0', "no bytes: an empty string");
	hex_encode(bytes + 4, 2, small);
	ok(strcmp(small, "abff") == 0 && small[4] == '\0', "exactly 2n + 1 characters written");
	return tap_done();
}
