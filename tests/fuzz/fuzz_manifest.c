/* fuzz_manifest.c: libFuzzer target for the tool manifest loader (gateway/tool.c), without
 * the database: the input is one manifest file in a catalog of its own. */
#include <sys/stat.h>

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "airlock/tool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], file[96];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct catalog *cat;
	char err[1024];
	int fd;

	if (dir[0] == '\0') {
		/* /dev/shm when there is one: a file is written for every input. */
		strlcpy(dir,
		    access("/dev/shm", W_OK) == 0 ? "/dev/shm/fuzz-manifest-XXXXXX"
						  : "/tmp/fuzz-manifest-XXXXXX",
		    sizeof(dir));
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(file, sizeof(file), "%s/tool.json", dir);
	}
	if ((fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		abort();
	if (write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	cat = tool_load(dir, NULL, err, sizeof(err));
	/* Refused or loaded, never both: a refusal always says why. */
	if (cat == NULL && err[0] == '\0')
		abort();
	if (cat != NULL && cat->n != 1)
		abort();
	tool_catalog_free(cat);
	return 0;
}
