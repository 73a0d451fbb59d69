/* Sandbox egress: the allowlist proxy outside the sandbox and the forwarder inside it. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "airlock/proxy.h"

#define HEAD_MAX 8192
#define CONN_MAX 32
#define DIAL_TIMEOUT_MS 10000
#define HEAD_TIMEOUT_MS 10000

struct allow_entry {
	char host[256];
	unsigned port;
	int family; /* AF_INET or AF_INET6 when host is an address literal, else 0 */
	unsigned char addr[16];
};

struct conn {
	struct sb_proxy *p;
	pthread_t thread;
	int is_used;
	int is_done;
	int client;
	int upstream;
};

struct sb_proxy {
	struct allow_entry allow[SB_ALLOW_MAX];
	size_t nallow;
	sb_egress_fn *fn;
	void *arg;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd;
	int stop_pipe[2];
	int is_stopping;
	int has_thread;
	pthread_t thread;
	pthread_mutex_t lock;	     /* guards conns and is_stopping */
	pthread_mutex_t report_lock; /* one callback at a time */
	struct conn conns[CONN_MAX];
};

int
sb_allow_parse(const char *entry, char *host, size_t hostlen, unsigned *port)
{
	const char *colon, *h = entry;
	size_t hl;
	const char *errstr;
	long long pn;
	size_t i;

	if (entry[0] == '[') {
		const char *close = strchr(entry, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		h = entry + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		if ((colon = strrchr(entry, ':')) == NULL ||
		    memchr(entry, ':', (size_t)(colon - entry)) != NULL)
			return -1;
		hl = (size_t)(colon - entry);
	}
	if (hl == 0 || hl >= hostlen || hl > 253)
		return -1;
	for (i = 0; i < hl; i++) {
		unsigned char c = (unsigned char)h[i];

		if (!(isalnum(c) || c == '.' || c == '-' || c == '_' || c == ':'))
			return -1;
		host[i] = (char)tolower(c);
	}
	host[hl] = '\0';
	if (entry[0] != '[' && strchr(host, ':') != NULL)
		return -1;
	pn = strtonum(colon + 1, 1, 65535, &errstr);
	if (errstr != NULL)
		return -1;
	*port = (unsigned)pn;
	return 0;
}

/* Loopback, private, link-local (cloud metadata too), shared, multicast and reserved. */
static int
is_restricted_v4(const unsigned char *a)
{
	return a[0] == 0 || a[0] == 10 || a[0] == 127 || a[0] >= 224 ||
	    (a[0] == 100 && (a[1] & 0xC0) == 64) || (a[0] == 169 && a[1] == 254) ||
	    (a[0] == 172 && (a[1] & 0xF0) == 16) || (a[0] == 192 && a[1] == 168) ||
	    (a[0] == 192 && a[1] == 0 && (a[2] == 0 || a[2] == 2)) ||
	    (a[0] == 198 && (a[1] & 0xFE) == 18) || (a[0] == 198 && a[1] == 51 && a[2] == 100) ||
	    (a[0] == 203 && a[1] == 0 && a[2] == 113);
}

static int
is_restricted(int family, const unsigned char *a)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF };
	static const unsigned char zero[12];
	size_t i;
	int is_zero = 1;

	if (family == AF_INET)
		return is_restricted_v4(a);
	if (memcmp(a, mapped, 12) == 0)
		return is_restricted_v4(a + 12);
	if (memcmp(a, zero, 12) == 0) /* ::, ::1 and the old v4-compatible form */
		return 1;
	for (i = 0; i < 16; i++)
		if (a[i] != 0)
			is_zero = 0;
	return is_zero || (a[0] & 0xFE) == 0xFC || (a[0] == 0xFE && (a[1] & 0xC0) == 0x80) ||
	    a[0] == 0xFF || (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0D && a[3] == 0xB8) ||
	    (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xFF && a[3] == 0x9B);
}

