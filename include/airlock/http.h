/* http.h: airlockd's HTTP front: routing, limits, and calls handed to the database workers. */
/*
 * The server http_start returns owns its daemon and connections; http_stop ends and frees
 * it.  gw is borrowed.
 */
#ifndef AIRLOCK_HTTP_H
#define AIRLOCK_HTTP_H

#include "airlock/gateway.h"

struct http_server;

/* Starts serving gw->cfg's address.  Returns a new server, or NULL (logged). */
struct http_server *http_start(struct gateway *gw);

/* Stops accepting, lets in-flight requests finish (waiting at most grace_ms for
 * them), drains the database workers, resumes every suspended connection and
 * stops.  Frees srv and gw->pool. */
void http_stop(struct http_server *srv, unsigned grace_ms);

#endif
