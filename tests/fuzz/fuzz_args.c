/* fuzz_args.c: libFuzzer target for the argument checks (gateway/tool.c) and the token parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/token.h"
#include "airlock/tool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct catalog *cat;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char msg[256], *text, id[TOK_ID_LEN + 1], **values;
	const char *bad;
	uint8_t hash[32];
	json_t *args, *checked;
	size_t i;

	if (cat == NULL) {
		/* The demo catalog, checked without a database. */
		const char *dir = getenv("AIRLOCK_FUZZ_TOOLS");

		cat = tool_load(dir ? dir : "tools", NULL, msg, sizeof(msg));
		if (cat == NULL) {
			fprintf(stderr, "fuzz_args: %s\n", msg);
			abort();
		}
	}
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	(void)tok_parse(text, hash, id);
	args = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	for (i = 0; args != NULL && i < cat->n; i++) {
		checked = tool_check_args(&cat->tools[i], args, &bad, msg, sizeof(msg));
		if (checked != NULL && cat->tools[i].sql != NULL &&
		    (values = calloc(cat->tools[i].n_params + 1, sizeof(*values))) != NULL) {
			if (tool_bind(&cat->tools[i], checked, values) == 0)
				tool_unbind(&cat->tools[i], values);
			free(values);
		}
		json_decref(checked);
	}
	json_decref(args);
	free(text);
	return 0;
}