static void
report(struct sb_proxy *p, const char *host, unsigned port, const char *address, int is_allowed,
    const char *reason)
{
	struct sb_egress ev = { host, port, address, is_allowed, reason };

	if (p->fn == NULL)
		return;
	pthread_mutex_lock(&p->report_lock);
	p->fn(p->arg, &ev);
	pthread_mutex_unlock(&p->report_lock);
}

static int
send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void
answer(int fd, int code, const char *text)
{
	char buf[256];
	int n;

	n = snprintf(buf, sizeof(buf),
	    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
	    code, text, strlen(text) + 1, text);
	if (n > 0 && (size_t)n < sizeof(buf))
		(void)send_all(fd, buf, (size_t)n);
}

/* Reads the request head; returns its length with the bytes after it in buf, or -1. */
static ssize_t
read_head(int fd, char *buf, size_t cap, size_t *got)
{
	*got = 0;
	while (*got < cap) {
		struct pollfd pf = { fd, POLLIN, 0 };
		char *end;
		ssize_t n;

		if (poll(&pf, 1, HEAD_TIMEOUT_MS) <= 0)
			return -1;
		n = recv(fd, buf + *got, cap - *got, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		*got += (size_t)n;
		end = memmem(buf, *got, "\r\n\r\n", 4);
		if (end != NULL)
			return end - buf + 4;
	}
	return -1;
}

/* Connects with a timeout; returns the socket or -1. */
static int
dial(const struct sockaddr *sa, socklen_t len)
{
	struct pollfd pf;
	int fd, e = 0;
	socklen_t elen = sizeof(e);

	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) == -1)
		return -1;
	if (connect(fd, sa, len) == -1) {
		if (errno != EINPROGRESS)
			goto fail;
		pf = (struct pollfd){ fd, POLLOUT, 0 };
		if (poll(&pf, 1, DIAL_TIMEOUT_MS) <= 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) == -1 || e != 0)
			goto fail;
	}
	if (fcntl(fd, F_SETFL, 0) == -1)
		goto fail;
	return fd;

fail:
	close(fd);
	return -1;
}

static int
addr_bytes(const struct sockaddr *sa, int *family, unsigned char *out, char *text, size_t tlen)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		memcpy(out, &in->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;

		memcpy(out, &in6->sin6_addr, 16);
	} else
		return -1;
	*family = sa->sa_family;
	return inet_ntop(*family, out, text, (socklen_t)tlen) == NULL ? -1 : 0;
}

static int
is_listed(const struct sb_proxy *p, const char *host, unsigned port)
{
	size_t i;

	for (i = 0; i < p->nallow; i++)
		if (p->allow[i].port == port && strcmp(p->allow[i].host, host) == 0)
			return 1;
	return 0;
}

static int
is_address_listed(const struct sb_proxy *p, int family, const unsigned char *a, unsigned port)
{
	size_t i;

	for (i = 0; i < p->nallow; i++)
		if (p->allow[i].port == port && p->allow[i].family == family &&
		    memcmp(p->allow[i].addr, a, family == AF_INET ? 4 : 16) == 0)
			return 1;
	return 0;
}

/*
 * Copies between the client a and the upstream b until the proxy stops. A tunnel
 * (body_left -1) copies both ways until both sides are done. A forwarded request copies
 * body_left more bytes of body to the upstream and nothing after them (a pipelined request
 * is read and dropped), and ends when the upstream closes, asked to by Connection: close.
 */
