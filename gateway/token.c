/* token.c: token format, hashing, minting, and the admin credential file. */
#include <sys/stat.h>
#include <fcntl.h>
#include <pthread.h>
#include <sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "airlock/db.h"
#include "airlock/hex.h"
#include "airlock/log.h"
#include "airlock/token.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void
tok_b64url(const uint8_t in[32], char out[TOK_B64_LEN + 1])
{
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i + 3 <= 30; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
		out[o++] = b64url[v & 63];
	}
	/* The last two bytes make three characters. */
	v = (uint32_t)in[30] << 16 | (uint32_t)in[31] << 8;
	out[o++] = b64url[v >> 18 & 63];
	out[o++] = b64url[v >> 12 & 63];
	out[o++] = b64url[v >> 6 & 63];
	out[o] = '\0';
}

static void
hash_token(const char *token, uint8_t hash[32], char id[TOK_ID_LEN + 1])
{
	SHA2_CTX ctx;

	SHA256Init(&ctx);
	SHA256Update(&ctx, (const uint8_t *)token, strlen(token));
	SHA256Final(hash, &ctx);
	hex_encode(hash, TOK_ID_LEN / 2, id);
}

void
tok_generate(char token[TOK_LEN + 1], uint8_t hash[32], char id[TOK_ID_LEN + 1])
{
	uint8_t raw[32];

	arc4random_buf(raw, sizeof(raw));
	memcpy(token, TOK_PREFIX, 4);
	tok_b64url(raw, token + 4);
	explicit_bzero(raw, sizeof(raw));
	hash_token(token, hash, id);
}

int
tok_parse(const char *s, uint8_t hash[32], char id[TOK_ID_LEN + 1])
{
	size_t i;

	if (s == NULL || strncmp(s, TOK_PREFIX, 4) != 0 || strlen(s) != TOK_LEN)
		return -1;
	for (i = 4; i < TOK_LEN; i++)
		if (strchr(b64url, s[i]) == NULL)
			return -1;
	/* 43 characters carry 258 bits: the last one's low two bits must be zero. */
	if ((strchr(b64url, s[TOK_LEN - 1]) - b64url) & 3)
		return -1;
	hash_token(s, hash, id);
	return 0;
}

/*
 * Constant-time comparison.  DESIGN.md names libbsd's timingsafe_bcmp, but Debian 12's
 * libbsd 0.11 does not provide it, so this is the same loop.
 */
static int
timingsafe_differ(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *p = a, *q = b;
	uint8_t acc = 0;
	size_t i;

	for (i = 0; i < n; i++)
		acc |= p[i] ^ q[i];
	return acc != 0;
}

/* The admin credential, cached while its file is unchanged. */
static pthread_mutex_t admin_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	dev_t dev;
	ino_t ino;
	off_t size;
	mode_t mode;
	struct timespec mtime;
	char value[256];
	size_t len;
} admin;

static int
is_same_file(const struct stat *st)
{
	return st->st_dev == admin.dev && st->st_ino == admin.ino && st->st_size == admin.size &&
	    st->st_mode == admin.mode && st->st_mtim.tv_sec == admin.mtime.tv_sec &&
	    st->st_mtim.tv_nsec == admin.mtime.tv_nsec;
}

