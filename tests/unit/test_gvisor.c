/* Unit tests for the gVisor level's checks (sandbox/gvisor.c): its prerequisites
 * (sb_gvisor_usable) and the proof kept for a boot (sb_gvisor_proven). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
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

/* Writes the proof sb_gvisor_proven keeps for the runsc at bin, with mode and owner uid.
 * Returns its path in path, or -1. */
static int
plant_proof(const char *bin, mode_t mode, uid_t uid, char *path, size_t pathlen)
{
	char boot[64] = "";
	struct stat st;
	FILE *f;

	if ((f = fopen("/proc/sys/kernel/random/boot_id", "r")) != NULL) {
		if (fgets(boot, sizeof(boot), f) == NULL)
			boot[0] = '\0';
		boot[strcspn(boot, "\n")] = '\0';
		fclose(f);
	}
	if (stat(bin, &st) == -1 || (mkdir(SB_GVISOR_PROOF_DIR, 0700) == -1 && errno != EEXIST))
		return -1;
	snprintf(path, pathlen, "%s/gvisor-%ju-%ju", SB_GVISOR_PROOF_DIR, (uintmax_t)st.st_dev,
	    (uintmax_t)st.st_ino);
	(void)unlink(path);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fprintf(f, "boot %s size %jd mtime %jd.%09ld\n", boot, (intmax_t)st.st_size,
	    (intmax_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	fclose(f);
	if (chmod(path, mode) == -1 || chown(path, uid, 0) == -1)
		return -1;
	return 0;
}

/* A runsc that cannot start anything: the full check fails with it. */
static int
make_fake_runsc(char *bin, size_t len)
{
	FILE *f;

	snprintf(bin, len, "/tmp/airlock-test-runsc-%ld", (long)getpid());
	if ((f = fopen(bin, "w")) == NULL)
		return -1;
	fputs("#!/bin/sh\nexit 1\n", f);
	fclose(f);
	return chmod(bin, 0755);
}

static void
test_proof(void)
{
	char bin[64], path[256], err[512];
	struct stat st;

	if (make_fake_runsc(bin, sizeof(bin)) == -1) {
		ok(0, "a fake runsc could not be made");
		return;
	}
	err[0] = '\0';
	ok(sb_gvisor_proven(bin, err, sizeof(err)) == -1 && err[0] != '\0',
	    "no proof yet: the full check runs, and fails with a runsc that starts nothing: %s",
	    err);
	ok(plant_proof(bin, 0600, 0, path, sizeof(path)) == 0, "a proof planted for it");
	ok(sb_gvisor_proven(bin, err, sizeof(err)) == 0,
	    "a proof of this boot for this very runsc, root's and private: no sandbox started");
	ok(chmod(path, 0644) == 0 && sb_gvisor_proven(bin, err, sizeof(err)) == -1,
	    "a proof others could have written does not count");
	ok(plant_proof(bin, 0600, 65534, path, sizeof(path)) == 0 &&
		sb_gvisor_proven(bin, err, sizeof(err)) == -1,
	    "a proof not owned by root does not count");
	ok(plant_proof(bin, 0600, 0, path, sizeof(path)) == 0 &&
		sb_gvisor_proven(bin, err, sizeof(err)) == 0,
	    "planted again: counts again");
	/* The runsc changes (an upgrade): its size, and so the proof, no longer match. */
	{
		FILE *f = fopen(bin, "a");

		if (f != NULL) {
			fputs("# upgraded\n", f);
			fclose(f);
		}
	}
	ok(stat(bin, &st) == 0 && sb_gvisor_proven(bin, err, sizeof(err)) == -1,
	    "a changed runsc is checked again");
	(void)unlink(path);
	(void)unlink(bin);
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
		test_proof();
	} else {
		ok(sb_gvisor_usable("/bin/true", err, sizeof(err)) == -1,
		    "an executable runsc is refused to a process that is not root: %s", err);
	}
	return tap_done();
}