static void
relay(struct sb_proxy *p, int a, int b, long long body_left)
{
	char buf[16384];
	int open_a = 1, open_b = 1;
	int is_tunnel = body_left < 0;

	while ((open_a || open_b) && !__atomic_load_n(&p->is_stopping, __ATOMIC_ACQUIRE)) {
		struct pollfd pf[2] = { { a, open_a ? POLLIN : 0, 0 },
			{ b, open_b ? POLLIN : 0, 0 } };
		int i;

		if (poll(pf, 2, 1000) == -1 && errno != EINTR)
			return;
		for (i = 0; i < 2; i++) {
			int from = i == 0 ? a : b, to = i == 0 ? b : a;
			int *is_open = i == 0 ? &open_a : &open_b;
			size_t want = sizeof(buf);
			ssize_t n;

			if (!*is_open || pf[i].revents == 0)
				continue;
			n = recv(from, buf, want, 0);
			if (n == -1 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				*is_open = 0;
				if (!is_tunnel && from == b)
					return; /* the response is complete */
				shutdown(to, SHUT_WR);
				continue;
			}
			if (!is_tunnel && from == a) {
				if (body_left == 0)
					continue;
				if ((long long)n > body_left)
					n = (ssize_t)body_left;
				body_left -= n;
			}
			if (send_all(to, buf, (size_t)n) == -1)
				return;
		}
	}
}

/* One request as the program sent it, checked. */
struct request {
	char method[16];
	char host[256]; /* lower-cased, as in the allowlist */
	unsigned port;
	int is_connect;
	char origin[HEAD_MAX + 2]; /* the path and query to send upstream, "/" at least */
	char version[16];
	const char *headers; /* borrowed: the header lines after the request line */
	size_t headers_len;  /* up to the blank line, excluded */
	long long body_len;  /* from Content-Length; 0 without one */
};

/* Whether a header line is named name (lower case, without the colon). */
static int
is_header(const char *line, size_t len, const char *name)
{
	size_t nl = strlen(name);

	return len > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0;
}

/* Reads a Content-Length value: digits only, optional blanks around; -1 when invalid. */
static long long
content_length(const char *v, size_t len)
{
	char num[24];
	const char *errstr;
	long long n;

	while (len > 0 && (*v == ' ' || *v == '\t'))
		v++, len--;
	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof(num) || strspn(v, "0123456789") < len)
		return -1;
	memcpy(num, v, len);
	num[len] = '\0';
	n = strtonum(num, 0, LLONG_MAX / 2, &errstr);
	return errstr != NULL ? -1 : n;
}

/*
 * Parses a request head (head_len bytes, ending in the blank line) into rq. Returns 0, or
 * the HTTP status to refuse it with: 400 for anything malformed or ambiguous (header lines
 * without a name, folded or carrying a bare CR or LF, Content-Length twice with two
 * values), 411 for a body without a Content-Length (Transfer-Encoding): a forwarded
 * request ends where its Content-Length says, so that nothing after it reaches the
 * upstream.
 */
