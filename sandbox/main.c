/* airlock-sandbox: runs one command in a sandbox with the launcher the gateway uses. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "airlock/gvisor.h"
#include "airlock/proxy.h"
#include "airlock/sandbox.h"
#include "airlock/version.h"

static const char usage_text[] =
    "usage: airlock-sandbox run [options] -- CMD [ARG...]\n"
    "       airlock-sandbox --version\n"
    "\n"
    "Runs CMD in a fresh bubblewrap sandbox: every namespace unshared, no network, a\n"
    "read-only view of /usr, a private /tmp, uid 65534, a seccomp filter, a cgroup of its\n"
    "own; or, with --isolation gvisor, the same behind gVisor's kernel in user space. Passes this program's stdin to CMD, prints CMD's stdout and stderr, then a line on\n"
    "stderr saying how it ended. Exits with CMD's status (128+N when signal N ended it),\n"
    "or a sysexits code when the sandbox itself could not run (64 usage, 69 unavailable,\n"
    "70 internal, 71 system error).\n"
    "\n"
    "options:\n"
    "  --time S          wall-clock limit in seconds, fractions allowed (default 10)\n"
    "  --cpu S           CPU limit in seconds, fractions allowed (default 5)\n"
    "  --mem MB          memory limit in MiB, /tmp included (default 256)\n"
    "  --pids N          processes and threads at once (default 64)\n"
    "  --fsize MB        largest file it may write, MiB (default 16)\n"
    "  --nofile N        open descriptors per process (default 64, at least 16)\n"
    "  --tmp MB          size of the private /tmp, MiB (default 16)\n"
    "  --stdout-max B    stdout bytes kept; more stops CMD (default 1048576)\n"
    "  --stderr-max B    stderr bytes kept; more stops CMD (default 262144)\n"
    "  --allow HOST:PORT allow egress to HOST:PORT through the proxy (repeatable); CMD then\n"
    "                    sees HTTP_PROXY=http://127.0.0.1:3128 and the like\n"
    "  --cgroup-parent P cgroup under which each sandbox's own is made (default airlock)\n"
    "  --isolation L     namespace (bubblewrap, the default) or gvisor (runsc; needs root)\n"
    "  --runsc PATH      the runsc program for --isolation gvisor (default /usr/bin/runsc)\n"
    "  --program TEXT    hand TEXT to CMD on descriptor 3 (a pipe, read it to its end),\n"
    "                    as airlockd hands a code tool's program to its interpreter\n"
    "  --warm            start the sandbox ahead, as a warm pool does: wait until it is\n"
    "                    ready (booted, CMD started) and idle, then hand stdin over; the\n"
    "                    clocks start at the hand-over\n"
    "  --json            print one JSON object with the outcome and the output instead\n"
    "                    (handover_ms: from the hand-over to the sandbox's end, destroyed)\n"
    "  -h, --help        this text\n";

struct egress_log {
	int is_json;
	json_t *events;
};

static void
on_egress(void *arg, const struct sb_egress *ev)
{
	struct egress_log *log = arg;

	if (!log->is_json) {
		fprintf(stderr, "airlock-sandbox: egress %s:%u%s%s %s (%s)\n", ev->host, ev->port,
		    ev->address[0] != '\0' ? " at " : "", ev->address,
		    ev->is_allowed ? "allowed" : "refused", ev->reason);
		return;
	}
	json_array_append_new(log->events,
	    json_pack("{s:s, s:i, s:s, s:b, s:s}", "host", ev->host, "port", (int)ev->port,
		"address", ev->address, "allowed", ev->is_allowed, "reason", ev->reason));
}

/* Parses "S" or "S.fff" seconds into milliseconds, 1 ms to a day. */
static int
parse_seconds(const char *s, int64_t *ms)
{
	char whole[16], frac[4] = "000";
	const char *dot = strchr(s, '.');
	const char *errstr;
	size_t wl, fl;
	long long w, f;

	wl = dot != NULL ? (size_t)(dot - s) : strlen(s);
	if (wl == 0 || wl >= sizeof(whole))
		return -1;
	memcpy(whole, s, wl);
	whole[wl] = '\0';
	if (dot != NULL) {
		fl = strlen(dot + 1);
		if (fl == 0 || fl > 3 || strspn(dot + 1, "0123456789") != fl)
			return -1;
		memcpy(frac, dot + 1, fl);
	}
	if (strspn(whole, "0123456789") != wl)
		return -1;
	w = strtonum(whole, 0, 86400, &errstr);
	if (errstr != NULL)
		return -1;
	f = strtonum(frac, 0, 999, &errstr);
	if (errstr != NULL || w * 1000 + f < 1)
		return -1;
	*ms = w * 1000 + f;
	return 0;
}

