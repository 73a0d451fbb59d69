/* fuzz_token.c: libFuzzer target for the presented-token and ttl parsers (gateway/token.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, id[TOK_ID_LEN + 1];
	uint8_t hash[32];
	long long ttl;

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	/* A token is accepted only in its one shape: the prefix and 43 base64url characters. */
	if (tok_parse(text, hash, id) == 0 &&
	    (strlen(text) != TOK_LEN || strncmp(text, TOK_PREFIX, 4) != 0 ||
		strspn(text + 4,
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
		    TOK_B64_LEN ||
		strlen(id) != TOK_ID_LEN))
		abort();
	ttl = tok_parse_ttl(text);
	if (ttl != -1 && (ttl < 1 || ttl > TOK_MAX_TTL))
		abort();
	free(text);
	return 0;
}
