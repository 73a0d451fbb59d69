/* Unit tests for the egress proxy's allowlist, request parsing and address policy (sandbox/proxy.c). */
#include "../../sandbox/proxy.c"

static int n_test;
static int n_fail;

static void
ok(int cond, const char *what)
{
	n_test++;
	if (!cond)
		n_fail++;
	printf("%s %d - %s\n", cond ? "ok" : "not ok", n_test, what);
}

static int
parses(const char *entry, const char *want_host, unsigned want_port)
{
	char host[256];
	unsigned port = 0;

	if (sb_allow_parse(entry, host, sizeof(host), &port) == -1)
		return want_host == NULL;
	return want_host != NULL && strcmp(host, want_host) == 0 && port == want_port;
}

static int
restricted(const char *text)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, text, a) == 1)
		return is_restricted(AF_INET, a);
	if (inet_pton(AF_INET6, text, a) == 1)
		return is_restricted(AF_INET6, a);
	return -1;
}

static struct request rq;

/* Parses a whole head; returns 0 or the refusal's status. */
static int
parse(const char *head)
{
	const char *why = NULL;
	int code = parse_request(head, strlen(head), &rq, &why);

	return code != 0 && why == NULL ? -1 : code;
}

/* Parses head and builds what goes upstream; 1 when it is exactly want. */
static int
rebuilds(const char *head, const char *want)
{
	char out[2 * HEAD_MAX + 64];
	ssize_t n;

	if (parse(head) != 0 || (n = build_head(&rq, out, sizeof(out))) < 0)
		return 0;
	out[n] = '\0';
	if (strcmp(out, want) != 0) {
		printf("# got:  %s# want: %s", out, want);
		return 0;
	}
	return 1;
}

static void
request_tests(void)
{
	ok(parse("GET http://Example.COM:8080?x=1 HTTP/1.1\r\n\r\n") == 0 &&
		strcmp(rq.host, "example.com") == 0 && rq.port == 8080 &&
		strcmp(rq.origin, "/?x=1") == 0,
	    "query-only URL gets the path /");
	ok(parse("GET http://example.com HTTP/1.1\r\n\r\n") == 0 && rq.port == 80 &&
		strcmp(rq.origin, "/") == 0,
	    "no path, no port: / on port 80");
	ok(parse("GET http://example.com:81/a/b?c=d#frag HTTP/1.0\r\n\r\n") == 0 &&
		strcmp(rq.origin, "/a/b?c=d") == 0 && strcmp(rq.version, "HTTP/1.0") == 0,
	    "path and query kept, fragment dropped");
	ok(parse("GET http://example.com:81#frag HTTP/1.1\r\n\r\n") == 0 &&
		strcmp(rq.origin, "/") == 0,
	    "fragment only: /");
	ok(parse("GET http://[::1]:8080/x HTTP/1.1\r\n\r\n") == 0 && strcmp(rq.host, "::1") == 0 &&
		rq.port == 8080,
	    "IPv6 literal");
	ok(parse("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n") == 0 &&
		rq.is_connect && rq.port == 443 && rq.body_len == 0,
	    "CONNECT");
	ok(parse("POST http://h:1/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n") == 0 && rq.body_len == 5,
	    "Content-Length read");
	ok(parse("POST http://h:1/ HTTP/1.1\r\ncontent-length:  7 \r\n"
		 "Content-Length: 7\r\n\r\n") == 0 &&
		rq.body_len == 7,
	    "the same Content-Length twice is one");
	ok(parse("GET http://h:1/ HTTP/1.1\r\n\r\n") == 0 && rq.body_len == 0,
	    "no Content-Length: no body");
	ok(parse("POST http://h:1/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n") ==
		400,
	    "two Content-Lengths refused");
	ok(parse("POST http://h:1/ HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n") == 400,
	    "a Content-Length list refused");
	ok(parse("POST http://h:1/ HTTP/1.1\r\nContent-Length: +5\r\n\r\n") == 400,
	    "a signed Content-Length refused");
	ok(parse("POST http://h:1/ HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n") ==
		400,
	    "a huge Content-Length refused");
	ok(parse("POST http://h:1/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") == 411,
	    "Transfer-Encoding refused with 411");
	ok(parse("POST http://h:1/ HTTP/1.1\r\nContent-Length: 3\r\n"
		 "transfer-encoding: chunked\r\n\r\n") == 411,
	    "Transfer-Encoding with a length refused");
	ok(parse("GET http://h:1/ HTTP/1.1\r\nX-A: 1\r\n Host: evil\r\n\r\n") == 400,
	    "folded header refused");
	ok(parse("GET http://h:1/ HTTP/1.1\r\nX-A: 1\nHost: evil\r\n\r\n") == 400,
	    "bare LF in a header refused");
	ok(parse("GET http://h:1/ HTTP/1.1\r\nX-A: 1\rHost: evil\r\n\r\n") == 400,
	    "bare CR in a header refused");
	ok(parse("GET http://h:1/ HTTP/1.1\r\nno colon\r\n\r\n") == 400,
	    "header without a colon refused");
	ok(parse("GET http://h:1/ HTTP/1.1\r\nHost : evil\r\n\r\n") == 400,
	    "space before the colon refused");
	ok(parse("GET http://h:1/ HTTP/2.0\r\n\r\n") == 400, "HTTP/2.0 refused");
	ok(parse("GET http://h:1/ HTTP/1.1x\r\n\r\n") == 400, "junk after the version refused");
	ok(parse("GET http://h:1/ HTTP/1.1 x\r\n\r\n") == 400, "a fourth word refused");
	ok(parse("GET /relative HTTP/1.1\r\n\r\n") == 400, "origin-form refused");
	ok(parse("GET https://h/ HTTP/1.1\r\n\r\n") == 400, "https:// refused");
	ok(parse("GET http://user@h:1/ HTTP/1.1\r\n\r\n") == 400, "userinfo refused");
	ok(parse("GET http:///x HTTP/1.1\r\n\r\n") == 400, "empty authority refused");
	ok(parse("CONNECT h:1 HTTP/1.1\r\nContent-Length: 4\r\n\r\n") == 400,
	    "CONNECT with a body refused");
	ok(parse("GARBAGE\r\n\r\n") == 400, "no request line refused");
	ok(rebuilds("POST http://Example.com:8080/p?q HTTP/1.1\r\nHost: evil.example\r\n"
		    "Proxy-Authorization: x\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\n"
		    "User-Agent: t\r\nHostile: 1\r\nContent-Length: 3\r\nhost: again\r\n\r\n",
	       "POST /p?q HTTP/1.1\r\nUser-Agent: t\r\nHostile: 1\r\nContent-Length: 3\r\n"
	       "Host: example.com:8080\r\nConnection: close\r\n\r\n"),
	    "upstream head: Host is the listed name, hop-by-hop headers gone");
	ok(rebuilds("GET http://example.com/ HTTP/1.1\r\n\r\n",
	       "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"),
	    "port 80 is left out of Host");
	ok(rebuilds("GET http://[2001:db8::1]:8443?a HTTP/1.0\r\nHost: x\r\n\r\n",
	       "GET /?a HTTP/1.0\r\nHost: [2001:db8::1]:8443\r\nConnection: close\r\n\r\n"),
	    "IPv6 Host in brackets");
}

