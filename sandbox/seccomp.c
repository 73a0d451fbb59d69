/* The sandbox's seccomp filter: built with libseccomp, exported as BPF for bwrap --seccomp. */
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <seccomp.h>

#include "airlock/seccomp.h"

/* Refused with EPERM. Names this architecture lacks are skipped. */
static const char *const denied[] = {
	"ptrace", "process_vm_readv", "process_vm_writev",
	"mount", "umount", "umount2", "pivot_root", "chroot",
	"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
	"unshare", "setns",
	"keyctl", "add_key", "request_key",
	"bpf", "perf_event_open", "userfaultfd",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"kexec_load", "kexec_file_load",
	"init_module", "finit_module", "delete_module", "create_module",
	"reboot", "swapon", "swapoff",
	"acct", "quotactl", "syslog", "uselib", "lookup_dcookie",
	"open_by_handle_at", "name_to_handle_at", "nfsservctl",
	"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"iopl", "ioperm", "vhangup", "fanotify_init",
};

/* Namespace flags a clone may not carry: each one is a rule, and rules are or'ed. */
static const unsigned long clone_ns_flags[] = {
	CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET,
	CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWCGROUP,
};

/* Terminal ioctls that inject input or talk to the console. */
static const unsigned long denied_ioctls[] = { TIOCSTI, TIOCLINUX };

int
sb_seccomp_fd(void)
{
	scmp_filter_ctx ctx = NULL;
	int fd = -1;
	int rc = 0;
	int saved;
	size_t i;

	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (ctx == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	/* A foreign architecture's calls (int 0x80 on x86_64) would bypass every rule. */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	for (i = 0; rc == 0 && i < sizeof(denied) / sizeof(denied[0]); i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);

		if (nr >= 0)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
	}
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
		    seccomp_syscall_resolve_name("clone3"), 0);
	for (i = 0; rc == 0 && i < sizeof(clone_ns_flags) / sizeof(clone_ns_flags[0]); i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, clone_ns_flags[i], clone_ns_flags[i]));
	/* The kernel reads the request as 32 bits; compare only those. */
	for (i = 0; rc == 0 && i < sizeof(denied_ioctls) / sizeof(denied_ioctls[0]); i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
		    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, denied_ioctls[i]));
	if (rc < 0)
		goto fail;
	fd = memfd_create("airlock-seccomp", MFD_CLOEXEC);
	if (fd == -1) {
		rc = -errno;
		goto fail;
	}
	if ((rc = seccomp_export_bpf(ctx, fd)) < 0)
		goto fail;
	if (lseek(fd, 0, SEEK_SET) == -1) {
		rc = -errno;
		goto fail;
	}
	seccomp_release(ctx);
	return fd;

fail:
	saved = rc < 0 ? -rc : EINVAL;
	if (fd != -1)
		close(fd);
	if (ctx != NULL)
		seccomp_release(ctx);
	errno = saved;
	return -1;
}
