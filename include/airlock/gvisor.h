/* The gVisor level: runsc with an OCI bundle made per sandbox, and the guest init inside it. */
/*
 * Owns nothing but the bundle directory sb_gvisor_bundle makes, which sb_gvisor_remove
 * deletes.
 */
#ifndef AIRLOCK_GVISOR_H
#define AIRLOCK_GVISOR_H

#include <stddef.h>

#include "airlock/sandbox.h"

/* Where the launcher's own program (the guest init and the egress forwarder) is inside. */
#define SB_GUEST_PATH "/airlock/airlock-sandbox"
#define SB_GUEST_SOCK "/airlock/proxy.sock"
/* The seccomp filter, as BPF built by the launcher, readable by the guest (root) only. */
#define SB_GUEST_FILTER "/airlock/seccomp.bpf"

/*
 * What the launcher writes first on the guest's stdin: "AIRLOCK1 NONCE LEN\n", then LEN
 * bytes of program text, then the program's stdin.  NONCE is 32 hex digits drawn per run.
 */
#define SB_GUEST_HEADER_MAX 96
/* The first bytes the guest writes on stderr, once it runs: the sandbox has booted. */
#define SB_GUEST_READY "\036airlock-guest-ready\n"
/* The last line the guest writes on stderr, after every process of the program is gone:
 * "\036airlock-guest-end NONCE STATUS\n", STATUS the main process's wait status.  The nonce
 * makes it unforgeable. */
#define SB_GUEST_END "\036airlock-guest-end "
/* A line the guest writes on stderr, among the program's output, when the number of the
 * program's processes reaches its limit: "\036airlock-guest-pids NONCE\n". */
#define SB_GUEST_PIDS "\036airlock-guest-pids "
#define SB_GUEST_END_MAX 96

/* Memory and host processes the runtime itself needs beside the program (sentry, gofer,
 * the ptrace platform's stubs): added to the sandbox's cgroup limits, which bound the whole
 * runtime; the program's own process limit holds inside (RLIMIT_NPROC of gVisor's kernel). */
#define SB_GVISOR_MEM_EXTRA (64LL << 20)
#define SB_GVISOR_PIDS_EXTRA 256

/*
 * Writes an OCI bundle for one sandbox in a new directory (mode 0700) under /tmp: a
 * read-only root of empty mount points, /usr and a few files of /etc bound read-only, a
 * private /tmp and /dev/shm of limits.tmp_bytes, the guest (helper, a host path) at
 * SB_GUEST_PATH, the proxy socket sock (NULL: none) at SB_GUEST_SOCK, uid 0 inside with
 * only the capabilities the guest needs to drop to the sandbox's uid.  Stores the directory
 * in dir and a new container id in id.  Returns 0, or -1 with a message in err (nothing
 * left behind).
 */
int sb_gvisor_bundle(const struct sb_config *cfg, const char *helper, const char *sock, char *dir,
    size_t dirlen, char *id, size_t idlen, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Removes a bundle directory and everything under it (runsc's state included). */
void sb_gvisor_remove(const char *dir);

/*
 * Whether the gVisor level's prerequisites are here, without starting anything: runsc at
 * `runsc` (NULL for /usr/bin/runsc) is an executable, and this process runs as root (runsc
 * makes its sandbox's namespaces and cgroup as root).  sb_gvisor_check() is the full proof.
 * Returns 0, or -1 with the reason in err.
 */
int sb_gvisor_usable(const char *runsc, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Where sb_gvisor_proven() keeps its proofs: root's, on /run, gone at the next boot. */
#define SB_GVISOR_PROOF_DIR "/run/airlock"

/*
 * What a catalog load asks: the prerequisites (sb_gvisor_usable), then the full proof
 * (sb_gvisor_check: one real sandbox) unless this boot already has it for this very runsc
 * (same device, inode, size and modification time) from a root process: a file under
 * SB_GVISOR_PROOF_DIR, written after a check succeeds, so each airlockd start after the
 * first of a boot costs a stat, not a sandbox (about a second).  A failure is never kept.
 * Returns 0, or -1 with the reason in err.
 */
int sb_gvisor_proven(const char *runsc, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Whether the gVisor level can run here: starts one sandbox running `true` through the
 * same path as every call (runsc at `runsc`, NULL for /usr/bin/runsc), once per process,
 * and remembers the answer.  Returns 0, or -1 with the reason in err.
 */
int sb_gvisor_check(const char *runsc, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * The guest init (runs inside gVisor as its process 1): starts CMD at once as the
 * sandbox's uid, with the rlimits and seccomp filter of the namespace level, reading its
 * program from descriptor SB_PROGRAM_FD; then reads the header from stdin, passes the
 * program and the rest of stdin on, waits for CMD, kills whatever is left and writes the end
 * line.  Exits with CMD's status (128+N for signal N).
 */
int sb_guest_main(int argc, char **argv);

#endif