static int
parse_request(const char *head, size_t head_len, struct request *rq, const char **why)
{
	const char *eol, *sp1, *sp2, *target, *h, *end;
	char authority[300];
	size_t tlen, alen;
	int has_length = 0;

	memset(rq, 0, sizeof(*rq));
	*why = "bad request";
	if (head_len < 4 || memcmp(head + head_len - 4, "\r\n\r\n", 4) != 0 ||
	    memchr(head, '\0', head_len) != NULL)
		return 400;
	eol = memmem(head, head_len, "\r\n", 2);
	sp1 = memchr(head, ' ', (size_t)(eol - head));
	sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	if (sp1 == NULL || sp2 == NULL || sp1 == head ||
	    (size_t)(sp1 - head) >= sizeof(rq->method) ||
	    (size_t)(eol - sp2 - 1) >= sizeof(rq->version))
		return 400;
	memcpy(rq->method, head, (size_t)(sp1 - head));
	memcpy(rq->version, sp2 + 1, (size_t)(eol - sp2 - 1));
	if (strcmp(rq->version, "HTTP/1.1") != 0 && strcmp(rq->version, "HTTP/1.0") != 0)
		return 400;
	*why = "bad request: CONNECT host:port or an absolute http:// URL";
	target = sp1 + 1;
	tlen = (size_t)(sp2 - target);
	if (tlen == 0 || memchr(target, '\r', tlen) != NULL || memchr(target, '\n', tlen) != NULL)
		return 400;
	rq->is_connect = strcmp(rq->method, "CONNECT") == 0;
	if (rq->is_connect) {
		if (tlen >= sizeof(authority))
			return 400;
		memcpy(authority, target, tlen);
		authority[tlen] = '\0';
	} else {
		const char *a = target + 7, *rest;
		size_t rlen;

		if (tlen < 7 || strncasecmp(target, "http://", 7) != 0)
			return 400;
		for (alen = 0; a + alen < sp2 && strchr("/?#", a[alen]) == NULL; alen++)
			;
		if (alen == 0 || alen >= sizeof(authority) - 4 || memchr(a, '@', alen) != NULL)
			return 400;
		memcpy(authority, a, alen);
		authority[alen] = '\0';
		/* Without a port the default is 80. */
		if (authority[alen - 1] == ']' || strchr(authority, ':') == NULL)
			strlcat(authority, ":80", sizeof(authority));
		/* The path and query, without a fragment; "/" when there is no path. */
		rest = a + alen;
		rlen = (size_t)(sp2 - rest);
		if (memchr(rest, '#', rlen) != NULL)
			rlen = (size_t)((const char *)memchr(rest, '#', rlen) - rest);
		if (rlen + 2 > sizeof(rq->origin))
			return 400;
		if (rlen == 0 || rest[0] != '/')
			rq->origin[0] = '/';
		memcpy(rq->origin + strlen(rq->origin), rest, rlen);
	}
	if (sb_allow_parse(authority, rq->host, sizeof(rq->host), &rq->port) == -1)
		return 400;
	*why = "bad request: malformed header";
	rq->headers = eol + 2;
	rq->headers_len = (size_t)(head + head_len - 2 - rq->headers);
	for (h = rq->headers, end = rq->headers + rq->headers_len; h < end;) {
		const char *next = memmem(h, (size_t)(end - h), "\r\n", 2);
		const char *colon;
		size_t len;

		if (next == NULL)
			return 400;
		len = (size_t)(next - h);
		colon = memchr(h, ':', len);
		if (colon == NULL || colon == h || h[0] == ' ' || h[0] == '\t' ||
		    memchr(h, '\r', len) != NULL || memchr(h, '\n', len) != NULL ||
		    memchr(h, ' ', (size_t)(colon - h)) != NULL)
			return 400;
		if (is_header(h, len, "transfer-encoding")) {
			*why = "length required: a request body needs a Content-Length";
			return 411;
		}
		if (is_header(h, len, "content-length")) {
			long long n = content_length(colon + 1, (size_t)(next - colon - 1));

			if (n < 0 || (has_length && n != rq->body_len))
				return 400;
			rq->body_len = n;
			has_length = 1;
		}
		h = next + 2;
	}
	if (rq->is_connect && rq->body_len != 0)
		return 400;
	return 0;
}

/*
 * Writes the head to send upstream for a parsed absolute-form request into out: the
 * request line in origin form, the program's headers but its Host and the hop-by-hop
 * ones (Proxy-*, Connection, Keep-Alive), then Host naming the listed destination and
 * Connection: close, so that the upstream serves one request for that name and closes.
 * Returns the length, or -1 when it does not fit.
 */
