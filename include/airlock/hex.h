/* hex.h: bytes as lower-case hexadecimal text, the one encoding every module uses for
 * digests, token ids, nonces and generated passwords. */
#ifndef AIRLOCK_HEX_H
#define AIRLOCK_HEX_H

#include <stddef.h>

/*
 * Writes the n bytes at in as 2n lower-case hex digits and a NUL to out, which the caller
 * provides with room for 2n + 1 characters.
 */
void hex_encode(const void *in, size_t n, char *out);

#endif
