/*
 * http_mcp.c: MCP's rules on /mcp beyond JSON-RPC's: the protocol version (header and
 * _meta), the Mcp-Method and Mcp-Name headers mirroring the body, and the HTTP statuses of
 * malformed input and unknown methods.
 */
#include <stdio.h>
#include <string.h>

#include "http_int.h"

static int
is_known_mcp_version(const char *v)
{
	size_t i;

	for (i = 0; gw_mcp_versions[i] != NULL; i++)
		if (strcmp(v, gw_mcp_versions[i]) == 0)
			return 1;
	return 0;
}

/* The value of a Base64 (RFC 4648) text, NUL-terminated, into out.  Returns its length,
 * or -1 when text is not Base64 or the value does not fit.  (None of the libraries
 * Airlock links offers a decoder.) */
static long
base64_decode(const char *text, size_t len, char *out, size_t cap)
{
	static const char digits[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned long acc = 0;
	size_t i, n = 0, bits = 0, pad = 0;
	const char *d;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i++) {
		if (text[i] == '=') {
			if (++pad > 2 || i < len - 2)
				return -1;
			continue;
		}
		if (pad > 0 || text[i] == '\0' || (d = strchr(digits, text[i])) == NULL)
			return -1;
		acc = (acc << 6) | (unsigned long)(d - digits);
		if ((bits += 6) >= 8) {
			bits -= 8;
			if (n + 1 >= cap)
				return -1;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[n] = '\0';
	return (long)n;
}

/* Whether the Mcp-Name header value h names the same as the body's value v (h decoded
 * first when in the =?base64?...?= form). */
static int
is_same_name(const char *h, const char *v)
{
	char buf[1024];
	size_t len = strlen(h);
	long n;

	if (len >= 11 && strncmp(h, "=?base64?", 9) == 0 && strcmp(h + len - 2, "?=") == 0) {
		n = base64_decode(h + 9, len - 11, buf, sizeof(buf));
		return n >= 0 && (size_t)n == strlen(v) && memcmp(buf, v, (size_t)n) == 0;
	}
	return strcmp(h, v) == 0;
}

/* Fills err with MCP's UnsupportedProtocolVersion for asked. */
static void
unsupported_version(struct rpc_error *err, const char *asked)
{
	json_t *versions = json_array();
	size_t i;

	for (i = 0; gw_mcp_versions[i] != NULL; i++)
		json_array_append_new(versions, json_string(gw_mcp_versions[i]));
	rpc_error_set(err, MCP_UNSUPPORTED_VERSION, "unsupported_version",
	    "Unsupported protocol version '%.40s'", asked);
	err->data = json_pack("{s:o, s:s}", "supported", versions, "requested", asked);
}

/*
 * MCP's checks of a single request on /mcp, before it runs: the protocol version (the
 * MCP-Protocol-Version header and _meta's, known and equal), and the headers that mirror
 * the body (Mcp-Method, Mcp-Name), which the stateless revision requires and which must
 * match the body whenever present.  Returns 0, or -1 with err: -32022 for a version not
 * spoken here, -32020 for a header missing or not matching, -32602 for a stateless
 * request without its required _meta.  Sets req->is_modern.
 */
int
http_check_mcp(struct request *req, struct rpc_error *err)
{
	json_t *root = req->msg.root, *params, *meta;
	const char *hv, *bv, *method, *mh, *nh, *name;
	int needs_name;

	method = json_string_value(json_object_get(root, "method"));
	if (!json_is_object(root) || method == NULL)
		return 0; /* an invalid request: rpc_execute says so */
	params = json_object_get(root, "params");
	meta = json_object_get(params, "_meta");
	hv = http_header(req, "MCP-Protocol-Version");
	bv = gw_meta_version(params);
	if (hv != NULL && !is_known_mcp_version(hv)) {
		unsupported_version(err, hv);
		return -1;
	}
	if (bv != NULL && !is_known_mcp_version(bv)) {
		unsupported_version(err, bv);
		return -1;
	}
	if (hv != NULL && bv != NULL && strcmp(hv, bv) != 0) {
		rpc_error_set(err, MCP_HEADER_MISMATCH, "header_mismatch",
		    "Header mismatch: "
		    "MCP-Protocol-Version '%s' differs from _meta's '%s'",
		    hv, bv);
		return -1;
	}
	req->is_modern = (hv != NULL && strcmp(hv, GW_MCP_MODERN) == 0) ||
	    (bv != NULL && strcmp(bv, GW_MCP_MODERN) == 0);
	mh = http_header(req, "Mcp-Method");
	nh = http_header(req, "Mcp-Name");
	name = json_string_value(json_object_get(params, "name"));
	if (name == NULL)
		name = json_string_value(json_object_get(params, "uri"));
	needs_name = strcmp(method, "tools/call") == 0 || strcmp(method, "resources/read") == 0 ||
	    strcmp(method, "prompts/get") == 0;
	if (req->is_modern) {
		if (hv == NULL || mh == NULL || (needs_name && nh == NULL)) {
			rpc_error_set(err, MCP_HEADER_MISMATCH, "header_mismatch",
			    "Header mismatch: "
			    "the %s header is required",
			    hv == NULL	     ? "MCP-Protocol-Version"
				: mh == NULL ? "Mcp-Method"
					     : "Mcp-Name");
			return -1;
		}
		if (bv == NULL ||
		    !json_is_object(
			json_object_get(meta, "io.modelcontextprotocol/clientCapabilities"))) {
			rpc_error_set(err, RPC_INVALID_PARAMS, "invalid_params",
			    "A %s request "
			    "carries _meta io.modelcontextprotocol/protocolVersion and "
			    "io.modelcontextprotocol/clientCapabilities",
			    GW_MCP_MODERN);
			return -1;
		}
	}
	if (mh != NULL && strcmp(mh, method) != 0) {
		rpc_error_set(err, MCP_HEADER_MISMATCH, "header_mismatch",
		    "Header mismatch: "
		    "Mcp-Method '%.64s' differs from the body's '%.64s'",
		    mh, method);
		return -1;
	}
	if (nh != NULL && (name == NULL || !is_same_name(nh, name))) {
		rpc_error_set(err, MCP_HEADER_MISMATCH, "header_mismatch",
		    "Header mismatch: "
		    "Mcp-Name differs from the body's name");
		return -1;
	}
	return 0;
}

/* The HTTP status of a single request's answer on /mcp: malformed input is 400 and a
 * method not served 404, as MCP's Streamable HTTP transport says; the rest as on /rpc. */
void
http_mcp_status(struct rpc_msg *msg)
{
	json_t *e = json_object_get(msg->response, "error");
	const char *reason;

	if (e == NULL || msg->is_batch)
		return;
	reason = json_string_value(json_object_get(json_object_get(e, "data"), "reason"));
	switch (json_integer_value(json_object_get(e, "code"))) {
	case RPC_PARSE_ERROR:
	case RPC_INVALID_REQUEST:
	case MCP_HEADER_MISMATCH:
	case MCP_UNSUPPORTED_VERSION:
		msg->http_status = 400;
		break;
	case RPC_METHOD_NOT_FOUND:
		msg->http_status = 404;
		break;
	case RPC_INVALID_PARAMS:
		/* Malformed params; an unknown tool or a missing key is an answer, not a fault. */
		if (reason != NULL && strcmp(reason, "invalid_params") == 0)
			msg->http_status = 400;
		break;
	default:
		break;
	}
}
