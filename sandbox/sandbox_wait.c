/*
 * sandbox_wait.c: a launched program supervised to its end: its input pumped in, its
 * output drained under the cap, the wall, CPU, memory and process limits watched, the
 * guest's end line read (gVisor), and the verdict and its figures (sb_wait, sb_ready).
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
#include "airlock/proxy.h"
#include "airlock/sandbox.h"
#include "airlock/seccomp.h"
#include "sandbox_int.h"

/* Writes to a pipe whose reader may be gone, without letting SIGPIPE end the caller. */
static ssize_t
write_quiet(int fd, const void *buf, size_t len)
{
	sigset_t pipe_set, old;
	ssize_t n;
	int e;
	struct timespec zero = { 0, 0 };

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	n = write(fd, buf, len);
	e = errno;
	if (n == -1 && e == EPIPE && !sigismember(&old, SIGPIPE))
		while (sigtimedwait(&pipe_set, NULL, &zero) == -1 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return n;
}

/* Feeds one pending buffer; closes the pipe when the reader has left. */
static void
feed_pipe(int *fd, const char *buf, size_t len, size_t *off)
{
	ssize_t n;

	if (*off >= len)
		return;
	n = write_quiet(*fd, buf + *off, len - *off);
	if (n > 0)
		*off += (size_t)n;
	else if (n == -1 && errno != EAGAIN && errno != EINTR)
		sb_close_fd(fd);
}

/* Reads what is there; returns 1 when the cap was passed, else 0. */
static int
drain(struct outbuf *b)
{
	char chunk[65536];
	ssize_t n;

	for (;;) {
		n = read(b->fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			sb_close_fd(&b->fd);
			return 0;
		}
		if (b->data == NULL && (b->data = malloc(b->cap + 1)) == NULL) {
			/* Without room to keep output, stop the program as if over its cap. */
			b->is_truncated = 1;
			sb_close_fd(&b->fd);
			return 1;
		}
		if ((size_t)n > b->cap - b->len) {
			memcpy(b->data + b->len, chunk, b->cap - b->len);
			b->len = b->cap;
			b->is_truncated = 1;
			sb_close_fd(&b->fd);
			return 1;
		}
		memcpy(b->data + b->len, chunk, (size_t)n);
		b->len += (size_t)n;
	}
}

static void
stop(struct sb_run *run, enum sb_limit why, enum sb_limit *stopped)
{
	if (*stopped == SB_LIMIT_NONE)
		*stopped = why;
	if (!run->is_reaped)
		(void)kill(run->pid, SIGKILL);
	(void)sb_cgroup_kill(run->cg);
}

void
sb_reap(struct sb_run *run)
{
	pid_t r;

	do
		r = wait4(run->pid, &run->status, 0, &run->ru);
	while (r == -1 && errno == EINTR);
	run->is_reaped = 1;
	sb_close_fd(&run->pidfd);
}

static int
take(struct outbuf *b, char **data, size_t *len, int *is_truncated)
{
	if (b->data == NULL && (b->data = malloc(1)) == NULL)
		return -1;
	b->data[b->len] = '\0';
	*data = b->data;
	*len = b->len;
	*is_truncated = b->is_truncated;
	b->data = NULL;
	return 0;
}

/* The program is handed over: its wall clock and CPU time count from now. */
static void
hand_over(struct sb_run *run)
{
	int64_t cpu = sb_cgroup_cpu_ns(run->cg);

	run->is_ready = 1;
	run->ready_us = sb_now_us();
	run->cpu_base = cpu > 0 ? cpu : 0;
}

/* gVisor: takes the guest's ready line off the start of stderr, once it is all there. */
static void
check_ready(struct sb_run *run)
{
	struct outbuf *b = &run->err;
	size_t k = sizeof(SB_GUEST_READY) - 1, m;

	if (b->data == NULL || b->len == 0)
		return;
	m = b->len < k ? b->len : k;
	if (memcmp(b->data, SB_GUEST_READY, m) != 0) {
		/* runsc itself complaining: it never booted. */
		run->is_boot_failed = 1;
		return;
	}
	if (b->len < k)
		return;
	memmove(b->data, b->data + k, b->len - k);
	b->len -= k;
	hand_over(run);
}

/* gVisor: whether stderr ends with this run's end line (the program and all it started
 * are gone, its status is known). */
static int
is_ended(const struct sb_run *run)
{
	const struct outbuf *b = &run->err;
	size_t k = sizeof(SB_GUEST_END) - 1, from;
	const char *p;

	if (b->data == NULL || b->len <= k || b->data[b->len - 1] != '\n')
		return 0;
	from = b->len > SB_GUEST_END_MAX ? b->len - SB_GUEST_END_MAX : 0;
	p = memrchr(b->data + from, '\036', b->len - from);
	return p != NULL && (size_t)(b->data + b->len - p) > k + 32 &&
	    memcmp(p, SB_GUEST_END, k) == 0 && memcmp(p + k, run->nonce, 32) == 0;
}

/*
 * gVisor: takes the guest's end line off the end of stderr and its process-limit lines off
 * wherever they are (only lines carrying this run's nonce count), then applies the
 * program's own stderr cap.  Returns 1 when the program wrote more than that cap, else 0.
 */
static int
take_end(struct sb_run *run)
{
	struct outbuf *b = &run->err;
	size_t k = sizeof(SB_GUEST_END) - 1, from;
	char line[SB_GUEST_END_MAX + 1], nonce[40], pids_line[80];
	char *p;
	int status, pl;

	pl = snprintf(pids_line, sizeof(pids_line), SB_GUEST_PIDS "%s\n", run->nonce);
	while (b->data != NULL && pl > 0 &&
	    (p = memmem(b->data, b->len, pids_line, (size_t)pl)) != NULL) {
		memmove(p, p + pl, b->len - (size_t)(p - b->data) - (size_t)pl);
		b->len -= (size_t)pl;
		run->end_pids = 1;
	}

	if (b->data != NULL && b->len > k && b->data[b->len - 1] == '\n') {
		from = b->len > SB_GUEST_END_MAX ? b->len - SB_GUEST_END_MAX : 0;
		p = memrchr(b->data + from, '\036', b->len - from);
		if (p != NULL && (size_t)(b->data + b->len - p) <= SB_GUEST_END_MAX &&
		    memcmp(p, SB_GUEST_END, k) == 0) {
			memcpy(line, p + k, (size_t)(b->data + b->len - p) - k);
			line[b->data + b->len - p - k] = '\0';
			if (sscanf(line, "%39s %d", nonce, &status) == 2 &&
			    strcmp(nonce, run->nonce) == 0) {
				run->has_end = 1;
				run->end_status = status;
				b->len = (size_t)(p - b->data);
			}
		}
	}
	if (b->len > run->limits.stderr_max) {
		b->len = run->limits.stderr_max;
		b->is_truncated = 1;
		return 1;
	}
	return 0;
}

static void
judge(struct sb_run *run, enum sb_limit stopped, struct sb_result *res)
{
	struct sb_cgroup_stats st;
	int st_code = run->has_end ? run->end_status : run->status;

	res->exit_code = -1;
	res->signal = 0;
	if (run->has_end) {
		/* The guest saw the program's own status: nothing to decode. */
		if (WIFEXITED(st_code))
			res->exit_code = WEXITSTATUS(st_code);
		else if (WIFSIGNALED(st_code))
			res->signal = WTERMSIG(st_code);
	} else if (WIFEXITED(st_code)) {
		int code = WEXITSTATUS(st_code);

		/* bwrap reports a program killed by signal N as exit status 128 + N. */
		if (code > 128 && code < 128 + NSIG)
			res->signal = code - 128;
		else
			res->exit_code = code;
	} else if (WIFSIGNALED(st_code))
		res->signal = WTERMSIG(st_code);
	sb_cgroup_stats(run->cg, &st);
	if (run->is_gvisor && !run->has_end && st.oom_kills > 0) {
		/* The kernel killed the runtime, and the program with it. */
		res->exit_code = -1;
		res->signal = SIGKILL;
	}
	res->limit = stopped;
	res->limits_hit = stopped != SB_LIMIT_NONE ? SB_LIMIT_BIT(stopped) : 0;
	if (res->signal == SIGXCPU)
		res->limits_hit |= SB_LIMIT_BIT(SB_LIMIT_CPU);
	if (res->signal == SIGXFSZ)
		res->limits_hit |= SB_LIMIT_BIT(SB_LIMIT_FSIZE);
	if (st.oom_kills > 0)
		res->limits_hit |= SB_LIMIT_BIT(SB_LIMIT_MEMORY);
	if (st.pids_refused > 0 || run->end_pids)
		res->limits_hit |= SB_LIMIT_BIT(SB_LIMIT_PIDS);
	if (res->limit == SB_LIMIT_NONE && res->exit_code != 0) {
		static const enum sb_limit order[] = {
			SB_LIMIT_CPU,
			SB_LIMIT_FSIZE,
			SB_LIMIT_MEMORY,
			SB_LIMIT_PIDS,
		};
		size_t i;

		for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
			if (res->limits_hit & SB_LIMIT_BIT(order[i])) {
				res->limit = order[i];
				break;
			}
	}
	res->cpu_us = st.cpu_ns >= 0
	    ? (st.cpu_ns - run->cpu_base) / 1000
	    : (int64_t)run->ru.ru_utime.tv_sec * 1000000 + run->ru.ru_utime.tv_usec +
		(int64_t)run->ru.ru_stime.tv_sec * 1000000 + run->ru.ru_stime.tv_usec;
	res->mem_peak = st.mem_peak;
}

int
sb_wait(struct sb_run *run, struct sb_result *res, char *err, size_t errlen)
{
	enum sb_limit stopped = SB_LIMIT_NONE;
	int64_t deadline;
	int64_t drain_until = 0;
	int64_t exit_us = 0;
	int is_src_open = run->stdin_src != -1;
	int is_boot_late = 0;

	memset(res, 0, sizeof(*res));
	if (run->is_gvisor && !run->is_fed && sb_frame(run, NULL, 0, NULL, 0) == -1) {
		sb_say(err, errlen, "out of memory");
		return -1;
	}
	run->is_fed = 1;
	/* A sandbox found ready before (a warm one) starts its clocks now, like any other. */
	if (!run->is_gvisor || run->is_ready)
		hand_over(run);
	deadline = run->is_ready ? run->ready_us + run->limits.wall_ms * 1000
				 : sb_now_us() + (int64_t)SB_BOOT_MS * 1000;
	if (run->prog_w != -1 && run->prog_len == 0)
		sb_close_fd(&run->prog_w);
	for (;;) {
		struct pollfd pf[6];
		int np = 0, i_out = -1, i_err = -1, i_in = -1, i_prog = -1, i_pid = -1, i_src = -1;
		int64_t now = sb_now_us(), wait_us;
		int in_pending;

		in_pending = run->input_off < run->input_len || run->pump_off < run->pump_len;
		if (run->in_w != -1 && !in_pending && !is_src_open)
			sb_close_fd(&run->in_w);
		if (run->out.fd != -1) {
			pf[np] = (struct pollfd){ run->out.fd, POLLIN, 0 };
			i_out = np++;
		}
		if (run->err.fd != -1) {
			pf[np] = (struct pollfd){ run->err.fd, POLLIN, 0 };
			i_err = np++;
		}
		if (run->in_w != -1 && in_pending) {
			pf[np] = (struct pollfd){ run->in_w, POLLOUT, 0 };
			i_in = np++;
		} else if (run->in_w != -1 && is_src_open) {
			pf[np] = (struct pollfd){ run->stdin_src, POLLIN, 0 };
			i_src = np++;
		}
		if (run->prog_w != -1) {
			pf[np] = (struct pollfd){ run->prog_w, POLLOUT, 0 };
			i_prog = np++;
		}
		if (!run->is_reaped) {
			pf[np] = (struct pollfd){ run->pidfd, POLLIN, 0 };
			i_pid = np++;
		}
		if (run->is_reaped && (i_out == -1 && i_err == -1))
			break;
		if (run->is_reaped && now >= drain_until)
			break;
		wait_us = run->is_reaped ? drain_until - now : deadline - now;
		if (wait_us > 100000)
			wait_us = 100000;
		if (wait_us < 0)
			wait_us = 0;
		if (poll(pf, (nfds_t)np, (int)((wait_us + 999) / 1000)) == -1 && errno != EINTR) {
			sb_say(err, errlen, "poll: %s", strerror(errno));
			stop(run, SB_LIMIT_NONE, &stopped);
			sb_reap(run);
			goto fail;
		}
		if (i_out != -1 && pf[i_out].revents != 0 && drain(&run->out))
			stop(run, SB_LIMIT_OUTPUT, &stopped);
		if (i_err != -1 && pf[i_err].revents != 0 && drain(&run->err))
			stop(run, SB_LIMIT_OUTPUT, &stopped);
		if (run->is_gvisor && !run->is_ready && !run->is_boot_failed) {
			check_ready(run);
			if (run->is_ready)
				deadline = run->ready_us + run->limits.wall_ms * 1000;
		}
		if (run->is_gvisor && !run->is_reaped && run->is_ready && is_ended(run)) {
			/* Everything the program wrote is in the pipes: take it, and end the
			 * runtime at once rather than wait for its own shutdown. */
			if (run->out.fd != -1 && drain(&run->out))
				stop(run, SB_LIMIT_OUTPUT, &stopped);
			stop(run, SB_LIMIT_NONE, &stopped);
		}
		if (i_prog != -1 && pf[i_prog].revents != 0) {
			feed_pipe(&run->prog_w, run->prog, run->prog_len, &run->prog_off);
			if (run->prog_off >= run->prog_len)
				sb_close_fd(&run->prog_w);
		}
		if (i_in != -1 && pf[i_in].revents != 0) {
			if (run->input_off < run->input_len)
				feed_pipe(&run->in_w, run->input, run->input_len, &run->input_off);
			else
				feed_pipe(&run->in_w, run->pump, run->pump_len, &run->pump_off);
		}
		if (i_src != -1 && pf[i_src].revents != 0) {
			ssize_t n = read(run->stdin_src, run->pump, sizeof(run->pump));

			if (n > 0) {
				run->pump_len = (size_t)n;
				run->pump_off = 0;
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN))
				is_src_open = 0;
		}
		if (i_pid != -1 && pf[i_pid].revents != 0) {
			sb_reap(run);
			exit_us = sb_now_us();
			/* The namespace died with its init; anything left in the cgroup goes too. */
			(void)sb_cgroup_kill(run->cg);
			sb_close_fd(&run->in_w);
			sb_close_fd(&run->prog_w);
			drain_until = exit_us + 1000000;
		}
		now = sb_now_us();
		if (!run->is_reaped && now >= deadline) {
			if (run->is_ready)
				stop(run, SB_LIMIT_WALL, &stopped);
			else {
				is_boot_late = 1;
				stop(run, SB_LIMIT_NONE, &stopped);
			}
		}
		if (!run->is_reaped && run->is_ready) {
			int64_t cpu = sb_cgroup_cpu_ns(run->cg);

			if (cpu - run->cpu_base > run->limits.cpu_ms * 1000000)
				stop(run, SB_LIMIT_CPU, &stopped);
		}
	}
	if (run->is_gvisor && !run->is_ready) {
		if (run->err.data != NULL)
			run->err.data[run->err.len] = '\0';
		sb_say(err, errlen, "gvisor: the sandbox did not boot%s: %.300s",
		    is_boot_late ? " in time" : "", run->err.data != NULL ? run->err.data : "");
		goto fail;
	}
	if (run->is_gvisor && take_end(run) == 1 && stopped == SB_LIMIT_NONE)
		stopped = SB_LIMIT_OUTPUT;
	res->wall_us = exit_us - run->ready_us;
	judge(run, stopped, res);
	if (take(&run->out, &res->out, &res->out_len, &res->out_truncated) == -1 ||
	    take(&run->err, &res->err, &res->err_len, &res->err_truncated) == -1) {
		sb_say(err, errlen, "out of memory");
		goto fail;
	}
	return 0;

fail:
	sb_result_release(res);
	return -1;
}