static void
reload_admin(const char *path, const struct stat *st)
{
	struct stat fst;
	char buf[256];
	ssize_t n;
	int fd;

	admin.len = 0;
	explicit_bzero(admin.value, sizeof(admin.value));
	admin.dev = st->st_dev;
	admin.ino = st->st_ino;
	admin.size = st->st_size;
	admin.mode = st->st_mode;
	admin.mtime = st->st_mtim;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return;
	/* airlockd refuses to start with a key others may read or write; a replacement made
	 * so is refused too, until its mode is fixed. */
	if (fstat(fd, &fst) == -1 || (fst.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		close(fd);
		log_warn("admin key file %s is open to group or others: the admin credential is "
			 "refused until it is chmod 600",
		    path);
		return;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	/* Only a credential of the expected shape and a useful length counts. */
	if (strncmp(buf, TOK_ADMIN_PREFIX, strlen(TOK_ADMIN_PREFIX)) == 0 &&
	    strlen(buf) >= strlen(TOK_ADMIN_PREFIX) + 32) {
		admin.len = strlcpy(admin.value, buf, sizeof(admin.value));
	}
	explicit_bzero(buf, sizeof(buf));
}

int
tok_is_admin(const char *path, const char *presented)
{
	struct stat st;
	size_t plen;
	int match = 0;

	if (path == NULL || path[0] == '\0' || presented == NULL ||
	    strncmp(presented, TOK_ADMIN_PREFIX, strlen(TOK_ADMIN_PREFIX)) != 0)
		return 0;
	plen = strlen(presented);
	pthread_mutex_lock(&admin_lock);
	if (stat(path, &st) == 0) {
		if (!is_same_file(&st))
			reload_admin(path, &st);
		match = admin.len != 0 && plen == admin.len &&
		    !timingsafe_differ(admin.value, presented, plen);
	}
	pthread_mutex_unlock(&admin_lock);
	return match;
}

long long
tok_parse_ttl(const char *s)
{
	const char *errstr;
	char num[32];
	long long n, unit = 1;
	size_t len;

	if (s == NULL || (len = strlen(s)) == 0 || len >= sizeof(num))
		return -1;
	memcpy(num, s, len + 1);
	switch (num[len - 1]) {
	case 's':
		num[--len] = '\0';
		break;
	case 'm':
		unit = 60;
		num[--len] = '\0';
		break;
	case 'h':
		unit = 3600;
		num[--len] = '\0';
		break;
	}
	n = strtonum(num, 1, TOK_MAX_TTL, &errstr);
	if (errstr != NULL || n * unit > TOK_MAX_TTL)
		return -1;
	return n * unit;
}

static int
is_tool_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 64 || s[0] < 'a' || s[0] > 'z')
		return 0;
	for (i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

int
tok_check_grant(const struct catalog *cat, json_t *tools, json_t *bindings, char *msg, size_t len)
{
	const struct tool *t;
	const char *k;
	json_t *name, *v;
	size_t i;
	int is_used;

	if (json_object_size(bindings) == 0)
		return 0;
	json_array_foreach (tools, i, name)
		if (tool_find(cat, json_string_value(name)) == NULL) {
			snprintf(msg, len,
			    "tool %.64s is not in the catalog, so the bindings cannot "
			    "be checked against it",
			    json_string_value(name));
			return -1;
		}
	/* A binding no granted tool takes would bind nothing. */
	json_object_foreach (bindings, k, v) {
		is_used = 0;
		json_array_foreach (tools, i, name) {
			t = tool_find(cat, json_string_value(name));
			is_used |= t->kind != TOOL_CODE &&
			    json_object_get(json_object_get(t->schema, "properties"), k) != NULL;
		}
		if (!is_used) {
			snprintf(msg, len,
			    "binding %.64s names no argument of a granted tool "
			    "(code tools are bound through their input_tool)",
			    k);
			return -1;
		}
	}
	/* A tool without a bound argument could not be held to the binding.  Code tools
	 * reach data only through their input_tool, which is checked when called. */
	json_array_foreach (tools, i, name) {
		t = tool_find(cat, json_string_value(name));
		if (t->kind == TOOL_CODE)
			continue;
		json_object_foreach (bindings, k, v)
			if (json_object_get(json_object_get(t->schema, "properties"), k) == NULL) {
				snprintf(msg, len,
				    "tool %s takes no argument %.64s, so it cannot "
				    "honour that binding: grant it to another token",
				    t->name, k);
				return -1;
			}
	}
	return 0;
}

/* Whether s can name a person in records and lists: 1 to 128 bytes of UTF-8 text with no
 * control characters (a tab or a newline would break a list's columns). */
static int
is_person_name(const char *s)
{
	size_t i, n = strlen(s);
	json_t *utf8;

	if (n == 0 || n > 128 || (utf8 = json_string(s)) == NULL)
		return 0;
	json_decref(utf8);
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* Checks spec; returns 0, or -1 with the fault in err. */
static int
check_spec(const struct tok_spec *spec, char *err, size_t errlen)
{
	const char *k;
	json_t *v;
	size_t i;

	if (spec->tenant == NULL || spec->tenant[0] == '\0') {
		snprintf(err, errlen, "a tenant is required");
		return -1;
	}
	if (spec->approver != NULL) {
		/* An approver decides on plans; it calls nothing itself. */
		if (json_array_size(spec->tools) > 0 || json_object_size(spec->bindings) > 0 ||
		    spec->max_calls != 0 || spec->is_preview_only || spec->can_revert) {
			snprintf(err, errlen,
			    "an approver token grants no tools, bindings, quota, "
			    "revert or preview");
			return -1;
		}
		if (!is_person_name(spec->approver)) {
			snprintf(err, errlen,
			    "approver must name a person: 1 to 128 printable "
			    "characters");
			return -1;
		}
		if (spec->ttl < 1 || spec->ttl > TOK_MAX_TTL) {
			snprintf(err, errlen, "ttl must be 1 to %d seconds", TOK_MAX_TTL);
			return -1;
		}
		if (spec->task != NULL && (strlen(spec->task) == 0 || strlen(spec->task) > 128)) {
			snprintf(err, errlen, "task must be 1 to 128 characters");
			return -1;
		}
		return 0;
	}
	if (!json_is_array(spec->tools) || json_array_size(spec->tools) == 0 ||
	    json_array_size(spec->tools) > 256) {
		snprintf(err, errlen, "tools must name 1 to 256 tools");
		return -1;
	}
	json_array_foreach (spec->tools, i, v)
		if (!json_is_string(v) || !is_tool_name(json_string_value(v))) {
			snprintf(err, errlen, "tool names match [a-z][a-z0-9_]{0,63}");
			return -1;
		}
	if (spec->bindings != NULL) {
		if (!json_is_object(spec->bindings)) {
			snprintf(err, errlen, "bindings must be an object of argument: value");
			return -1;
		}
		json_object_foreach (spec->bindings, k, v)
			if (!is_tool_name(k) || !json_is_string(v) ||
			    json_string_length(v) > 1024) {
				snprintf(err, errlen,
				    "binding %.64s: names an argument and a value", k);
				return -1;
			}
	}
	if (json_object_size(spec->bindings) > 0) {
		if (spec->catalog == NULL) {
			snprintf(err, errlen,
			    "bindings are checked against the tool catalog, "
			    "and none was given");
			return -1;
		}
		if (tok_check_grant(spec->catalog, spec->tools, spec->bindings, err, errlen) == -1)
			return -1;
	}
	if (spec->ttl < 1 || spec->ttl > TOK_MAX_TTL) {
		snprintf(err, errlen, "ttl must be 1 to %d seconds", TOK_MAX_TTL);
		return -1;
	}
	if (spec->max_calls < 0 || spec->max_calls > 1000000000) {
		snprintf(err, errlen, "max_calls must be 1 to 1000000000");
		return -1;
	}
	if (spec->task != NULL && (strlen(spec->task) == 0 || strlen(spec->task) > 128)) {
		snprintf(err, errlen, "task must be 1 to 128 characters");
		return -1;
	}
	return 0;
}

int
tok_mint(PGconn *conn, const struct tok_spec *spec, char token[TOK_LEN + 1],
    char id[TOK_ID_LEN + 1], char *expires, size_t expires_len, char *err, size_t errlen,
    int *is_user_error)
{
	/* The operator's function checks the spec again and stores the token with its mint's
	 * call id; no row when there is no such tenant. */
	static const char sql[] =
	    "SELECT e AS expires_at FROM airlock.mint_token($11::uuid, $1, $2, $10, $3, $4::json, $5::jsonb,"
	    " $6::boolean, $7::boolean, $8::integer, $9::integer) e";
	static const char approver_sql[] =
	    "SELECT e AS expires_at FROM airlock.mint_approver_token($6::uuid, $1, $2, $5, $3, $4,"
	    " $7::integer) e";
	char hexhash[65], calls[24], ttl[24], *tools = NULL, *bindings = NULL;
	const char *values[11];
	uint8_t hash[32];
	PGresult *res = NULL;
	int rc = -1;

	*is_user_error = 0;
	if (check_spec(spec, err, errlen) == -1) {
		*is_user_error = 1;
		return -1;
	}
	tok_generate(token, hash, id);
	hex_encode(hash, 32, hexhash);
	tools = spec->tools != NULL ? json_dumps(spec->tools, JSON_COMPACT) : strdup("[]");
	bindings = spec->bindings ? json_dumps(spec->bindings, JSON_COMPACT) : strdup("{}");
	if (tools == NULL || bindings == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	snprintf(calls, sizeof(calls), "%lld", spec->max_calls);
	snprintf(ttl, sizeof(ttl), "%lld", spec->ttl);
	values[0] = id;
	values[1] = hexhash;
	values[2] = spec->task ? spec->task : id;
	values[3] = tools;
	values[4] = bindings;
	values[5] = spec->can_revert ? "true" : "false";
	values[6] = spec->is_preview_only ? "true" : "false";
	values[7] = calls;
	values[8] = ttl;
	values[9] = spec->tenant;
	values[10] = spec->mint_call;
	if (spec->approver != NULL) {
		values[3] = spec->approver;
		values[4] = spec->tenant;
		values[5] = spec->mint_call;
		values[6] = ttl;
		res = PQexecParams(conn, approver_sql, 7, NULL, values, NULL, NULL, 0);
	} else
		res = PQexecParams(conn, sql, 11, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "cannot store the token: %s",
		    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
			? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
			: PQerrorMessage(conn));
		goto out;
	}
	if (PQntuples(res) != 1) {
		snprintf(err, errlen, "no tenant named %s", spec->tenant);
		*is_user_error = 1;
		goto out;
	}
	strlcpy(expires, db_text(res, 0, "expires_at"), expires_len);
	rc = 0;
out:
	if (rc == -1)
		explicit_bzero(token, TOK_LEN + 1);
	PQclear(res);
	free(tools);
	free(bindings);
	return rc;
}