static ssize_t
build_head(const struct request *rq, char *out, size_t cap)
{
	const char *h = rq->headers, *end = rq->headers + rq->headers_len;
	int is_v6 = strchr(rq->host, ':') != NULL;
	char port[8] = "";
	size_t o;
	int n;

	n = snprintf(out, cap, "%s %s %s\r\n", rq->method, rq->origin, rq->version);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	o = (size_t)n;
	while (h < end) {
		const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);
		size_t len = (size_t)(eol - h);

		if (!(strncasecmp(h, "proxy-", 6) == 0 || is_header(h, len, "connection") ||
			is_header(h, len, "keep-alive") || is_header(h, len, "host"))) {
			if (o + len + 2 > cap)
				return -1;
			memcpy(out + o, h, len);
			memcpy(out + o + len, "\r\n", 2);
			o += len + 2;
		}
		h = eol + 2;
	}
	if (rq->port != 80)
		snprintf(port, sizeof(port), ":%u", rq->port);
	n = snprintf(out + o, cap - o, "Host: %s%s%s%s\r\nConnection: close\r\n\r\n",
	    is_v6 ? "[" : "", rq->host, is_v6 ? "]" : "", port);
	if (n < 0 || (size_t)n >= cap - o)
		return -1;
	return (ssize_t)(o + (size_t)n);
}

static void
serve(struct conn *c)
{
	struct sb_proxy *p = c->p;
	char buf[HEAD_MAX + 1];
	char out[2 * HEAD_MAX + 64];
	struct request rq;
	char address[INET6_ADDRSTRLEN] = "";
	struct addrinfo hints, *res = NULL, *ai;
	size_t got, extra;
	ssize_t hl, ol = 0;
	const char *reason = "connect_failed", *why;
	char portstr[8];
	int code;

	if ((hl = read_head(c->client, buf, HEAD_MAX, &got)) == -1) {
		answer(c->client, 400, "bad request");
		report(p, "", 0, "", 0, "bad_request");
		return;
	}
	buf[got] = '\0';
	if ((code = parse_request(buf, (size_t)hl, &rq, &why)) != 0) {
		answer(c->client, code, why);
		report(p, rq.host, rq.port, "", 0, "bad_request");
		return;
	}
	if (!rq.is_connect && (ol = build_head(&rq, out, sizeof(out))) == -1) {
		answer(c->client, 400, "bad request");
		report(p, rq.host, rq.port, "", 0, "bad_request");
		return;
	}
	if (!is_listed(p, rq.host, rq.port)) {
		answer(c->client, 403, "destination not in the sandbox's allowlist");
		report(p, rq.host, rq.port, "", 0, "not_listed");
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%u", rq.port);
	if (getaddrinfo(rq.host, portstr, &hints, &res) != 0) {
		answer(c->client, 502, "cannot resolve the destination");
		report(p, rq.host, rq.port, "", 0, "resolve_failed");
		return;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		unsigned char a[16];
		int family;

		if (addr_bytes(ai->ai_addr, &family, a, address, sizeof(address)) == -1)
			continue;
		if (is_restricted(family, a) && !is_address_listed(p, family, a, rq.port)) {
			reason = "restricted_address";
			continue;
		}
		if ((c->upstream = dial(ai->ai_addr, ai->ai_addrlen)) != -1)
			break;
		reason = "connect_failed";
	}
	freeaddrinfo(res);
	if (c->upstream == -1) {
		int is_policy = strcmp(reason, "restricted_address") == 0;

		answer(c->client, is_policy ? 403 : 502,
		    is_policy ? "destination address is restricted"
			      : "cannot connect to the destination");
		report(p, rq.host, rq.port, address, 0, reason);
		return;
	}
	report(p, rq.host, rq.port, address, 1, "allowed");
	extra = got - (size_t)hl;
	if (rq.is_connect) {
		static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";

		if (send_all(c->client, ok, sizeof(ok) - 1) == -1)
			return;
		/* Bytes sent ahead of the answer belong to the tunnel. */
		if (extra > 0 && send_all(c->upstream, buf + hl, extra) == -1)
			return;
		relay(p, c->client, c->upstream, -1);
		return;
	}
	if (send_all(c->upstream, out, (size_t)ol) == -1)
		return;
	/* Of what came with the head, only the body goes on. */
	if ((long long)extra > rq.body_len)
		extra = (size_t)rq.body_len;
	if (extra > 0 && send_all(c->upstream, buf + hl, extra) == -1)
		return;
	relay(p, c->client, c->upstream, rq.body_len - (long long)extra);
}

static void *
conn_main(void *arg)
{
	struct conn *c = arg;

	serve(c);
	pthread_mutex_lock(&c->p->lock);
	close(c->client);
	if (c->upstream != -1)
		close(c->upstream);
	c->client = c->upstream = -1;
	c->is_done = 1;
	pthread_mutex_unlock(&c->p->lock);
	return NULL;
}

/* Joins finished connections so their slots can be reused. */
static void
reap_conns(struct sb_proxy *p)
{
	int i;

	for (i = 0; i < CONN_MAX; i++) {
		struct conn *c = &p->conns[i];
		int is_done;

		pthread_mutex_lock(&p->lock);
		is_done = c->is_used && c->is_done;
		pthread_mutex_unlock(&p->lock);
		if (is_done) {
			pthread_join(c->thread, NULL);
			c->is_used = 0;
		}
	}
}

static void *
accept_main(void *arg)
{
	struct sb_proxy *p = arg;

	for (;;) {
		struct pollfd pf[2] = { { p->listen_fd, POLLIN, 0 },
			{ p->stop_pipe[0], POLLIN, 0 } };
		struct conn *c = NULL;
		int fd, i;

		if (poll(pf, 2, -1) == -1 && errno != EINTR)
			break;
		if (pf[1].revents != 0)
			break;
		if (pf[0].revents == 0)
			continue;
		fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd == -1)
			continue;
		reap_conns(p);
		for (i = 0; i < CONN_MAX && c == NULL; i++)
			if (!p->conns[i].is_used)
				c = &p->conns[i];
		if (c == NULL) {
			answer(fd, 503, "too many connections");
			close(fd);
			continue;
		}
		c->p = p;
		c->client = fd;
		c->upstream = -1;
		c->is_done = 0;
		c->is_used = 1;
		if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
			c->is_used = 0;
			close(fd);
		}
	}
	return NULL;
}

