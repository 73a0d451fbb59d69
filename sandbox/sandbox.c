/*
 * sandbox.c: the sandbox launcher's interface: runs one program in a fresh sandbox
 * (bubblewrap or gVisor) under limits.  sb_spawn sets up the pipes, the cgroup, the egress
 * proxy and the child (sandbox_bwrap.c builds bwrap's command line); sb_feed hands the
 * program over; sandbox_wait.c supervises the run to its end.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "airlock/cgroup.h"
#include "airlock/gvisor.h"
#include "airlock/hex.h"
#include "airlock/proxy.h"
#include "airlock/sandbox.h"
#include "airlock/seccomp.h"
#include "sandbox_int.h"

void __attribute__((format(printf, 3, 4))) sb_say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int64_t
sb_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* execve's prototype predates const; nothing here writes through the result. */
static char *
unconst(const char *s)
{
	union {
		const char *c;
		char *m;
	} u = { .c = s };

	return u.m;
}

void
sb_close_fd(int *fd)
{
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

const char *
sb_isolation_name(enum sb_isolation i)
{
	return i == SB_ISOLATION_GVISOR ? "gvisor" : "namespace";
}

int
sb_isolation_parse(const char *s, enum sb_isolation *i)
{
	if (strcmp(s, "namespace") == 0)
		*i = SB_ISOLATION_NAMESPACE;
	else if (strcmp(s, "gvisor") == 0)
		*i = SB_ISOLATION_GVISOR;
	else
		return -1;
	return 0;
}

void
sb_limits_default(struct sb_limits *l)
{
	l->wall_ms = 10000;
	l->cpu_ms = 5000;
	l->mem_bytes = 256LL << 20;
	l->pids = 64;
	l->fsize_bytes = 16LL << 20;
	l->nofile = 64;
	l->tmp_bytes = 16LL << 20;
	l->stdout_max = 1 << 20;
	l->stderr_max = 256 << 10;
}

const char *
sb_limit_name(enum sb_limit l)
{
	switch (l) {
	case SB_LIMIT_NONE:
		return "none";
	case SB_LIMIT_WALL:
		return "wall";
	case SB_LIMIT_CPU:
		return "cpu";
	case SB_LIMIT_MEMORY:
		return "memory";
	case SB_LIMIT_PIDS:
		return "pids";
	case SB_LIMIT_FSIZE:
		return "fsize";
	case SB_LIMIT_OUTPUT:
		return "output";
	}
	return "unknown";
}

static int
make_pipe(int fds[2])
{
	return pipe2(fds, O_CLOEXEC);
}

/*
 * The host path of the launcher's own program, bound into a gVisor sandbox as its guest:
 * cfg->helper, else the running program when it is airlock-sandbox, else airlock-sandbox
 * in the running program's directory.  Returns 0, or -1 when there is none.
 */
static int
helper_path(const struct sb_config *cfg, char *path, size_t len)
{
	ssize_t n;
	char *slash;

	if (cfg->helper != NULL) {
		if (realpath(cfg->helper, path) == NULL)
			return -1;
		return access(path, R_OK | X_OK);
	}
	if ((n = readlink("/proc/self/exe", path, len - 1)) <= 0)
		return -1;
	path[n] = '\0';
	if ((slash = strrchr(path, '/')) == NULL)
		return -1;
	if (strcmp(slash + 1, "airlock-sandbox") != 0) {
		slash[1] = '\0';
		if (strlcat(path, "airlock-sandbox", len) >= len)
			return -1;
	}
	return access(path, R_OK | X_OK);
}

/* Starts the egress proxy of a run on a socket in a new directory; 0, or -1 with err. */
static int
start_proxy(struct sb_run *run, const struct sb_config *cfg, char *sock, size_t socklen, char *err,
    size_t errlen)
{
	char perr[256];

	strlcpy(run->sockdir, "/tmp/airlock-sb-XXXXXX", sizeof(run->sockdir));
	if (mkdtemp(run->sockdir) == NULL) {
		run->sockdir[0] = '\0';
		sb_say(err, errlen, "cannot make the proxy's directory: %s", strerror(errno));
		return -1;
	}
	/* bwrap runs as SB_UID when we are root: it must reach the socket. */
	if (chmod(run->sockdir, 0711) == -1) {
		sb_say(err, errlen, "chmod %s: %s", run->sockdir, strerror(errno));
		return -1;
	}
	snprintf(sock, socklen, "%s/proxy.sock", run->sockdir);
	if (sb_proxy_start(cfg->allow, cfg->on_egress, cfg->egress_arg, sock,
		geteuid() == 0 ? SB_UID : (uid_t)-1, &run->proxy, perr, sizeof(perr)) == -1) {
		sb_say(err, errlen, "%s", perr);
		return -1;
	}
	return 0;
}

int
sb_spawn(const struct sb_config *cfg, struct sb_run **out, char *err, size_t errlen)
{
	static char links[SB_TOP_DIRS][PATH_MAX];
	static pthread_mutex_t links_lock = PTHREAD_MUTEX_INITIALIZER;
	static const char *const proxy_env[] = {
		"HTTP_PROXY=http://127.0.0.1:3128",
		"HTTPS_PROXY=http://127.0.0.1:3128",
		"http_proxy=http://127.0.0.1:3128",
		"https_proxy=http://127.0.0.1:3128",
		"NO_PROXY=",
		"no_proxy=",
	};
	struct sb_run *run = NULL;
	struct args a;
	char cgerr[256];
	char sock[128] = "";
	char helper[PATH_MAX], state[PATH_MAX + 16], id[64];
	int is_gvisor = cfg->isolation == SB_ISOLATION_GVISOR;
	const char *prog = is_gvisor ? (cfg->runsc != NULL ? cfg->runsc : "/usr/bin/runsc")
	    : cfg->bwrap != NULL     ? cfg->bwrap
				     : "/usr/bin/bwrap";
	char *envp[12];
	size_t ne = 0, i;
	int in[2] = { -1, -1 }, o[2] = { -1, -1 }, e[2] = { -1, -1 }, pg[2] = { -1, -1 };
	int ex[2] = { -1, -1 };
	int scfd = -1, afd = -1, hfd = -1;
	int src[8];
	int child_errno;
	ssize_t n;
	pid_t parent = getpid();
	char **argv = NULL;
	size_t ac;
	int64_t mem, pids;
	uint8_t rnd[16];
	static const char fdnum[] = { '0' + FD_ARGS, '\0' };

	*out = NULL;
	memset(&a, 0, sizeof(a));
	if (cfg->argv == NULL || cfg->argv[0] == NULL) {
		sb_say(err, errlen, "no command to run");
		return -1;
	}
	if (sb_check_limits(&cfg->limits, err, errlen) == -1)
		return -1;
	if (is_gvisor && geteuid() != 0) {
		sb_say(err, errlen,
		    "gvisor: runsc needs a launcher running as root (uid %d is not); "
		    "use the namespace level",
		    (int)geteuid());
		return -1;
	}
	if (!is_gvisor && geteuid() != 0 && sb_check_groups(err, errlen) == -1)
		return -1;
	if (access(prog, X_OK) == -1) {
		sb_say(err, errlen, "cannot execute %s: %s", prog, strerror(errno));
		return -1;
	}
	if (is_gvisor && helper_path(cfg, helper, sizeof(helper)) == -1) {
		sb_say(err, errlen,
		    "gvisor: cannot find the airlock-sandbox program to run as the "
		    "sandbox's init");
		return -1;
	}
	if ((run = calloc(1, sizeof(*run))) == NULL) {
		sb_say(err, errlen, "out of memory");
		return -1;
	}
	run->is_gvisor = is_gvisor;
	run->pid = -1;
	run->pidfd = run->in_w = run->prog_w = run->out.fd = run->err.fd = -1;
	run->stdin_src = cfg->stdin_fd;
	run->limits = cfg->limits;
	run->out.cap = cfg->limits.stdout_max;
	run->err.cap = cfg->limits.stderr_max;
	run->start_us = sb_now_us();
	mem = cfg->limits.mem_bytes;
	pids = cfg->limits.pids;
	if (is_gvisor) {
		/* Room for the guest's two lines, which are taken out again. */
		run->err.cap += sizeof(SB_GUEST_READY) + SB_GUEST_END_MAX;
		mem += SB_GVISOR_MEM_EXTRA;
		pids += SB_GVISOR_PIDS_EXTRA;
		arc4random_buf(rnd, sizeof(rnd));
		hex_encode(rnd, sizeof(rnd), run->nonce);
	}
	if (sb_cgroup_create(cfg->cgroup_parent, mem, pids, &run->cg, cgerr, sizeof(cgerr)) == -1) {
		sb_say(err, errlen, "no cgroup control, refusing to run: %s", cgerr);
		goto fail;
	}
	envp[ne++] = (char *)"PATH=/usr/local/bin:/usr/bin:/bin";
	if (!is_gvisor) {
		if ((scfd = sb_seccomp_fd()) == -1) {
			sb_say(err, errlen, "cannot build the seccomp filter: %s", strerror(errno));
			goto fail;
		}
		envp[ne++] = (char *)"HOME=/tmp";
		envp[ne++] = (char *)"TMPDIR=/tmp";
		envp[ne++] = (char *)"LANG=C.UTF-8";
	}
	if (cfg->allow != NULL) {
		if (!is_gvisor && (hfd = sb_open_helper(cfg)) == -1) {
			sb_say(err, errlen, "cannot find the airlock-sandbox helper for egress");
			goto fail;
		}
		if (start_proxy(run, cfg, sock, sizeof(sock), err, errlen) == -1)
			goto fail;
		for (i = 0; !is_gvisor && i < sizeof(proxy_env) / sizeof(proxy_env[0]); i++)
			envp[ne++] = unconst(proxy_env[i]);
	}
	envp[ne] = NULL;
	for (n = 0; cfg->argv[n] != NULL; n++)
		;
	if ((argv = calloc((size_t)n + 16, sizeof(*argv))) == NULL) {
		sb_say(err, errlen, "out of memory");
		goto fail;
	}
	ac = 0;
	if (is_gvisor) {
		if (sb_gvisor_bundle(cfg, helper, cfg->allow != NULL ? sock : NULL, run->bundle,
			sizeof(run->bundle), id, sizeof(id), err, errlen) == -1)
			goto fail;
		snprintf(state, sizeof(state), "--root=%s/state", run->bundle);
		argv[ac++] = (char *)"runsc";
		argv[ac++] = state;
		argv[ac++] = (char *)"--network=none";
		argv[ac++] = (char *)"--platform=ptrace";
		/* The runtime stays in the sandbox's own cgroup, made above. */
		argv[ac++] = (char *)"--ignore-cgroups";
		argv[ac++] =
		    cfg->allow != NULL ? (char *)"--host-uds=open" : (char *)"--host-uds=none";
		argv[ac++] = (char *)"--overlay2=none";
		argv[ac++] = (char *)"run";
		argv[ac++] = (char *)"--bundle";
		argv[ac++] = run->bundle;
		argv[ac++] = id;
		argv[ac] = NULL;
	} else {
		/* bwrap takes the command from its own command line, not from --args. */
		argv[ac++] = (char *)"bwrap";
		argv[ac++] = (char *)"--args";
		argv[ac++] = unconst(fdnum);
		argv[ac++] = (char *)"--";
		if (cfg->allow != NULL) {
			argv[ac++] = (char *)"/airlock/airlock-sandbox";
			argv[ac++] = (char *)"forward";
			argv[ac++] = (char *)"/airlock/proxy.sock";
			argv[ac++] = (char *)"3128";
			argv[ac++] = (char *)"--";
		}
		for (n = 0; cfg->argv[n] != NULL; n++)
			argv[ac++] = unconst(cfg->argv[n]);
		argv[ac] = NULL;
		pthread_mutex_lock(&links_lock);
		n = sb_build_args(&a, cfg, sock, links);
		afd = n == 0 ? sb_args_fd(&a) : -1;
		pthread_mutex_unlock(&links_lock);
		if (afd == -1) {
			sb_say(err, errlen, "cannot pass bwrap its arguments (too many, or %s)",
			    strerror(errno));
			goto fail;
		}
	}
	if (make_pipe(in) == -1 || make_pipe(o) == -1 || make_pipe(e) == -1 ||
	    make_pipe(ex) == -1 || (cfg->has_program && !is_gvisor && make_pipe(pg) == -1)) {
		sb_say(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	src[0] = in[0];
	src[1] = o[1];
	src[2] = e[1];
	src[3] = pg[0];
	src[4] = scfd;
	src[5] = afd;
	src[6] = ex[1];
	src[7] = hfd;
	run->pid = fork();
	if (run->pid == -1) {
		sb_say(err, errlen, "fork: %s", strerror(errno));
		goto fail;
	}
	if (run->pid == 0)
		sb_child(cfg, run->cg, prog, argv, envp, src, parent, is_gvisor);
	sb_close_fd(&in[0]);
	sb_close_fd(&o[1]);
	sb_close_fd(&e[1]);
	sb_close_fd(&pg[0]);
	sb_close_fd(&ex[1]);
	sb_close_fd(&scfd);
	sb_close_fd(&afd);
	sb_close_fd(&hfd);
	run->in_w = in[1];
	run->out.fd = o[0];
	run->err.fd = e[0];
	run->prog_w = pg[1];
	in[1] = o[0] = e[0] = pg[1] = -1;
	do
		n = read(ex[0], &child_errno, sizeof(child_errno));
	while (n == -1 && errno == EINTR);
	sb_close_fd(&ex[0]);
	if (n == (ssize_t)sizeof(child_errno)) {
		sb_say(err, errlen, "cannot start %s: %s", prog, strerror(child_errno));
		goto fail;
	}
	run->pidfd = (int)syscall(SYS_pidfd_open, run->pid, 0);
	if (run->pidfd == -1) {
		sb_say(err, errlen, "pidfd_open: %s", strerror(errno));
		goto fail;
	}
	(void)fcntl(run->out.fd, F_SETFL, O_NONBLOCK);
	(void)fcntl(run->err.fd, F_SETFL, O_NONBLOCK);
	(void)fcntl(run->in_w, F_SETFL, O_NONBLOCK);
	if (run->prog_w != -1)
		(void)fcntl(run->prog_w, F_SETFL, O_NONBLOCK);
	free(argv);
	*out = run;
	return 0;

fail:
	free(argv);
	sb_close_fd(&in[0]);
	sb_close_fd(&in[1]);
	sb_close_fd(&o[0]);
	sb_close_fd(&o[1]);
	sb_close_fd(&e[0]);
	sb_close_fd(&e[1]);
	sb_close_fd(&pg[0]);
	sb_close_fd(&pg[1]);
	sb_close_fd(&ex[0]);
	sb_close_fd(&ex[1]);
	sb_close_fd(&scfd);
	sb_close_fd(&afd);
	sb_close_fd(&hfd);
	sb_free(run);
	return -1;
}

/* gVisor: the guest reads a header, the program and then stdin, all from its stdin. */
int
sb_frame(struct sb_run *run, const void *program, size_t program_len, const void *input,
    size_t input_len)
{
	char head[SB_GUEST_HEADER_MAX];
	int hl;

	hl = snprintf(head, sizeof(head), "AIRLOCK1 %s %zu\n", run->nonce, program_len);
	if (hl < 0 || (size_t)hl >= sizeof(head) ||
	    (run->input = malloc((size_t)hl + program_len + input_len)) == NULL)
		return -1;
	memcpy(run->input, head, (size_t)hl);
	if (program_len > 0)
		memcpy(run->input + hl, program, program_len);
	if (input_len > 0)
		memcpy(run->input + hl + program_len, input, input_len);
	run->input_len = (size_t)hl + program_len + input_len;
	return 0;
}

int
sb_feed(struct sb_run *run, const void *program, size_t program_len, const void *input,
    size_t input_len)
{
	if (run->is_fed || (program_len > 0 && run->prog_w == -1 && !run->is_gvisor)) {
		errno = EINVAL;
		return -1;
	}
	run->is_fed = 1;
	if (run->is_gvisor)
		return sb_frame(run, program, program_len, input, input_len);
	if (program_len > 0) {
		if ((run->prog = malloc(program_len)) == NULL)
			return -1;
		memcpy(run->prog, program, program_len);
		run->prog_len = program_len;
	}
	if (input_len > 0) {
		if ((run->input = malloc(input_len)) == NULL)
			return -1;
		memcpy(run->input, input, input_len);
		run->input_len = input_len;
	}
	return 0;
}

void
sb_free(struct sb_run *run)
{
	if (run == NULL)
		return;
	if (run->pid > 0 && !run->is_reaped) {
		(void)kill(run->pid, SIGKILL);
		if (run->cg != NULL)
			(void)sb_cgroup_kill(run->cg);
		sb_reap(run);
	}
	sb_close_fd(&run->pidfd);
	sb_close_fd(&run->in_w);
	sb_close_fd(&run->prog_w);
	sb_close_fd(&run->out.fd);
	sb_close_fd(&run->err.fd);
	sb_cgroup_destroy(run->cg);
	sb_proxy_stop(run->proxy);
	if (run->sockdir[0] != '\0')
		(void)rmdir(run->sockdir);
	sb_gvisor_remove(run->bundle);
	free(run->out.data);
	free(run->err.data);
	free(run->prog);
	free(run->input);
	free(run);
}
