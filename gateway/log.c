/* log.c: one JSON object per line on stderr, written whole so threads never interleave. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "airlock/log.h"

static enum log_level min_level = LOG_LVL_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
log_set_level(enum log_level level)
{
	min_level = level;
}

void
log_json(enum log_level level, json_t *obj)
{
	struct timespec ts;
	struct tm tm;
	char stamp[64];
	json_t *head;
	const size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(6);
	char buf[2048], *big = NULL, *line = buf;
	size_t n, off;
	ssize_t w;

	if (obj == NULL)
		return;
	if (level < min_level) {
		json_decref(obj);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    (int)(ts.tv_nsec / 1000000) % 1000);
	/* ts and level first: jansson keeps insertion order. */
	head = json_pack("{s:s, s:s}", "ts", stamp, "level", level_names[level]);
	json_object_update(head, obj);
	json_decref(obj);
	/* Most lines fit the stack buffer: no allocation for them. */
	n = json_dumpb(head, buf, sizeof(buf) - 1, flags);
	if (n >= sizeof(buf) - 1 && n > 0 && (big = malloc(n + 1)) != NULL &&
	    json_dumpb(head, big, n, flags) == n)
		line = big;
	json_decref(head);
	if (n == 0 || (line == buf && n >= sizeof(buf) - 1)) {
		free(big);
		return;
	}
	/* One write(2) for the line and its newline: stdio's unbuffered stderr would make two
	 * or more system calls of it, and the access log is a line per request. */
	line[n++] = '\n';
	pthread_mutex_lock(&log_lock);
	for (off = 0; off < n;) {
		w = write(STDERR_FILENO, line + off, n - off);
		if (w > 0)
			off += (size_t)w;
		else if (w == 0 || errno != EINTR)
			break;
	}
	pthread_mutex_unlock(&log_lock);
	free(big);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_json(level, json_pack("{s:s}", "msg", buf));
}

void
log_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	n = strlen(err);
	while (n > 0 && err[n - 1] == '\n')
		err[--n] = '\0';
}