int
main(void)
{
	static const char *const blocked[] = {
		"127.0.0.1",
		"127.255.0.9",
		"10.0.0.1",
		"172.16.0.1",
		"172.31.255.255",
		"192.168.1.1",
		"169.254.169.254",
		"100.64.0.1",
		"100.100.100.200",
		"0.0.0.0",
		"224.0.0.1",
		"255.255.255.255",
		"198.18.0.1",
		"::1",
		"::",
		"fe80::1",
		"fc00::1",
		"fd00:ec2::254",
		"::ffff:127.0.0.1",
		"::ffff:10.1.2.3",
		"ff02::1",
		"64:ff9b::a00:1",
	};
	static const char *const open[] = {
		"1.1.1.1",
		"8.8.8.8",
		"172.32.0.1",
		"100.128.0.1",
		"2606:4700::1111",
		"::ffff:1.1.1.1",
	};
	size_t i;
	char what[96];

	ok(parses("example.com:443", "example.com", 443), "host:port");
	ok(parses("API.Example.COM:80", "api.example.com", 80), "host lower-cased");
	ok(parses("127.0.0.1:8080", "127.0.0.1", 8080), "IPv4 literal");
	ok(parses("[::1]:443", "::1", 443), "bracketed IPv6 literal");
	ok(parses("example.com", NULL, 0), "missing port refused");
	ok(parses("example.com:0", NULL, 0), "port 0 refused");
	ok(parses("example.com:65536", NULL, 0), "port past 65535 refused");
	ok(parses("example.com:80x", NULL, 0), "trailing junk refused");
	ok(parses(":80", NULL, 0), "empty host refused");
	ok(parses("::1:80", NULL, 0), "unbracketed IPv6 refused");
	ok(parses("user@host:80", NULL, 0), "userinfo refused");
	ok(parses("ho st:80", NULL, 0), "space refused");
	ok(parses("[::1]80", NULL, 0), "bracket without colon refused");
	request_tests();
	for (i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++) {
		snprintf(what, sizeof(what), "%s is restricted", blocked[i]);
		ok(restricted(blocked[i]) == 1, what);
	}
	for (i = 0; i < sizeof(open) / sizeof(open[0]); i++) {
		snprintf(what, sizeof(what), "%s is not restricted", open[i]);
		ok(restricted(open[i]) == 0, what);
	}
	printf("1..%d\n", n_test);
	return n_fail == 0 ? 0 : 1;
}