void
sb_result_release(struct sb_result *res)
{
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
	res->out_len = res->err_len = 0;
}

int
sb_ready(struct sb_run *run, int timeout_ms, char *err, size_t errlen)
{
	int64_t deadline = sb_now_us() + (int64_t)timeout_ms * 1000;

	while (run->is_gvisor && !run->is_ready) {
		struct pollfd pf = { run->err.fd, POLLIN, 0 };
		int64_t left = deadline - sb_now_us();

		if (run->is_boot_failed || run->err.fd == -1 || left <= 0) {
			sb_say(err, errlen, "gvisor: the sandbox did not boot%s",
			    left <= 0 ? " in time" : "");
			return -1;
		}
		if (poll(&pf, 1, (int)((left + 999) / 1000)) == -1 && errno != EINTR) {
			sb_say(err, errlen, "poll: %s", strerror(errno));
			return -1;
		}
		if (pf.revents != 0 && drain(&run->err)) {
			sb_say(err, errlen, "gvisor: the runtime wrote too much before booting");
			return -1;
		}
		check_ready(run);
	}
	return 0;
}

int
sb_is_alive(const struct sb_run *run)
{
	struct pollfd pf = { run->pidfd, POLLIN, 0 };

	if (run->is_reaped || run->is_fed || run->pidfd == -1)
		return 0;
	/* A gVisor runtime that failed to boot has exited too; one that booted said so on
	 * stderr, which stays unread until the call. */
	return poll(&pf, 1, 0) == 0;
}
