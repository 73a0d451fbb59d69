/* test_token.c: gateway/token.c: the token format, hashing, ttl parsing, the admin credential
 * and the check of a grant's bindings against the catalog. */
#include <sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "airlock/token.h"
#include "tap.h"

/* Whether a grant of tools (comma-separated) with bindings (JSON text) passes the check
 * against the demo catalog; msg gets the fault. */
static int
grant_ok(const struct catalog *cat, const char *tools, const char *bindings, char *msg, size_t len)
{
	json_t *t = json_array(), *b = json_loads(bindings, 0, NULL);
	char buf[256], *name, *next = buf;
	int rc;

	strlcpy(buf, tools, sizeof(buf));
	while ((name = strsep(&next, ",")) != NULL)
		json_array_append_new(t, json_string(name));
	msg[0] = '\0';
	rc = tok_check_grant(cat, t, b, msg, len);
	json_decref(t);
	json_decref(b);
	return rc == 0;
}

/* Bindings bind every granted tool, or the grant is refused. */
static void
test_grants(void)
{
	struct catalog *cat;
	char err[512], msg[512];

	cat = tool_load("tools", NULL, err, sizeof(err));
	ok(cat != NULL, "the demo catalog loads without a database (%s)", cat ? "" : err);
	if (cat == NULL)
		return;
	ok(grant_ok(cat, "lookup_invoices,get_customer", "{\"customer_id\": \"7\"}", msg,
	       sizeof(msg)),
	    "every granted tool takes the bound argument");
	ok(!grant_ok(cat, "get_customer,search_customers", "{\"customer_id\": \"7\"}", msg,
	       sizeof(msg)) &&
		strstr(msg, "search_customers") != NULL && strstr(msg, "customer_id"),
	    "a tool without the bound argument is refused: %s", msg);
	ok(!grant_ok(cat, "get_customer", "{\"customer\": \"7\"}", msg, sizeof(msg)),
	    "a binding naming no argument of a granted tool is refused: %s", msg);
	ok(grant_ok(cat, "lookup_invoices,run_python", "{\"customer_id\": \"7\"}", msg,
	       sizeof(msg)),
	    "code tools are bound through their input_tool");
	ok(!grant_ok(cat, "run_python", "{\"customer_id\": \"7\"}", msg, sizeof(msg)),
	    "a binding that only code tools would carry binds nothing: %s", msg);
	ok(!grant_ok(cat, "get_customer,no_such_tool", "{\"customer_id\": \"7\"}", msg,
	       sizeof(msg)) &&
		strstr(msg, "no_such_tool") != NULL,
	    "with bindings, every tool must be in the catalog: %s", msg);
	ok(grant_ok(cat, "no_such_tool", "{}", msg, sizeof(msg)), "no bindings: nothing to check");
	tool_catalog_free(cat);
}

int
main(void)
{
	char token[TOK_LEN + 1], id[TOK_ID_LEN + 1], id2[TOK_ID_LEN + 1], hex[65],
	    b64[TOK_B64_LEN + 1];
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
	ok(strspn(token + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
		43,
	    "base64url alphabet only");
	SHA256Data((const uint8_t *)token, strlen(token), hex);
	ok(strncmp(hex, id, 12) == 0 && strlen(id) == 12,
	    "id is the first 12 hex digits of SHA-256");
	ok(tok_parse(token, hash2, id2) == 0 && memcmp(hash, hash2, 32) == 0 &&
		strcmp(id, id2) == 0,
	    "a generated token parses to the same hash");
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
	bad[46] = 'B'; /* 'B' has low bits set: not the encoding of 32 bytes */
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
		tok_parse_ttl("1.5m") == -1 && tok_parse_ttl(NULL) == -1,
	    "garbage");

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
	ok(tok_is_admin(NULL, "alkadm_0123456789abcdef0123456789abcdef0123") == 0,
	    "no file configured");
	sleep(1); /* a new mtime */
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
	test_grants();
	return tap_done();
}
