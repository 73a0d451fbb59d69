/* test_log.c: gateway/log.c: each line whole, with its newline, short or longer than the
 * buffer it is written from. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "airlock/log.h"
#include "tap.h"

int
main(void)
{
	char path[] = "/tmp/test_log.XXXXXX", *big, *text = NULL;
	size_t len = 0;
	json_t *line;
	FILE *f;
	int fd, saved, n = 0;

	if ((fd = mkstemp(path)) == -1 || (saved = dup(STDERR_FILENO)) == -1)
		return 1;
	big = malloc(10000);
	memset(big, 'y', 9999);
	big[9999] = '\0';
	dup2(fd, STDERR_FILENO);
	log_json(LOG_LVL_INFO, json_pack("{s:s}", "msg", "short"));
	log_json(LOG_LVL_INFO, json_pack("{s:s}", "msg", big));
	log_json(LOG_LVL_DEBUG, json_pack("{s:s}", "msg", "below the level"));
	log_json(LOG_LVL_WARN, json_pack("{s:s}", "msg", "last"));
	dup2(saved, STDERR_FILENO);
	f = fdopen(fd, "r");
	rewind(f);
	while (getline(&text, &len, f) != -1) {
		n++;
		ok(text[strlen(text) - 1] == '\n', "line %d ends with its newline", n);
		line = json_loads(text, 0, NULL);
		ok(line != NULL && json_string_value(json_object_get(line, "ts")) != NULL &&
			json_string_value(json_object_get(line, "msg")) != NULL,
		    "line %d is a whole "
		    "JSON object with ts and msg",
		    n);
		if (n == 2)
			ok(line != NULL &&
				strcmp(json_string_value(json_object_get(line, "msg")), big) == 0,
			    "a line longer than the buffer is written whole");
		json_decref(line);
	}
	ok(n == 3, "three lines: the one below the level is left out (%d)", n);
	fclose(f);
	unlink(path);
	free(text);
	free(big);
	return tap_done();
}