int
sb_proxy_start(const char *const *allow, sb_egress_fn *fn, void *arg, const char *sock_path,
    uid_t owner, struct sb_proxy **out, char *err, size_t errlen)
{
	struct sb_proxy *p = NULL;
	struct sockaddr_un sun;
	size_t i;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->listen_fd = p->stop_pipe[0] = p->stop_pipe[1] = -1;
	p->fn = fn;
	p->arg = arg;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->report_lock, NULL);
	for (i = 0; allow[i] != NULL; i++) {
		struct allow_entry *e = &p->allow[i];

		if (i >= SB_ALLOW_MAX) {
			snprintf(err, errlen, "more than %d allowlist entries", SB_ALLOW_MAX);
			goto fail;
		}
		if (sb_allow_parse(allow[i], e->host, sizeof(e->host), &e->port) == -1) {
			snprintf(err, errlen, "invalid allowlist entry \"%.100s\" (want host:port)",
			    allow[i]);
			goto fail;
		}
		if (inet_pton(AF_INET, e->host, e->addr) == 1)
			e->family = AF_INET;
		else if (inet_pton(AF_INET6, e->host, e->addr) == 1)
			e->family = AF_INET6;
		p->nallow++;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, sock_path, sizeof(sun.sun_path)) >= sizeof(sun.sun_path) ||
	    strlcpy(p->path, sock_path, sizeof(p->path)) >= sizeof(p->path)) {
		snprintf(err, errlen, "proxy socket path too long");
		goto fail;
	}
	if ((p->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(p->listen_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(sock_path, 0600) == -1 ||
	    (owner != (uid_t)-1 && chown(sock_path, owner, (gid_t)-1) == -1) ||
	    listen(p->listen_fd, 16) == -1 || pipe2(p->stop_pipe, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "cannot listen on %s: %s", sock_path, strerror(errno));
		goto fail;
	}
	if (pthread_create(&p->thread, NULL, accept_main, p) != 0) {
		snprintf(err, errlen, "cannot start the proxy thread");
		goto fail;
	}
	p->has_thread = 1;
	*out = p;
	return 0;

fail:
	sb_proxy_stop(p);
	return -1;
}

void
sb_proxy_stop(struct sb_proxy *p)
{
	int i;

	if (p == NULL)
		return;
	__atomic_store_n(&p->is_stopping, 1, __ATOMIC_RELEASE);
	if (p->has_thread) {
		(void)!write(p->stop_pipe[1], "x", 1);
		pthread_join(p->thread, NULL);
	}
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < CONN_MAX; i++) {
		struct conn *c = &p->conns[i];

		if (c->is_used && !c->is_done) {
			shutdown(c->client, SHUT_RDWR);
			if (c->upstream != -1)
				shutdown(c->upstream, SHUT_RDWR);
		}
	}
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < CONN_MAX; i++)
		if (p->conns[i].is_used)
			pthread_join(p->conns[i].thread, NULL);
	if (p->listen_fd != -1) {
		close(p->listen_fd);
		(void)unlink(p->path);
	}
	if (p->stop_pipe[0] != -1)
		close(p->stop_pipe[0]);
	if (p->stop_pipe[1] != -1)
		close(p->stop_pipe[1]);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->report_lock);
	free(p);
}

