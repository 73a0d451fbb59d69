"""airlockctl tool export for function-calling APIs against a real PostgreSQL and airlockd:
OpenAI functions marked strict exactly where the schema fits OpenAI's strict mode (and why
not, on stderr, where it does not), and --token ID exporting what that token's tools/list
shows, no more and no less."""
import json
import secrets

import requests

from conftest import ROOT, ctl

TOOLS = ROOT / "tools"
JSON = {"Content-Type": "application/json"}
DATAERR = 65


def export(cluster, fmt, *extra, check=True):
    return ctl("tool", "export", "--tools", TOOLS, "--format", fmt, "--db",
               cluster.operator_url, *extra, check=check)


def test_openai_strict_where_the_schema_allows(cluster):
    p = export(cluster, "openai")
    out = {t["function"]["name"]: t["function"] for t in json.loads(p.stdout)}
    # Every argument required, every object closed, only keywords strict mode accepts.
    for name in ("get_customer", "delete_support_note", "update_invoice_status"):
        assert out[name]["strict"] is True, name
    # Optional arguments (lookup_invoices' status and limit, add_support_note's invoice_id),
    # minLength/maxLength (refund_invoice, search_customers), an open object (run_python's
    # input): strict stays off, and stderr says why for each.
    for name, why in (("lookup_invoices", "optional"), ("add_support_note", "optional"),
                      ("refund_invoice", "minLength"), ("search_customers", "minLength"),
                      ("run_python", "minLength"), ("run_sh", "minLength")):
        assert "strict" not in out[name], name
        line = next(x for x in p.stderr.splitlines() if f" {name}: strict off" in x)
        assert why in line, line
    # The schemas themselves are the manifests' arguments, unchanged.
    manifest = json.loads((TOOLS / "get_customer.json").read_text())
    assert out["get_customer"]["parameters"] == manifest["arguments"]


def test_anthropic_and_mcp_carry_no_strict(cluster):
    for fmt in ("anthropic", "mcp"):
        assert '"strict"' not in export(cluster, fmt).stdout


def mint(cluster, tenant, *tools):
    argv = ["token", "mint", "--tenant", tenant, "--ttl", "10m", "--db", cluster.operator_url]
    for t in tools:
        argv += ["--tool", t]
    token = ctl(*argv).stdout.strip()
    line = ctl("token", "list", "--tenant", tenant, "--db", cluster.operator_url).stdout
    ids = [x.split("\t")[0] for x in line.splitlines()]
    return token, ids[-1]


def test_export_for_a_token_is_its_tools_list(cluster, daemon):
    tenant = f"ex{secrets.token_hex(3)}"
    ctl("tenant", "add", tenant, "--db", cluster.operator_url)
    token, tid = mint(cluster, tenant, "get_customer", "refund_invoice")
    listed = requests.post(daemon.url + "/rpc", headers={**JSON, "Authorization": f"Bearer {token}"},
                           data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
                           timeout=10).json()["result"]["tools"]
    mcp = json.loads(export(cluster, "mcp", "--token", tid).stdout)
    assert mcp == listed
    assert [t["name"] for t in mcp] == ["get_customer", "refund_invoice"]
    openai = json.loads(export(cluster, "openai", "--token", tid).stdout)
    assert [t["function"]["name"] for t in openai] == ["get_customer", "refund_invoice"]
    anthropic = json.loads(export(cluster, "anthropic", "--token", tid).stdout)
    assert [t["name"] for t in anthropic] == ["get_customer", "refund_invoice"]
    assert anthropic[0]["input_schema"] == listed[0]["inputSchema"]


def test_export_for_an_unknown_or_revoked_token(cluster):
    p = export(cluster, "openai", "--token", "0123456789ab", check=False)
    assert p.returncode == DATAERR and "no token" in p.stderr and p.stdout == ""
    tenant = f"ex{secrets.token_hex(3)}"
    ctl("tenant", "add", tenant, "--db", cluster.operator_url)
    _, tid = mint(cluster, tenant, "get_customer")
    ctl("token", "revoke", tid, "--db", cluster.operator_url)
    p = export(cluster, "mcp", "--token", tid, check=False)
    assert p.returncode == DATAERR and "revoked" in p.stderr
    p = ctl("tool", "check", "--tools", TOOLS, "--token", tid, "--db", cluster.operator_url,
            check=False)
    assert p.returncode == 64
