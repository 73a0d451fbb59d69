/* tool_fixture.h: a tool catalog in a scratch directory, for the unit tests of gateway/tool*.c. */
#ifndef AIRLOCK_TOOL_FIXTURE_H
#define AIRLOCK_TOOL_FIXTURE_H

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "airlock/tool.h"
#include "tap.h"

static char tmpdir[PATH_MAX];

/* Empties tmpdir. */
static void
clear_dir(void)
{
	struct dirent *de;
	char path[PATH_MAX + 300];
	DIR *d = opendir(tmpdir);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	closedir(d);
}

static void
write_file(const char *fname, const char *text)
{
	char path[PATH_MAX + 300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, fname);
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

/* Loads a directory holding just fname with text; returns the catalog or NULL (err set). */
static struct catalog *
load_one(const char *fname, const char *text, char *err, size_t errlen)
{
	clear_dir();
	write_file(fname, text);
	err[0] = '\0';
	return tool_load(tmpdir, NULL, err, errlen);
}

/* A manifest from pieces: kind, arguments schema, statement (or the code object). */
static char *
manifest(const char *name, const char *kind, const char *args, const char *statement)
{
	char *s = NULL;

	if (strcmp(kind, "code") == 0)
		asprintf(&s,
		    "{\"name\":\"%s\",\"description\":\"d\",\"kind\":\"code\","
		    "\"arguments\":%s,\"code\":%s}",
		    name, args, statement);
	else {
		json_t *st = json_string(statement);
		char *q = json_dumps(st, JSON_ENCODE_ANY);

		asprintf(&s,
		    "{\"name\":\"%s\",\"description\":\"d\",\"kind\":\"%s\","
		    "\"arguments\":%s,\"statement\":%s}",
		    name, kind, args, q);
		free(q);
		json_decref(st);
	}
	return s;
}

#define NOARGS "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}"

/* Expects the manifest text in t.json to be refused with a message containing want. */
static void
refused(const char *text, const char *want, const char *what)
{
	char err[2048];
	struct catalog *cat = load_one("t.json", text, err, sizeof(err));

	ok(cat == NULL && strstr(err, want) != NULL && strstr(err, "/t.json: ") != NULL,
	    "refused: %s (%s)", what, err);
	tool_catalog_free(cat);
}

/* Expects a manifest for kind with these arguments and statement to be refused. */
static void
refused_parts(const char *kind, const char *args, const char *statement, const char *want,
    const char *what)
{
	char *m = manifest("t", kind, args, statement);

	refused(m, want, what);
	free(m);
}

/* The catalog most argument tests use. */
static const char *const args_manifest =
    "{\"name\":\"t\",\"description\":\"d\",\"kind\":\"read\",\"arguments\":{"
    "\"type\":\"object\",\"properties\":{"
    "\"customer_id\":{\"type\":\"integer\",\"minimum\":1},"
    "\"status\":{\"type\":\"string\",\"enum\":[\"open\",\"paid\",\"void\"]},"
    "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100,\"default\":20},"
    "\"query\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":5},"
    "\"code\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{3}$\"},"
    "\"ratio\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1.5},"
    "\"flag\":{\"type\":\"boolean\"},"
    "\"note\":{\"type\":[\"string\",\"null\"],\"maxLength\":10},"
    "\"input\":{\"type\":\"object\"},"
    "\"list\":{\"type\":\"array\",\"default\":[1,2]},"
    "\"secret\":{\"type\":\"string\",\"sensitive\":true,\"description\":\"s\"},"
    "\"word\":{\"type\":\"string\",\"pattern\":\"b\"}"
    "},\"required\":[\"customer_id\"],\"additionalProperties\":false},"
    "\"statement\":\"SELECT $customer_id, $status, $limit\"}";

/* Makes the scratch directory, /tmp/<name>.XXXXXX; exits when it cannot. */
static void
fixture_open(const char *name)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/%s.XXXXXX", name);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
}

/* Removes the scratch directory and what is left in it. */
static void
fixture_close(void)
{
	clear_dir();
	rmdir(tmpdir);
}

/* The argument test manifest's one tool, in cat (freed by the caller); exits when it does not
 * load, since every check after it would fail for that one reason.  test_tool.c loads it as
 * a check of its own instead, hence unused there. */
static __attribute__((unused)) const struct tool *
args_tool(struct catalog **cat)
{
	char err[1024];

	*cat = load_one("t.json", args_manifest, err, sizeof(err));
	if (*cat == NULL || (*cat)->n != 1) {
		printf("Bail out! the argument test manifest does not load: %s\n", err);
		exit(1);
	}
	return &(*cat)->tools[0];
}

#endif
