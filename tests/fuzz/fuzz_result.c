/* fuzz_result.c: libFuzzer target for what a code tool's run gives back (gateway/code.c):
 * the limits a manifest sets, as the loader checks them and the sandbox gets them, and the
 * program's stdout and stderr as the result carries them.  Input: a limits JSON object, a
 * NUL, stdout, a NUL, stderr; a last byte below 4 also sets the truncation flags. */
#include <unistd.h>

#include "../../gateway/code.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char manifest[] =
    "{\"name\": \"f\", \"description\": \"d\", \"kind\": \"code\", \"arguments\": {\"type\": "
    "\"object\", \"properties\": {\"code\": {\"type\": \"string\", \"maxLength\": 9}}, "
    "\"required\": [\"code\"], \"additionalProperties\": false}, \"code\": {\"interpreter\": "
    "\"sh\", \"limits\": %s}}";

static char dir[64], file[96];

/* Loads the manifest with these limits; applies them when the loader accepts them. */
static void
limits(const char *text, size_t n)
{
	struct catalog *cat;
	struct sb_limits lim;
	char err[1024];
	json_t *obj;
	FILE *f;

	/* Only an object gets past the loader; the rest is not worth a file. */
	obj = json_loadb(text, n, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return;
	}
	json_decref(obj);
	if (dir[0] == '\0') {
		strlcpy(dir,
		    access("/dev/shm", W_OK) == 0 ? "/dev/shm/fuzz-result-XXXXXX"
						  : "/tmp/fuzz-result-XXXXXX",
		    sizeof(dir));
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(file, sizeof(file), "%s/f.json", dir);
	}
	if ((f = fopen(file, "w")) == NULL)
		abort();
	fprintf(f, "%.*s", (int)(strchr(manifest, '%') - manifest), manifest);
	fwrite(text, 1, n, f);
	fputs(strchr(manifest, '%') + 2, f);
	if (fclose(f) != 0)
		abort();
	if ((cat = tool_load(dir, NULL, err, sizeof(err))) == NULL)
		return;
	tool_limits(&cat->tools[0], &lim);
	if (lim.wall_ms < 1 || lim.cpu_ms < 1 || lim.mem_bytes < 1 || lim.pids < 1 ||
	    lim.stdout_max < 1 || lim.stderr_max < 1)
		abort();
	json_decref(limits_json(&lim));
	tool_catalog_free(cat);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nul;
	struct sb_result res;
	json_t *out, *back;
	char *text;
	size_t n;

	n = (nul = memchr(p, '\0', size)) != NULL ? (size_t)(nul - p) : size;
	limits(p, n);
	p = nul != NULL ? nul + 1 : end;

	memset(&res, 0, sizeof(res));
	res.out = (char *)(uintptr_t)p;
	res.out_len = (nul = memchr(p, '\0', (size_t)(end - p))) != NULL ? (size_t)(nul - p)
									 : (size_t)(end - p);
	p = nul != NULL ? nul + 1 : end;
	res.err = (char *)(uintptr_t)p;
	res.err_len = (size_t)(end - p);
	res.out_truncated = size > 0 && data[size - 1] < 4 && (data[size - 1] & 1);
	res.err_truncated = size > 0 && data[size - 1] < 4 && (data[size - 1] & 2);
	res.limit = SB_LIMIT_NONE;
	res.cpu_us = res.mem_peak = -1;
	/* Whatever the program wrote, the result is JSON that serializes and reads back. */
	if ((out = outcome_json(&res)) == NULL)
		abort();
	if ((text = json_dumps(out, JSON_COMPACT)) == NULL)
		abort();
	if ((back = json_loads(text, 0, NULL)) == NULL)
		abort();
	json_decref(back);
	free(text);
	json_decref(out);
	return 0;
}
