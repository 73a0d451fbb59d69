/* fuzz_proxy.c: libFuzzer target for the egress proxy's request parser (sandbox/proxy.c):
 * the input is what a sandboxed program sends, read from a socket pair.  Only "localhost:80"
 * is listed, which resolves from /etc/hosts to a restricted address: nothing is dialled. */
#include "../../sandbox/proxy.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
count(void *arg, const struct sb_egress *ev)
{
	/* Every request ends in exactly one report; allowed would mean it was dialled. */
	if (ev->is_allowed)
		abort();
	(*(int *)arg)++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sb_proxy p;
	struct conn c;
	char host[256], sink[512];
	unsigned port;
	int fds[2], reports = 0;

	if (size > HEAD_MAX + 64)
		return 0;
	/* The allowlist's own parser, on the same bytes. */
	{
		char entry[320];

		if (size < sizeof(entry)) {
			memcpy(entry, data, size);
			entry[size] = '\0';
			if (sb_allow_parse(entry, host, sizeof(host), &port) == 0 &&
			    (port < 1 || port > 65535 || host[0] == '\0'))
				abort();
		}
	}
	if (p.nallow == 0) {
		pthread_mutex_init(&p.lock, NULL);
		pthread_mutex_init(&p.report_lock, NULL);
		if (sb_allow_parse("localhost:80", p.allow[0].host, sizeof(p.allow[0].host),
			&p.allow[0].port) == -1)
			abort();
		p.nallow = 1;
		p.fn = count;
	}
	p.arg = &reports;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == -1)
		abort();
	if (size > 0 && send_all(fds[0], (const char *)data, size) == -1)
		abort();
	shutdown(fds[0], SHUT_WR);
	memset(&c, 0, sizeof(c));
	c.p = &p;
	c.client = fds[1];
	c.upstream = -1;
	serve(&c);
	if (reports != 1 || c.upstream != -1)
		abort();
	close(fds[1]);
	while (read(fds[0], sink, sizeof(sink)) > 0)
		;
	close(fds[0]);
	return 0;
}
