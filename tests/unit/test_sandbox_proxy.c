/* Unit tests for the egress proxy's allowlist parsing and address policy (sandbox/proxy.c). */
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

int
main(void)
{
	static const char *const blocked[] = {
		"127.0.0.1", "127.255.0.9", "10.0.0.1", "172.16.0.1", "172.31.255.255",
		"192.168.1.1", "169.254.169.254", "100.64.0.1", "100.100.100.200", "0.0.0.0",
		"224.0.0.1", "255.255.255.255", "198.18.0.1", "::1", "::", "fe80::1", "fc00::1",
		"fd00:ec2::254", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "ff02::1", "64:ff9b::a00:1",
	};
	static const char *const open[] = {
		"1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:1.1.1.1",
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
