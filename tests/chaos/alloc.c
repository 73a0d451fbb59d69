/*
 * alloc.c: allocation-failure injection for the chaos build of airlockd (make chaos).
 *
 * The chaos airlockd is linked with -Wl,--wrap for every allocating libc function the
 * gateway's own code calls, so each of those calls lands here; jansson's allocations come
 * here too, through its allocator hook.  What happens inside the shared libraries
 * (libpq, libmicrohttpd, libc's own buffers) is not seen: --wrap only rewrites the
 * references of the objects being linked.
 *
 * Nothing is counted or failed until a test says so, over a Unix socket whose path is in
 * AIRLOCK_CHAOS_SOCKET (start-up allocations are never failed).  One command per line,
 * one answer line each:
 *
 *   count         count from zero, fail nothing                   -> "ok"
 *   fail N [K]    count from zero; fail the Nth counted allocation and the K-1 after it
 *                 (K = 1 when left out; K = 0: every one from the Nth on)  -> "ok"
 *   off           stop counting and failing                       -> "ok"
 *   stat          -> "count C failed F spared S"
 *
 * With AIRLOCK_CHAOS_TRACE set, each failed allocation writes its stack to stderr (the
 * addresses resolve with addr2line -e build/chaos/airlockd), to find the code at fault.
 *
 * jansson 2.14's parser ignores a failed allocation while it saves a token's text
 * (lex_save; upstream issue akheron/jansson#362), then copies the string past its buffer
 * or asserts.  That is jansson's defect, not the gateway's, and no caller can guard it,
 * so inside json_loadb/json_loads only the parser's first allocation may fail (its buffer
 * at start, a failure jansson handles); the later ones are counted and spared ("spared"
 * in stat).
 *
 * The counter is global across threads: a request's allocations on the HTTP thread, the
 * database worker and the audit writer are counted in the order they happen, and so is
 * whatever a background thread (the sealer) allocates meanwhile.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

void *__real_malloc(size_t);
void *__real_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
void *__real_reallocarray(void *, size_t, size_t);
char *__real_strdup(const char *);
char *__real_strndup(const char *, size_t);
int __real_vasprintf(char **, const char *, va_list);
FILE *__real_open_memstream(char **, size_t *);

void *__wrap_malloc(size_t);
void *__wrap_calloc(size_t, size_t);
void *__wrap_realloc(void *, size_t);
void *__wrap_reallocarray(void *, size_t, size_t);
char *__wrap_strdup(const char *);
char *__wrap_strndup(const char *, size_t);
int __wrap_vasprintf(char **, const char *, va_list);
int __wrap_asprintf(char **, const char *, ...) __attribute__((format(printf, 2, 3)));
FILE *__wrap_open_memstream(char **, size_t *);

static atomic_int is_counting;
static atomic_ulong counted;		/* allocations counted since the last command */
static atomic_ulong failed;		/* of those, failed */
static atomic_ulong fail_from;		/* the first to fail (1-based); 0: none */
static atomic_ulong fail_until;		/* the last to fail; 0: every one from fail_from */
static atomic_ulong spared;		/* due to fail, but inside jansson's parser */
static int is_tracing;
static _Thread_local int parse_depth;	/* inside json_loadb/json_loads */
static _Thread_local unsigned long parse_allocs;

/* Whether this allocation is to fail.  Called once per allocation attempt. */
static int
should_fail(void)
{
	unsigned long n, from, until;

	if (!atomic_load_explicit(&is_counting, memory_order_relaxed))
		return 0;
	n = atomic_fetch_add(&counted, 1) + 1;
	from = atomic_load(&fail_from);
	until = atomic_load(&fail_until);
	if (parse_depth > 0 && parse_allocs++ > 0) {
		if (from != 0 && n >= from && (until == 0 || n <= until))
			atomic_fetch_add(&spared, 1);
		return 0;
	}
	if (from == 0 || n < from || (until != 0 && n > until))
		return 0;
	atomic_fetch_add(&failed, 1);
	if (is_tracing) {
		void *frames[24];
		char head[64];
		int len;

		len = snprintf(head, sizeof(head), "chaos: allocation %lu fails here:\n", n);
		if (write(2, head, (size_t)len) == -1)
			return 1;
		backtrace_symbols_fd(frames, backtrace(frames, 24), 2);
	}
	return 1;
}

void *
__wrap_malloc(size_t size)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_malloc(size);
}

void *
__wrap_calloc(size_t n, size_t size)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_calloc(n, size);
}

void *
__wrap_realloc(void *p, size_t size)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;	/* p stays the caller's, as realloc leaves it */
	}
	return __real_realloc(p, size);
}

void *
__wrap_reallocarray(void *p, size_t n, size_t size)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_reallocarray(p, n, size);
}

char *
__wrap_strdup(const char *s)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_strdup(s);
}

char *
__wrap_strndup(const char *s, size_t n)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_strndup(s, n);
}

int
__wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
	if (should_fail()) {
		errno = ENOMEM;
		return -1;
	}
	return __real_vasprintf(out, fmt, ap);
}

