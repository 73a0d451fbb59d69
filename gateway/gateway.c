/*
 * gateway.c: the daemon's shared state as every part of a call sees it: the catalog in use
 * (reference counted across reloads), the tenants seen (for fair queueing), the pool a
 * request runs on, and the MCP revisions and server identity spoken.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/gateway.h"
#include "airlock/seal.h"
#include "airlock/token.h"

#define SERVER_VERSION "0.1.0"

/* Every revision spoken here, once: the stateless one first, then those that begin with
 * initialize (gw_mcp_legacy, the same list without its first). */
const char *const gw_mcp_versions[] = { GW_MCP_MODERN, "2025-11-25", "2025-06-18", NULL };
const char *const *const gw_mcp_legacy = gw_mcp_versions + 1;

const char *
gw_meta_version(json_t *params)
{
	json_t *meta = json_is_object(params) ? json_object_get(params, "_meta") : NULL;

	return json_string_value(json_object_get(meta, "io.modelcontextprotocol/protocolVersion"));
}

struct catalog_ref *
gw_catalog_get(struct gateway *gw)
{
	struct catalog_ref *ref;

	pthread_mutex_lock(&gw->lock);
	ref = gw->catalog;
	if (ref != NULL)
		ref->refs++;
	pthread_mutex_unlock(&gw->lock);
	return ref;
}

void
gw_catalog_put(struct gateway *gw, struct catalog_ref *ref)
{
	int is_last;

	if (ref == NULL)
		return;
	pthread_mutex_lock(&gw->lock);
	is_last = --ref->refs == 0;
	pthread_mutex_unlock(&gw->lock);
	if (is_last) {
		tool_catalog_free(ref->cat);
		free(ref);
	}
}

void
gw_catalog_set(struct gateway *gw, struct catalog *cat)
{
	struct catalog_ref *ref = NULL, *old;

	if (cat != NULL && (ref = calloc(1, sizeof(*ref))) == NULL) {
		tool_catalog_free(cat);
		return;
	}
	if (ref != NULL) {
		ref->cat = cat;
		ref->refs = 1; /* the gateway's own */
	}
	pthread_mutex_lock(&gw->lock);
	old = gw->catalog;
	gw->catalog = ref;
	pthread_mutex_unlock(&gw->lock);
	gw_catalog_put(gw, old);
}

static size_t
tenant_slot(const char *token_id)
{
	return (size_t)strtoul(token_id + TOK_ID_LEN - 6, NULL, 16) % GW_TENANT_CACHE;
}

void
gw_note_tenant(struct gateway *gw, const char *token_id, const char *tenant)
{
	size_t slot = tenant_slot(token_id);

	pthread_mutex_lock(&gw->lock);
	strlcpy(gw->tenant_of[slot].token_id, token_id, sizeof(gw->tenant_of[slot].token_id));
	strlcpy(gw->tenant_of[slot].tenant, tenant, sizeof(gw->tenant_of[slot].tenant));
	pthread_mutex_unlock(&gw->lock);
}

void
gw_fair_key(struct gateway *gw, const char *bearer, const char *client, char *key, size_t len)
{
	char id[TOK_ID_LEN + 1];
	uint8_t hash[32];
	size_t slot;

	if (bearer == NULL || tok_parse(bearer, hash, id) == -1) {
		snprintf(key, len, "client:%s", client);
		return;
	}
	slot = tenant_slot(id);
	pthread_mutex_lock(&gw->lock);
	/* A token not seen yet has a queue of its own (made-up tokens are bounded by the
	 * rate limit per address, and each costs one indexed lookup). */
	if (strcmp(gw->tenant_of[slot].token_id, id) == 0)
		snprintf(key, len, "tenant:%s", gw->tenant_of[slot].tenant);
	else
		snprintf(key, len, "token:%s", id);
	pthread_mutex_unlock(&gw->lock);
}

struct pool *
gw_pool_for(struct gateway *gw, const struct rpc_msg *msg)
{
	struct catalog_ref *ref;
	const struct tool *t;
	const char *method, *name;
	int is_code = 0;

	if (msg->root == NULL || msg->is_batch)
		return gw->pool;
	method = json_string_value(json_object_get(msg->root, "method"));
	name = json_string_value(json_object_get(json_object_get(msg->root, "params"), "name"));
	if (method == NULL || strcmp(method, "tools/call") != 0 || name == NULL)
		return gw->pool;
	ref = gw_catalog_get(gw);
	t = ref ? tool_find(ref->cat, name) : NULL;
	is_code = t != NULL && t->kind == TOOL_CODE;
	gw_catalog_put(gw, ref);
	return is_code ? gw->sandbox_pool : gw->pool;
}

/* The server's name and version, as results of the stateless revision carry them in
 * _meta.  Returns a new reference. */
json_t *
gw_server_info(void)
{
	return json_pack("{s:s, s:s}", "name", "airlock", "version", SERVER_VERSION);
}

void
gw_gauges(struct gateway *gw, struct metrics_gauges *g)
{
	pthread_rwlock_rdlock(&gw->pools_lock);
	if ((g->has_pool[0] = gw->pool != NULL))
		pool_stats(gw->pool, &g->pool[0][0], &g->pool[0][1], &g->pool[0][2]);
	if ((g->has_pool[1] = gw->sandbox_pool != NULL))
		pool_stats(gw->sandbox_pool, &g->pool[1][0], &g->pool[1][1], &g->pool[1][2]);
	pthread_rwlock_unlock(&gw->pools_lock);
	seal_health(&g->seal_lag, &g->is_seal_stalled);
}
