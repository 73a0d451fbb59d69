/* test_token.c: gateway/token.c: the token format, hashing, ttl parsing and the admin credential. */
#include <sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "airlock/token.h"
#include "tap.h"

int
main(void)
{
	char token[TOK_LEN + 1], id[TOK_ID_LEN + 1], id2[TOK_ID_LEN + 1], hex[65], b64[TOK_B64_LEN + 1];
	char other[TOK_LEN + 1], path[] = "/tmp/alk-admin-XXXXXX", bad[TOK_LEN + 2];
	uint8_t hash[32], hash2[32], zero[32] = { 0 }, ff[32];
	FILE *f;
	int fd, i, all_ok = 1;

	/* Known vectors: base64url, unpadded. */
	tok_b64url(zero, b64);
	ok(strcmp(b64, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") == 0, "32 zero bytes");
	memset(ff, 0xff, sizeof(ff));
	tok_b64url(ff, b64);
	ok(strcmp(b64, "__________________________________________8") == 0, "32 0xff bytes");

	tok_generate(token, hash, id);
	ok(strncmp(token, "alk_", 4) == 0 && strlen(token) == 47, "alk_ + 43 characters");
	ok(strspn(token + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 43,
	    "base64url alphabet only");
	SHA256Data((const uint8_t *)token, strlen(token), hex);
	ok(strncmp(hex, id, 12) == 0 && strlen(id) == 12, "id is the first 12 hex digits of SHA-256");
	ok(tok_parse(token, hash2, id2) == 0 && memcmp(hash, hash2, 32) == 0 &&
	    strcmp(id, id2) == 0, "a generated token parses to the same hash");
	tok_generate(other, hash2, id2);
	ok(strcmp(token, other) != 0 && memcmp(hash, hash2, 32) != 0, "two tokens differ");
	for (i = 0; i < 200 && all_ok; i++) {
		tok_generate(other, hash2, id2);
		all_ok = tok_parse(other, hash2, id2) == 0;
	}
	ok(all_ok, "200 generated tokens all parse");

	/* Malformed tokens are refused before any lookup. */
	ok(tok_parse(NULL, hash2, id2) == -1, "NULL");
	ok(tok_parse("", hash2, id2) == -1, "empty");
	ok(tok_parse("alk_", hash2, id2) == -1, "prefix only");
	memcpy(bad, token, sizeof(token));
	bad[0] = 'A';
	ok(tok_parse(bad, hash2, id2) == -1, "wrong prefix");
	memcpy(bad, token, sizeof(token));
	bad[10] = '+';
	ok(tok_parse(bad, hash2, id2) == -1, "standard base64 character");
	bad[10] = '=';
	ok(tok_parse(bad, hash2, id2) == -1, "padding");
	memcpy(bad, token, sizeof(token));
	bad[TOK_LEN] = 'A';
	bad[TOK_LEN + 1] = '\0';
	ok(tok_parse(bad, hash2, id2) == -1, "one character too many");
	ok(tok_parse(token + 1, hash2, id2) == -1, "one character short");
	memcpy(bad, "alk_", 4);
	memset(bad + 4, 'A', 42);
	bad[46] = 'B';	/* 'B' has low bits set: not the encoding of 32 bytes */
	bad[47] = '\0';
	ok(tok_parse(bad, hash2, id2) == -1, "non-canonical last character");
	bad[46] = 'E';
	ok(tok_parse(bad, hash2, id2) == 0, "canonical last character");

	/* ttl. */
	ok(tok_parse_ttl("60") == 60 && tok_parse_ttl("60s") == 60, "seconds");
	ok(tok_parse_ttl("5m") == 300 && tok_parse_ttl("1h") == 3600, "minutes and hours");
	ok(tok_parse_ttl("24h") == 86400, "a day");
	ok(tok_parse_ttl("25h") == -1 && tok_parse_ttl("86401") == -1, "over a day");
	ok(tok_parse_ttl("0") == -1 && tok_parse_ttl("-5") == -1, "zero and negative");
	ok(tok_parse_ttl("") == -1 && tok_parse_ttl("s") == -1 && tok_parse_ttl("5d") == -1 &&
	    tok_parse_ttl("1.5m") == -1 && tok_parse_ttl(NULL) == -1, "garbage");

	/* The admin credential: constant-time compare, re-read when the file changes. */
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fprintf(f, "alkadm_0123456789abcdef0123456789abcdef0123\n");
	fclose(f);
	ok(tok_is_admin(path, "alkadm_0123456789abcdef0123456789abcdef0123") == 1, "admin matches");
	ok(tok_is_admin(path, "alkadm_0123456789abcdef0123456789abcdef012") == 0, "shorter");
	ok(tok_is_admin(path, "alkadm_0123456789abcdef0123456789abcdef01234") == 0, "longer");
	ok(tok_is_admin(path, "alkadm_0123456789abcdef0123456789abcdef0124") == 0, "last differs");
	ok(tok_is_admin(path, token) == 0, "a tenant token is not admin");
	ok(tok_is_admin(NULL, "alkadm_0123456789abcdef0123456789abcdef0123") == 0, "no file configured");
	sleep(1);	/* a new mtime */
	f = fopen(path, "w");
	fprintf(f, "alkadm_ffffffffffffffffffffffffffffffffffff\n");
	fclose(f);
	ok(tok_is_admin(path, "alkadm_0123456789abcdef0123456789abcdef0123") == 0, "old key gone");
	ok(tok_is_admin(path, "alkadm_ffffffffffffffffffffffffffffffffffff") == 1, "new key read");
	f = fopen(path, "w");
	fprintf(f, "alkadm_short\n");
	fclose(f);
	ok(tok_is_admin(path, "alkadm_short") == 0, "a too short credential is never accepted");
	unlink(path);
	ok(tok_is_admin(path, "alkadm_ffffffffffffffffffffffffffffffffffff") == 0, "file removed");
	return tap_done();
}