/* In the forwarder: one process per connection, relaying to the proxy's socket. */
static void __attribute__((noreturn)) forward_one(int client, const char *sock_path)
{
	struct sockaddr_un sun;
	char buf[16384];
	int up, open_c = 1, open_u = 1;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, sock_path, sizeof(sun.sun_path));
	if ((up = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(up, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		_exit(1);
	while (open_c || open_u) {
		struct pollfd pf[2] = { { client, open_c ? POLLIN : 0, 0 },
			{ up, open_u ? POLLIN : 0, 0 } };
		int i;

		if (poll(pf, 2, -1) == -1 && errno != EINTR)
			_exit(1);
		for (i = 0; i < 2; i++) {
			int from = i == 0 ? client : up, to = i == 0 ? up : client;
			int *is_open = i == 0 ? &open_c : &open_u;
			ssize_t n;

			if (!*is_open || pf[i].revents == 0)
				continue;
			n = recv(from, buf, sizeof(buf), 0);
			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0) {
				*is_open = 0;
				shutdown(to, SHUT_WR);
				continue;
			}
			if (send_all(to, buf, (size_t)n) == -1)
				_exit(0);
		}
	}
	_exit(0);
}

int
sb_forward_exec(const char *sock_path, unsigned port, char *const argv[])
{
	struct sockaddr_in sin;
	int fd, one = 1, devnull;
	pid_t pid;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 || listen(fd, 16) == -1) {
		fprintf(stderr, "airlock-sandbox forward: cannot listen on %s:%u: %s\n",
		    SB_PROXY_ADDR, port, strerror(errno));
		return -1;
	}
	if ((pid = fork()) == -1) {
		fprintf(stderr, "airlock-sandbox forward: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		/* The forwarder: keeps none of the program's descriptors; reaps nothing. */
		signal(SIGCHLD, SIG_IGN);
		if (fd != 3) {
			if (dup2(fd, 3) == -1)
				_exit(1);
			close(fd);
			fd = 3;
		}
		if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) != -1) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		closefrom(4);
		for (;;) {
			int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

			if (c == -1) {
				if (errno != EINTR)
					usleep(10000);
				continue;
			}
			if (fork() == 0) {
				close(fd);
				forward_one(c, sock_path);
			}
			close(c);
		}
	}
	close(fd);
	execvp(argv[0], argv);
	fprintf(stderr, "airlock-sandbox: %s: %s\n", argv[0], strerror(errno));
	return -1;
}
