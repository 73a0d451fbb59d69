/* Unit tests for the gVisor level's prerequisite check (sandbox/gvisor.c, sb_gvisor_usable). */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "airlock/gvisor.h"
#include "tap.h"

/* Runs the check as uid 65534 in a child; returns what the child saw (1 refused, 0 not). */
static int
refused_as_nobody(const char *runsc, char *err, size_t errlen)
{
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	if (pipe(fds) == -1 || (pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		char why[256] = "";

		close(fds[0]);
		if (setgid(65534) == -1 || setuid(65534) == -1)
			_exit(2);
		if (sb_gvisor_usable(runsc, why, sizeof(why)) == 0)
			_exit(0);
		(void)write(fds[1], why, strlen(why));
		_exit(1);
	}
	close(fds[1]);
	n = read(fds[0], err, errlen - 1);
	err[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	if (waitpid(pid, &status, 0) == -1 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

int
main(void)
{
	char err[256], plain[] = "/tmp/airlock-test-gvisor-XXXXXX";
	int fd;

	err[0] = '\0';
	ok(sb_gvisor_usable("/nonexistent/runsc", err, sizeof(err)) == -1 &&
		strstr(err, "/nonexistent/runsc: No such file") != NULL,
	    "a runsc that is not there is refused, naming the path: %s", err);
	err[0] = '\0';
	if ((fd = mkstemp(plain)) != -1)
		close(fd);
	ok(fd != -1 && sb_gvisor_usable(plain, err, sizeof(err)) == -1 && err[0] != '\0',
	    "a runsc that is not executable (mode 0600) is refused: %s", err);
	(void)unlink(plain);
	if (geteuid() == 0) {
		err[0] = '\0';
		ok(sb_gvisor_usable("/bin/true", err, sizeof(err)) == 0,
		    "an executable runsc is usable by root: %s", err);
		ok(refused_as_nobody("/bin/true", err, sizeof(err)) == 1 &&
			strstr(err, "uid 65534") != NULL,
		    "the same runsc is refused to a process that is not root: %s", err);
	} else {
		ok(sb_gvisor_usable("/bin/true", err, sizeof(err)) == -1,
		    "an executable runsc is refused to a process that is not root: %s", err);
	}
	return tap_done();
}