static int
parse_num(const char *opt, const char *s, long long lo, long long hi, long long *v)
{
	const char *errstr;

	*v = strtonum(s, lo, hi, &errstr);
	if (errstr != NULL) {
		fprintf(stderr, "airlock-sandbox: %s: \"%s\" is %s (want %lld to %lld)\n", opt, s,
		    errstr, lo, hi);
		return -1;
	}
	return 0;
}

/* JSON strings must be UTF-8: invalid bytes become U+FFFD. Returns a new reference. */
static json_t *
text(const char *s, size_t len)
{
	char *buf;
	size_t i = 0, o = 0;
	json_t *j;

	if ((buf = malloc(len * 3 + 1)) == NULL)
		return NULL;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c < 0x80	 ? 1
		    : (c & 0xE0) == 0xC0 ? 2
		    : (c & 0xF0) == 0xE0 ? 3
		    : (c & 0xF8) == 0xF0 ? 4
					 : 0;
		size_t k;
		int is_ok = n > 0 && i + n <= len && c != 0;

		for (k = 1; is_ok && k < n; k++)
			if (((unsigned char)s[i + k] & 0xC0) != 0x80)
				is_ok = 0;
		if (is_ok && n == 2 && c < 0xC2)
			is_ok = 0;
		if (is_ok && n == 3 &&
		    ((c == 0xE0 && (unsigned char)s[i + 1] < 0xA0) ||
			(c == 0xED && (unsigned char)s[i + 1] >= 0xA0)))
			is_ok = 0;
		if (is_ok && n == 4 &&
		    ((c == 0xF0 && (unsigned char)s[i + 1] < 0x90) || c > 0xF4 ||
			(c == 0xF4 && (unsigned char)s[i + 1] >= 0x90)))
			is_ok = 0;
		if (is_ok) {
			memcpy(buf + o, s + i, n);
			o += n;
			i += n;
		} else {
			memcpy(buf + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
		}
	}
	j = json_stringn(buf, o);
	free(buf);
	return j;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int
print_json(const struct sb_result *res, json_t *events, double handover_ms)
{
	json_t *o, *hit;
	int l, rc;

	if ((hit = json_array()) == NULL)
		return -1;
	for (l = SB_LIMIT_WALL; l <= SB_LIMIT_OUTPUT; l++)
		if (res->limits_hit & SB_LIMIT_BIT(l))
			json_array_append_new(hit, json_string(sb_limit_name((enum sb_limit)l)));
	o = json_pack("{s:o, s:o, s:s, s:o, s:o, s:b, s:o, s:b, s:f, s:o, s:o, s:O}", "exit_code",
	    res->exit_code >= 0 ? json_integer(res->exit_code) : json_null(), "signal",
	    res->signal != 0 ? json_integer(res->signal) : json_null(), "limit",
	    sb_limit_name(res->limit), "limits_hit", hit, "stdout", text(res->out, res->out_len),
	    "stdout_truncated", res->out_truncated, "stderr", text(res->err, res->err_len),
	    "stderr_truncated", res->err_truncated, "wall_ms", (double)res->wall_us / 1000.0,
	    "cpu_ms", res->cpu_us >= 0 ? json_real((double)res->cpu_us / 1000.0) : json_null(),
	    "mem_peak_bytes", res->mem_peak >= 0 ? json_integer(res->mem_peak) : json_null(),
	    "egress", events);
	if (o == NULL || json_object_set_new(o, "handover_ms", json_real(handover_ms)) == -1) {
		json_decref(o);
		return -1;
	}
	rc = json_dumpf(o, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(o);
	return rc;
}

static int
cmd_run(int argc, char **argv)
{
	enum {
		O_TIME = 256,
		O_CPU,
		O_MEM,
		O_PIDS,
		O_FSIZE,
		O_NOFILE,
		O_TMP,
		O_OUTMAX,
		O_ERRMAX,
		O_ALLOW,
		O_CGROUP,
		O_JSON,
		O_ISOLATION,
		O_RUNSC,
		O_WARM,
		O_PROGRAM
	};
	static const struct option opts[] = {
		{ "time", required_argument, NULL, O_TIME },
		{ "cpu", required_argument, NULL, O_CPU },
		{ "mem", required_argument, NULL, O_MEM },
		{ "pids", required_argument, NULL, O_PIDS },
		{ "fsize", required_argument, NULL, O_FSIZE },
		{ "nofile", required_argument, NULL, O_NOFILE },
		{ "tmp", required_argument, NULL, O_TMP },
		{ "stdout-max", required_argument, NULL, O_OUTMAX },
		{ "stderr-max", required_argument, NULL, O_ERRMAX },
		{ "allow", required_argument, NULL, O_ALLOW },
		{ "cgroup-parent", required_argument, NULL, O_CGROUP },
		{ "json", no_argument, NULL, O_JSON },
		{ "isolation", required_argument, NULL, O_ISOLATION },
		{ "runsc", required_argument, NULL, O_RUNSC },
		{ "warm", no_argument, NULL, O_WARM },
		{ "program", required_argument, NULL, O_PROGRAM },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sb_config cfg;
	struct sb_result res;
	struct sb_run *run = NULL;
	struct egress_log log = { 0, NULL };
	const char *allow[SB_ALLOW_MAX + 1];
	size_t nallow = 0;
	char err[512];
	long long v;
	int c, rc = EX_SOFTWARE, is_warm = 0;
	double t_handover = 0;
	const char *program = NULL;

	memset(&cfg, 0, sizeof(cfg));
	memset(&res, 0, sizeof(res));
	sb_limits_default(&cfg.limits);
	cfg.stdin_fd = STDIN_FILENO;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case O_TIME:
		case O_CPU:
			if (parse_seconds(optarg,
				c == O_TIME ? &cfg.limits.wall_ms : &cfg.limits.cpu_ms) == -1) {
				fprintf(stderr,
				    "airlock-sandbox: --%s: \"%s\" is not a number of "
				    "seconds (0.001 to 86400)\n",
				    c == O_TIME ? "time" : "cpu", optarg);
				return EX_USAGE;
			}
			break;
		case O_MEM:
		case O_FSIZE:
		case O_TMP:
			if (parse_num(c == O_MEM   ? "--mem"
				    : c == O_FSIZE ? "--fsize"
						   : "--tmp",
				optarg, c == O_MEM ? 4 : c == O_TMP, 1 << 20, &v) == -1)
				return EX_USAGE;
			v <<= 20;
			if (c == O_MEM)
				cfg.limits.mem_bytes = v;
			else if (c == O_FSIZE)
				cfg.limits.fsize_bytes = v;
			else
				cfg.limits.tmp_bytes = v;
			break;
		case O_PIDS:
			if (parse_num("--pids", optarg, 4, 1 << 20, &v) == -1)
				return EX_USAGE;
			cfg.limits.pids = v;
			break;
		case O_NOFILE:
			if (parse_num("--nofile", optarg, 16, 1 << 20, &v) == -1)
				return EX_USAGE;
			cfg.limits.nofile = v;
			break;
		case O_OUTMAX:
		case O_ERRMAX:
			if (parse_num(c == O_OUTMAX ? "--stdout-max" : "--stderr-max", optarg, 1,
				1 << 30, &v) == -1)
				return EX_USAGE;
			if (c == O_OUTMAX)
				cfg.limits.stdout_max = (size_t)v;
			else
				cfg.limits.stderr_max = (size_t)v;
			break;
		case O_ALLOW: {
			char host[256];
			unsigned port;

			if (sb_allow_parse(optarg, host, sizeof(host), &port) == -1) {
				fprintf(stderr,
				    "airlock-sandbox: --allow: \"%s\" is not host:port\n", optarg);
				return EX_USAGE;
			}
			if (nallow >= SB_ALLOW_MAX) {
				fprintf(stderr, "airlock-sandbox: at most %d --allow entries\n",
				    SB_ALLOW_MAX);
				return EX_USAGE;
			}
			allow[nallow++] = optarg;
			break;
		}
		case O_CGROUP:
			if (optarg[0] == '\0' || optarg[0] == '/' || strstr(optarg, "..") != NULL ||
			    strspn(optarg,
				"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				"0123456789-_./") != strlen(optarg)) {
				fprintf(stderr,
				    "airlock-sandbox: --cgroup-parent: \"%s\" is not a "
				    "relative cgroup parent name\n",
				    optarg);
				return EX_USAGE;
			}
			cfg.cgroup_parent = optarg;
			break;
		case O_JSON:
			log.is_json = 1;
			break;
		case O_ISOLATION:
			if (sb_isolation_parse(optarg, &cfg.isolation) == -1) {
				fprintf(stderr,
				    "airlock-sandbox: --isolation: \"%s\" is neither "
				    "namespace nor gvisor\n",
				    optarg);
				return EX_USAGE;
			}
			break;
		case O_RUNSC:
			cfg.runsc = optarg;
			break;
		case O_WARM:
			is_warm = 1;
			break;
		case O_PROGRAM:
			program = optarg;
			cfg.has_program = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EX_OK;
		default:
			fputs(usage_text, stderr);
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr,
		    "airlock-sandbox: run: no command given (run [options] -- CMD...)\n");
		return EX_USAGE;
	}
	allow[nallow] = NULL;
	cfg.argv = (const char *const *)(argv + optind);
	if (nallow > 0) {
		cfg.allow = allow;
		cfg.on_egress = on_egress;
		cfg.egress_arg = &log;
	}
	if (log.is_json && (log.events = json_array()) == NULL)
		return EX_OSERR;
	if (sb_spawn(&cfg, &run, err, sizeof(err)) == -1) {
		fprintf(stderr, "airlock-sandbox: %s\n", err);
		rc = strncmp(err, "no cgroup", 9) == 0 || strncmp(err, "cannot execute", 14) == 0 ||
			strncmp(err, "supplementary groups", 20) == 0 ||
			strncmp(err, "gvisor", 6) == 0
		    ? EX_UNAVAILABLE
		    : strncmp(err, "limits", 6) == 0 ? EX_USAGE
						     : EX_OSERR;
		goto out;
	}
	if (program != NULL && sb_feed(run, program, strlen(program), NULL, 0) == -1) {
		fprintf(stderr, "airlock-sandbox: cannot queue the program: out of memory\n");
		rc = EX_OSERR;
		goto out;
	}
	if (is_warm) {
		/* Ready, then idle a while: what a warm pool's sandbox has been through. */
		struct timespec idle = { 0, 300 * 1000 * 1000 };

		if (sb_ready(run, SB_BOOT_MS, err, sizeof(err)) == -1) {
			fprintf(stderr, "airlock-sandbox: %s\n", err);
			rc = EX_UNAVAILABLE;
			goto out;
		}
		nanosleep(&idle, NULL);
	}
	t_handover = now_ms();
	if (sb_wait(run, &res, err, sizeof(err)) == -1) {
		fprintf(stderr, "airlock-sandbox: %s\n", err);
		rc = strncmp(err, "gvisor", 6) == 0 ? EX_UNAVAILABLE : EX_OSERR;
		goto out;
	}
	/* Stopping the proxy first means no egress report arrives after this point. */
	sb_free(run);
	run = NULL;
	if (log.is_json) {
		if (print_json(&res, log.events, now_ms() - t_handover) == -1) {
			rc = EX_SOFTWARE;
			goto out;
		}
	} else {
		fwrite(res.out, 1, res.out_len, stdout);
		fflush(stdout);
		fwrite(res.err, 1, res.err_len, stderr);
		fprintf(stderr,
		    "airlock-sandbox: %s %d, limit %s, wall %.1f ms, cpu %.1f ms, "
		    "peak memory %" PRId64 " KiB, stdout %zu B%s, stderr %zu B%s\n",
		    res.signal != 0 ? "signal" : "exit",
		    res.signal != 0 ? res.signal : res.exit_code, sb_limit_name(res.limit),
		    (double)res.wall_us / 1000.0, (double)res.cpu_us / 1000.0,
		    res.mem_peak >= 0 ? res.mem_peak / 1024 : -1, res.out_len,
		    res.out_truncated ? " (truncated)" : "", res.err_len,
		    res.err_truncated ? " (truncated)" : "");
	}
	rc = res.signal != 0 ? 128 + res.signal : res.exit_code;
out:
	sb_free(run);
	sb_result_release(&res);
	json_decref(log.events);
	return rc;
}

static int
cmd_forward(int argc, char **argv)
{
	const char *errstr;
	long long port;

	if (argc < 6 || strcmp(argv[4], "--") != 0) {
		fprintf(stderr,
		    "usage: airlock-sandbox forward SOCKET PORT -- CMD...\n"
		    "(used inside the sandbox; not meant to be run by hand)\n");
		return EX_USAGE;
	}
	port = strtonum(argv[3], 1, 65535, &errstr);
	if (errstr != NULL) {
		fprintf(stderr, "airlock-sandbox forward: port \"%s\" is %s\n", argv[3], errstr);
		return EX_USAGE;
	}
	(void)sb_forward_exec(argv[2], (unsigned)port, argv + 5);
	return EX_OSERR;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "forward") == 0)
		return cmd_forward(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("airlock-sandbox %s\n", AIRLOCK_VERSION);
		return EX_OK;
	}
	if (argc >= 2 && strcmp(argv[1], "guest") == 0)
		return sb_guest_main(argc, argv);
	if (argc >= 2 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
		strcmp(argv[1], "help") == 0)) {
		fputs(usage_text, stdout);
		return EX_OK;
	}
	if (argc >= 2)
		fprintf(stderr, "airlock-sandbox: unknown command \"%s\"\n", argv[1]);
	fputs(usage_text, stderr);
	return EX_USAGE;
}