int
__wrap_asprintf(char **out, const char *fmt, ...)
{
	va_list ap;
	int rc;

	if (should_fail()) {
		errno = ENOMEM;
		return -1;
	}
	va_start(ap, fmt);
	rc = __real_vasprintf(out, fmt, ap);
	va_end(ap);
	return rc;
}

FILE *
__wrap_open_memstream(char **buf, size_t *len)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_open_memstream(buf, len);
}

json_t *__real_json_loadb(const char *, size_t, size_t, json_error_t *);
json_t *__real_json_loads(const char *, size_t, json_error_t *);
json_t *__wrap_json_loadb(const char *, size_t, size_t, json_error_t *);
json_t *__wrap_json_loads(const char *, size_t, json_error_t *);

json_t *
__wrap_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *error)
{
	json_t *v;

	parse_depth++;
	parse_allocs = 0;
	v = __real_json_loadb(buf, len, flags, error);
	parse_depth--;
	return v;
}

json_t *
__wrap_json_loads(const char *text, size_t flags, json_error_t *error)
{
	json_t *v;

	parse_depth++;
	parse_allocs = 0;
	v = __real_json_loads(text, flags, error);
	parse_depth--;
	return v;
}

/* jansson's allocator: the wrapped malloc (this file is linked with --wrap too). */
static void *
json_counted_malloc(size_t size)
{
	return malloc(size);
}

/* Answers one command line; writes the answer (a line) into out. */
static void
command(char *line, char *out, size_t len)
{
	unsigned long n = 0, k = 1;
	char *end;

	line[strcspn(line, "\r\n")] = '\0';
	if (strcmp(line, "stat") == 0) {
		snprintf(out, len, "count %lu failed %lu spared %lu\n", atomic_load(&counted),
		    atomic_load(&failed), atomic_load(&spared));
		return;
	}
	if (strcmp(line, "off") == 0) {
		atomic_store(&is_counting, 0);
		atomic_store(&fail_from, 0);
		snprintf(out, len, "ok\n");
		return;
	}
	if (strcmp(line, "count") == 0) {
		atomic_store(&is_counting, 0);
		atomic_store(&fail_from, 0);
	} else if (strncmp(line, "fail ", 5) == 0) {
		errno = 0;
		n = strtoul(line + 5, &end, 10);
		if (*end == ' ')
			k = strtoul(end + 1, &end, 10);
		if (errno != 0 || *end != '\0' || n == 0) {
			snprintf(out, len, "error: fail N [K], N >= 1\n");
			return;
		}
		atomic_store(&is_counting, 0);
	} else {
		snprintf(out, len, "error: unknown command\n");
		return;
	}
	atomic_store(&counted, 0);
	atomic_store(&failed, 0);
	atomic_store(&spared, 0);
	atomic_store(&fail_until, k == 0 ? 0 : n + k - 1);
	atomic_store(&fail_from, n);
	atomic_store(&is_counting, 1);
	snprintf(out, len, "ok\n");
}

/* The control thread: one connection at a time, one command per line.  It allocates
 * nothing, so it never fails itself. */
static void *
control(void *arg)
{
	int lfd = (int)(intptr_t)arg, fd;
	char line[128], out[128];
	size_t used;
	ssize_t n;

	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;
		}
		used = 0;
		while ((n = read(fd, line + used, sizeof(line) - 1 - used)) > 0) {
			char *nl;

			used += (size_t)n;
			line[used] = '\0';
			while ((nl = strchr(line, '\n')) != NULL) {
				*nl = '\0';
				command(line, out, sizeof(out));
				if (write(fd, out, strlen(out)) == -1)
					break;
				used -= (size_t)(nl + 1 - line);
				memmove(line, nl + 1, used + 1);
			}
			if (used == sizeof(line) - 1)
				used = 0;	/* an overlong line: dropped */
		}
		close(fd);
	}
}

/* Before main: jansson's allocator, and the control socket when asked for.  The control
 * thread starts with every signal blocked, so the daemon's signals stay the main
 * thread's. */
__attribute__((constructor)) static void
chaos_init(void)
{
	struct sockaddr_un sun;
	const char *path = getenv("AIRLOCK_CHAOS_SOCKET");
	sigset_t all, old;
	pthread_t t;
	int fd;

	json_set_alloc_funcs(json_counted_malloc, free);
	if (getenv("AIRLOCK_CHAOS_TRACE") != NULL) {
		void *frame;

		backtrace(&frame, 1);	/* its first call loads libgcc, which allocates */
		is_tracing = 1;
	}
	if (path == NULL || path[0] == '\0')
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "chaos: AIRLOCK_CHAOS_SOCKET too long\n");
		_exit(70);
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 || listen(fd, 4) == -1) {
		perror("chaos: control socket");
		_exit(70);
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&t, NULL, control, (void *)(intptr_t)fd) != 0) {
		fprintf(stderr, "chaos: cannot start the control thread\n");
		_exit(70);
	}
	pthread_detach(t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}
