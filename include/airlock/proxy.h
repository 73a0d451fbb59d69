/* Sandbox egress: the allowlist proxy outside the sandbox and the forwarder inside it. */
/* A proxy (sb_proxy_start) owns its thread and sockets until sb_proxy_stop. */
#ifndef AIRLOCK_PROXY_H
#define AIRLOCK_PROXY_H

#include <stddef.h>
#include <sys/types.h>

#include "airlock/sandbox.h"

struct sb_proxy;

/*
 * Checks one allowlist entry "host:port" ("[v6]:port" for IPv6 literals); on success
 * copies the host (lower-cased, without brackets) into host and the port into *port and
 * returns 0, else -1.
 */
int sb_allow_parse(const char *entry, char *host, size_t hostlen, unsigned *port)
    __attribute__((warn_unused_result));

/*
 * Starts a proxy serving HTTP CONNECT and absolute-form HTTP requests on a new Unix socket
 * at sock_path, in a thread of its own, for one sandbox. It dials only the host:port pairs
 * in allow (NULL-terminated, copied), resolving names itself, and refuses loopback,
 * private, link-local, metadata and other special addresses unless that very address is
 * listed. An http:// request is forwarded once per connection, in origin form with Host
 * naming the listed destination and Connection: close, its body cut at its Content-Length
 * (a body without one is refused with 411) and nothing after it; a CONNECT tunnel carries
 * bytes both ways unread. Every attempt is reported through fn (may be NULL). When owner
 * is not -1 the socket is given to that uid (mode 0600), else it is left 0600 for the
 * caller.
 * On success stores a new proxy in *out (released by sb_proxy_stop) and returns 0; on
 * error returns -1 with a message in err.
 */
int sb_proxy_start(const char *const *allow, sb_egress_fn *fn, void *arg, const char *sock_path,
    uid_t owner, struct sb_proxy **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Closes every connection, joins the threads, unlinks the socket and frees; NULL allowed. */
void sb_proxy_stop(struct sb_proxy *p);

/*
 * Runs inside the sandbox: listens on SB_PROXY_ADDR:port, leaves a process behind that
 * relays each connection to the proxy's Unix socket at sock_path, and execs argv in the
 * calling process. Returns -1 (with a message on stderr) only when that fails.
 */
int sb_forward_exec(const char *sock_path, unsigned port, char *const argv[]);

#endif
