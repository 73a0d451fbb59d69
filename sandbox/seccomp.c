/* The sandbox's seccomp filter: built with libseccomp, exported as BPF for bwrap --seccomp. */
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <seccomp.h>

#include "airlock/seccomp.h"

/* Refused with EPERM. Names this architecture lacks are skipped. */
static const char *const denied[] = {
	"ptrace",
	"process_vm_readv",
	"process_vm_writev",
	"mount",
	"umount",
	"umount2",
	"pivot_root",
	"chroot",
	"fsopen",
	"fsconfig",
	"fsmount",
	"fspick",
	"move_mount",
	"open_tree",
	"mount_setattr",
	"unshare",
	"setns",
	"keyctl",
	"add_key",
	"request_key",
	"bpf",
	"perf_event_open",
	"userfaultfd",
	"io_uring_setup",
	"io_uring_enter",
	"io_uring_register",
	"kexec_load",
	"kexec_file_load",
	"init_module",
	"finit_module",
	"delete_module",
	"create_module",
	"reboot",
	"swapon",
	"swapoff",
	"acct",
	"quotactl",
	"syslog",
	"uselib",
	"lookup_dcookie",
	"open_by_handle_at",
	"name_to_handle_at",
	"nfsservctl",
	"settimeofday",
	"clock_settime",
	"clock_adjtime",
	"adjtimex",
	"iopl",
	"ioperm",
	"vhangup",
	"fanotify_init",
};

/* Namespace flags a clone may not carry: each one is a rule, and rules are or'ed. */
static const unsigned long clone_ns_flags[] = {
	CLONE_NEWUSER,
	CLONE_NEWNS,
	CLONE_NEWPID,
	CLONE_NEWNET,
	CLONE_NEWUTS,
	CLONE_NEWIPC,
	CLONE_NEWCGROUP,
};

/* Terminal ioctls that inject input or talk to the console. */
static const unsigned long denied_ioctls[] = { TIOCSTI, TIOCLINUX };

/*
 * The socket families a program may open: local sockets, and IP, which the network
 * namespace confines (the egress forwarder inside needs both). Not AF_NETLINK: glibc's
 * getaddrinfo asks it only for AI_ADDRCONFIG and assumes both IP families when refused,
 * and the generic and routing families it reaches are kernel surface no program here
 * needs. Every other family (AF_VSOCK to the hypervisor, AF_PACKET, AF_ALG, ...) fails.
 */
static int
is_allowed_family(unsigned family)
{
	return family == AF_UNIX || family == AF_INET || family == AF_INET6;
}

/*
 * Refuses socket and socketpair of every family but the allowed ones, with EAFNOSUPPORT,
 * as a kernel without that family would. libseccomp cannot say "not one of", nor compare
 * one argument twice in a rule, so the refused set is spelled out: each value below 32
 * that is not allowed, then any value with a bit from 5 to 31 set (32 and up, negative
 * ones too). The kernel reads the family as an int, so only the low 32 bits are compared:
 * high bits can neither hide a refused family nor make an allowed one look refused.
 */
static int
add_family_rules(scmp_filter_ctx ctx, int nr)
{
	unsigned v, bit;
	int rc = 0;

	for (v = 0; rc == 0 && v < 32; v++)
		if (!is_allowed_family(v))
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), nr, 1,
			    SCMP_A0(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, v));
	for (bit = 5; rc == 0 && bit < 32; bit++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), nr, 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, 1u << bit, 1u << bit));
	return rc;
}

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
	/* A foreign architecture's calls would bypass every rule: on x86_64, the 32-bit ABI
	 * (int 0x80, where socketcall multiplexes socket) and x32 (the native audit
	 * architecture with bit 30 in the number, which libseccomp sends to this action when
	 * x32 is not in the filter). Only the native architecture is added, so both kill. */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	for (i = 0; rc == 0 && i < sizeof(denied) / sizeof(denied[0]); i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);

		if (nr >= 0)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
	}
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
		    seccomp_syscall_resolve_name("clone3"), 0);
	if (rc == 0)
		rc = add_family_rules(ctx, SCMP_SYS(socket));
	if (rc == 0)
		rc = add_family_rules(ctx, SCMP_SYS(socketpair));
	/* Where the native ABI has socketcall (32-bit x86 builds), it could carry any family
	 * past the rules above, which see only socket and socketpair. */
	if (rc == 0 && seccomp_syscall_resolve_name("socketcall") >= 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM),
		    seccomp_syscall_resolve_name("socketcall"), 0);
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
