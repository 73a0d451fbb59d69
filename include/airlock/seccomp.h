/* The sandbox's seccomp filter: built with libseccomp, exported as BPF for bwrap --seccomp. */
/* The descriptor sb_seccomp_fd returns is the caller's to close. */
#ifndef AIRLOCK_SECCOMP_H
#define AIRLOCK_SECCOMP_H

/*
 * Builds the filter every sandbox runs under and writes it, as the BPF program bwrap's
 * --seccomp option reads, into a new memory file positioned at its start.
 * The filter allows by default and refuses (EPERM) the calls that reach past the sandbox:
 * ptrace, process_vm_readv/writev, mount and the new mount API, umount, pivot_root,
 * unshare, setns, keyctl, add_key, request_key, bpf, perf_event_open, userfaultfd,
 * io_uring_*, kexec_*, the module calls, reboot, swapon/swapoff, and a few more; clone with
 * any namespace flag (CLONE_NEWUSER among them) is refused; clone3 fails with ENOSYS so libc
 * falls back to clone, whose flags the filter can see; ioctl TIOCSTI and TIOCLINUX are
 * matched on the low 32 bits of the request, so variants with high bits set are refused too.
 * socket and socketpair are allowed for AF_UNIX, AF_INET and AF_INET6 only; every other
 * family (AF_NETLINK, AF_VSOCK, AF_PACKET, ...) fails with EAFNOSUPPORT, judged on the low
 * 32 bits of the argument as the kernel reads it.
 * Calls from another ABI (32-bit x86 with its socketcall, and x32, on x86_64) kill the
 * process.
 * Returns the descriptor (close-on-exec, owned by the caller), or -1 with errno set.
 */
int sb_seccomp_fd(void) __attribute__((warn_unused_result));

#endif
