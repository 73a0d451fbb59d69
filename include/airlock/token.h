/* token.h: task-scoped tokens (alk_...) and the admin credential (alkadm_...). */
/*
 * Owns nothing: tokens and hashes go into the caller's buffers; conn and catalog are
 * borrowed.
 */
#ifndef AIRLOCK_TOKEN_H
#define AIRLOCK_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "airlock/tool.h"

#define TOK_PREFIX "alk_"
#define TOK_ADMIN_PREFIX "alkadm_"
#define TOK_B64_LEN 43 /* 32 bytes, unpadded base64url */
#define TOK_LEN (4 + TOK_B64_LEN)
#define TOK_ID_LEN 12	  /* hex digits of the hash shown in lists and records */
#define TOK_MAX_TTL 86400 /* a day, in seconds */

/* Writes 32 bytes as unpadded base64url (43 characters and a NUL) into out. */
void tok_b64url(const uint8_t in[32], char out[TOK_B64_LEN + 1]);

/* Makes a new token: TOK_LEN characters and a NUL in token, its SHA-256 in hash, its id in id. */
void tok_generate(char token[TOK_LEN + 1], uint8_t hash[32], char id[TOK_ID_LEN + 1]);

/* Checks the shape of a presented token (prefix, length, alphabet) and hashes it.
 * Returns 0, or -1 when it is not a token (nothing is looked up then). */
int tok_parse(const char *s, uint8_t hash[32], char id[TOK_ID_LEN + 1]);

/* Whether presented equals the admin credential in path (re-read when the file
 * changes, so it can be replaced without restart), compared in constant time.
 * Returns 1 yes, 0 no or no credential configured. */
int tok_is_admin(const char *path, const char *presented);

/* What a minted token grants. */
struct tok_spec {
	const char *tenant;
	const char *task;	       /* NULL: the token id */
	json_t *tools;		       /* array of tool names (borrowed) */
	json_t *bindings;	       /* object: argument -> value (borrowed; NULL for none) */
	const struct catalog *catalog; /* what bindings are checked against (borrowed);
					   NULL refuses any binding */
	long long ttl;		       /* seconds, 1..TOK_MAX_TTL */
	long long max_calls;	       /* 0: no quota */
	int is_preview_only;
	int can_revert;
	const char *mint_call; /* the id of the mint's call record (borrowed) */
	const char *approver;  /* an approver token for this person (1 to 128
					   printable characters): no tools, bindings, quota,
					   revert or preview; NULL for a token that calls tools */
};

/*
 * Checks spec and inserts a new token through conn (as the operator or the gateway role).
 * On success returns 0 with the secret in token, its id in id and expiry (ISO 8601) in
 * expires; on failure -1 with a message for the caller in err (an unknown tenant, a bad
 * tool name, a bad ttl, a binding a granted tool cannot honour: tok_check_grant) and
 * *is_user_error set when the spec, not the database, was at fault.
 */
int tok_mint(PGconn *conn, const struct tok_spec *spec, char token[TOK_LEN + 1],
    char id[TOK_ID_LEN + 1], char *expires, size_t expires_len, char *err, size_t errlen,
    int *is_user_error) __attribute__((warn_unused_result));

/*
 * Checks a token's grant before it is minted: with bindings (borrowed; NULL or empty: no
 * check), every tool in tools (borrowed) must be in cat and take every bound argument,
 * except code tools, which are bound through their input_tool; and each binding must name
 * an argument of a granted tool.  Returns 0, or -1 with the fault in msg.
 */
int tok_check_grant(const struct catalog *cat, json_t *tools, json_t *bindings, char *msg,
    size_t len) __attribute__((warn_unused_result));

/* Parses a ttl: "90", "90s", "5m", "1h".  Returns seconds, or -1. */
long long tok_parse_ttl(const char *s);

#endif
