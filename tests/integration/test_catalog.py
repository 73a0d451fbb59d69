"""airlockctl tool check|export against a real PostgreSQL: the demo catalog, one bad
manifest per fault (each named with its file), and the export shapes for each API."""
import json
import os

import pytest

from conftest import ROOT, ctl

TOOLS = ROOT / "tools"
USAGE = 64
DATAERR = 65
NOINPUT = 66

SCHEMA = "alk_catalog_test"

ARGS = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "label": {"type": ["string", "null"], "maxLength": 40},
        "secret": {"type": "string", "sensitive": True, "description": "kept as a digest"},
    },
    "required": ["id"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def scratch(cluster):
    """A scratch schema of this module: a base table registered as a tenant table, its
    _live view, and a plain table that is not registered.  Dropped afterwards."""
    cluster.psql(f"""
        CREATE SCHEMA {SCHEMA};
        CREATE TABLE {SCHEMA}.things (tenant name NOT NULL DEFAULT current_user,
            id integer NOT NULL, label text, price numeric(8,2), big bigint,
            seen timestamptz, deleted_at timestamptz, PRIMARY KEY (tenant, id));
        CREATE VIEW {SCHEMA}.things_live WITH (security_invoker = true) AS
            SELECT id, label, price, big, seen FROM {SCHEMA}.things WHERE deleted_at IS NULL;
        CREATE TABLE {SCHEMA}.plain (id integer PRIMARY KEY, label text);
        INSERT INTO airlock.tenant_tables (schema_name, table_name) VALUES ('{SCHEMA}', 'things');
    """)
    try:
        yield cluster
    finally:
        cluster.psql(f"""
            DELETE FROM airlock.tenant_tables WHERE schema_name = '{SCHEMA}';
            DROP SCHEMA {SCHEMA} CASCADE;
        """)


def manifest(name, kind="read", statement=None, arguments=None, **extra):
    m = {"name": name, "description": f"The {name} tool.", "kind": kind,
         "arguments": ARGS if arguments is None else arguments}
    if statement is not None:
        m["statement"] = statement
    m.update(extra)
    return m


def write_dir(tmp_path, *manifests, raw=None):
    for m in manifests:
        (tmp_path / f"{m['name']}.json").write_text(json.dumps(m, indent=2))
    for fname, text in (raw or {}).items():
        (tmp_path / fname).write_text(text)
    return tmp_path


def check(cluster, tools, url=None):
    return ctl("tool", "check", "--tools", tools, "--db", url or cluster.operator_url, check=False)


GOOD = [
    manifest("list_things", statement=f"SELECT id, label, price, big, seen FROM {SCHEMA}.things_live "
             "WHERE id >= $id AND ($label::text IS NULL OR label = $label) ORDER BY id"),
    manifest("rename_thing", kind="write", destructive=False,
             statement=f"UPDATE {SCHEMA}.things SET label = $label WHERE id = $id "
             "RETURNING id, label", max_rows=1),
    manifest("add_thing", kind="write",
             statement=f"INSERT INTO {SCHEMA}.things (id, label) VALUES ($id, $label) RETURNING id"),
    manifest("crunch", kind="code", arguments={
        "type": "object",
        "properties": {"code": {"type": "string", "maxLength": 10000},
                       "input": {"type": ["object", "null"]}},
        "required": ["code"], "additionalProperties": False},
        code={"interpreter": "python3", "limits": {"time_s": 5, "cpu_s": 2, "mem_mb": 128,
              "pids": 32, "stdout_max": 65536, "stderr_max": 16384},
              "allow": ["api.example.com:443"]}),
]


def test_demo_catalog_passes(cluster):
    p = check(cluster, TOOLS)
    assert p.returncode == 0, p.stderr
    for name in ("lookup_invoices", "get_customer", "search_customers"):
        assert f"ok  {name}" in p.stdout
    n = len([f for f in os.listdir(TOOLS) if f.endswith(".json")])
    assert f"{n} tools checked" in p.stdout


def test_demo_catalog_passes_as_the_gateway(cluster):
    """airlockd's own role holds no table privileges: the plan check gives way to the
    temporary view's, which still runs."""
    p = check(cluster, TOOLS, url=cluster.gateway_url)
    assert p.returncode == 0, p.stderr


def test_demo_output_schema_types(cluster):
    p = ctl("tool", "export", "--tools", TOOLS, "--format", "mcp", "--db", cluster.operator_url)
    tools = {t["name"]: t for t in json.loads(p.stdout)}
    cols = tools["lookup_invoices"]["outputSchema"]["properties"]["rows"]["items"]["properties"]
    # int8 and numeric: strings with a pattern (no nonstandard "format"); timestamptz: an
    # RFC 3339 date-time, or PostgreSQL's text for what RFC 3339 cannot write.
    assert cols["id"]["type"] == ["string", "null"] and cols["id"]["pattern"] == "^-?[0-9]+$"
    assert "format" not in cols["id"] and "format" not in cols["amount"]
    assert cols["amount"]["type"] == ["string", "null"] and "NaN" in cols["amount"]["pattern"]
    assert cols["issued_at"]["anyOf"][0] == {"type": "string", "format": "date-time"}
    assert cols["issued_at"]["anyOf"][2] == {"type": "null"}
    assert "infinity" in cols["issued_at"]["anyOf"][1]["pattern"]
    assert cols["status"] == {"type": ["string", "null"]}
    assert "tenant" not in cols
    assert tools["lookup_invoices"]["annotations"]["readOnlyHint"] is True
    assert tools["lookup_invoices"]["inputSchema"]["properties"]["limit"]["default"] == 20


def test_good_catalog(scratch, tmp_path):
    p = check(scratch, write_dir(tmp_path, *GOOD))
    assert p.returncode == 0, p.stderr
    assert "ok  add_thing" in p.stdout and "ok  crunch" in p.stdout
    assert "4 tools checked" in p.stdout


BAD = [
    ("parse", None, {"t.json": '{"name": "t",\n  "kind": read\n}'}, "line 2"),
    ("unknown key", manifest("t", statement="SELECT 1", owner="me"), None, "unknown key 'owner'"),
    ("name differs", manifest("other", statement="SELECT 1"), "t.json", "differs from the file's name"),
    ("bad name", manifest("T1", statement="SELECT 1"), "T1.json", "name must match"),
    ("bad kind", manifest("t", kind="delete", statement="SELECT 1"), None, "kind must be"),
    ("unknown schema keyword", manifest("t", statement="SELECT 1", arguments={
        "type": "object", "properties": {"x": {"type": "string", "format": "email"}},
        "additionalProperties": False}), None, "unknown keyword 'format'"),
    ("keyword of the wrong type", manifest("t", statement="SELECT 1", arguments={
        "type": "object", "properties": {"x": {"type": "integer", "maximum": "9"}},
        "additionalProperties": False}), None, "'maximum' must be a number"),
    ("additionalProperties absent", manifest("t", statement="SELECT 1", arguments={
        "type": "object", "properties": {}}), None, "additionalProperties must be present and false"),
    ("required names a missing property", manifest("t", statement="SELECT 1", arguments={
        "type": "object", "properties": {}, "required": ["id"], "additionalProperties": False}),
        None, "required names 'id'"),
    ("positional parameter", manifest("t", statement=f"SELECT id FROM {SCHEMA}.things_live WHERE id = $1"),
        None, "positional parameter $1"),
    ("parameter without property", manifest("t", statement=f"SELECT id FROM {SCHEMA}.things_live "
        "WHERE id = $thing_id"), None, "$thing_id has no property"),
    ("does not prepare", manifest("t", statement=f"SELECT id FROM {SCHEMA}.nope WHERE id = $id"), None,
        f'does not prepare: relation "{SCHEMA}.nope" does not exist'),
    ("set_config", manifest("t", statement="SELECT set_config('role', $label, true)"), None,
        "mentions set_config"),
    ("SET", manifest("t", statement="SET ROLE tenant_other"), None, "a read must be one SELECT"),
    ("RESET", manifest("t", statement="RESET ROLE"), None, "a read must be one SELECT"),
    ("read that writes", manifest("t", statement=f"WITH d AS (UPDATE {SCHEMA}.plain SET label = $label "
        "WHERE id = $id RETURNING id) SELECT id FROM d"), None, "a read must not write"),
    ("read that locks", manifest("t", statement=f"SELECT id FROM {SCHEMA}.plain WHERE id = $id FOR UPDATE"),
        None, "must not lock rows"),
    ("read of an adopted base table", manifest("t", statement=f"SELECT id, label FROM {SCHEMA}.things "
        "WHERE id = $id"), None, f"adopted tenant table {SCHEMA}.things directly"),
    ("read of an adopted base table in a subquery", manifest("t", statement=f"SELECT id FROM "
        f"{SCHEMA}.things_live WHERE id IN (SELECT id FROM {SCHEMA}.things WHERE id = $id)"), None,
        f"{SCHEMA}.things directly"),
    ("duplicate column names", manifest("t", statement=f"SELECT id, id FROM {SCHEMA}.things_live "
        "WHERE id = $id"), None, "two columns named 'id'"),
    ("DELETE", manifest("t", kind="write", statement=f"DELETE FROM {SCHEMA}.things WHERE id = $id "
        "RETURNING id"), None, "DELETE is refused"),
    ("MERGE", manifest("t", kind="write", statement=f"MERGE INTO {SCHEMA}.plain p USING (SELECT $id::int "
        "AS id) s ON p.id = s.id WHEN MATCHED THEN DELETE"), None, "single INSERT or UPDATE"),
    ("write without RETURNING", manifest("t", kind="write", statement=f"UPDATE {SCHEMA}.things SET "
        "label = $label WHERE id = $id"), None, "a write needs RETURNING"),
    ("code interpreter", manifest("t", kind="code", code={"interpreter": "node"}), None,
        "interpreter must be"),
    ("code limit", manifest("t", kind="code", code={"interpreter": "sh", "limits": {"time_s": 0}}),
        None, "limit 'time_s' must be an integer from 1"),
    ("code allow port", manifest("t", kind="code", code={"interpreter": "sh",
        "allow": ["example.com:70000"]}), None, "needs a port from 1 to 65535"),
]


@pytest.mark.parametrize("what,m,fname,fault", BAD, ids=[b[0] for b in BAD])
def test_bad_manifest(scratch, tmp_path, what, m, fname, fault):
    if m is None:
        tools = write_dir(tmp_path, raw=fname)
        fname = next(iter(fname))
    else:
        fname = fname or f"{m['name']}.json"
        tools = write_dir(tmp_path, raw={fname: json.dumps(m, indent=2)})
    # A good manifest next to the bad one: the fault is still found and named.
    write_dir(tmp_path, GOOD[0])
    p = check(scratch, tools)
    assert p.returncode == DATAERR, (what, p.stdout, p.stderr)
    assert f"{tools}/{fname}: " in p.stderr, p.stderr
    assert fault in p.stderr, p.stderr


def test_connection_left_clean(scratch, tmp_path):
    """A failing check rolls back: the scratch table is untouched by the read that writes."""
    scratch.psql(f"INSERT INTO {SCHEMA}.plain VALUES (1, 'before')")
    try:
        bad = manifest("t", statement=f"WITH d AS (UPDATE {SCHEMA}.plain SET label = 'after' "
                       "RETURNING id) SELECT id FROM d")
        p = check(scratch, write_dir(tmp_path, bad))
        assert p.returncode == DATAERR
        assert scratch.psql(f"SELECT label FROM {SCHEMA}.plain").strip() == "before"
    finally:
        scratch.psql(f"DELETE FROM {SCHEMA}.plain")


def export(cluster, tools, fmt):
    p = ctl("tool", "export", "--tools", tools, "--format", fmt, "--db", cluster.operator_url)
    return json.loads(p.stdout)


def test_export_openai(scratch, tmp_path):
    out = export(scratch, write_dir(tmp_path, *GOOD), "openai")
    assert [t["function"]["name"] for t in out] == ["add_thing", "crunch", "list_things", "rename_thing"]
    for t in out:
        assert set(t) == {"type", "function"} and t["type"] == "function"
        assert set(t["function"]) == {"name", "description", "parameters"}
        assert t["function"]["parameters"]["type"] == "object"
        assert t["function"]["parameters"]["additionalProperties"] is False
    assert "sensitive" not in json.dumps(out)


def test_export_anthropic(scratch, tmp_path):
    out = export(scratch, write_dir(tmp_path, *GOOD), "anthropic")
    for t in out:
        assert set(t) == {"name", "description", "input_schema"}
    things = next(t for t in out if t["name"] == "list_things")
    assert things["input_schema"]["properties"]["secret"] == {"type": "string",
                                                             "description": "kept as a digest"}
    assert "sensitive" not in json.dumps(out)


def test_export_mcp(scratch, tmp_path):
    out = {t["name"]: t for t in export(scratch, write_dir(tmp_path, *GOOD), "mcp")}
    for t in out.values():
        assert {"name", "description", "inputSchema", "outputSchema", "annotations"} <= set(t)
        # Only a code tool with an egress allowlist reaches beyond the gateway.
        assert t["annotations"]["openWorldHint"] is (t["name"] == "crunch")
        assert t["title"] and t["annotations"]["title"] == t["title"]
    assert "sensitive" not in json.dumps(out)
    read = out["list_things"]
    assert read["annotations"]["readOnlyHint"] is True
    assert read["annotations"]["destructiveHint"] is False
    out_schema = read["outputSchema"]
    # Every result has call_id; then either the rows or a tool error.
    assert out_schema["required"] == ["call_id"]
    assert [b["required"] for b in out_schema["anyOf"]] == [
        ["rows", "row_count", "truncated", "dry_run"], ["error"]]
    assert out_schema["properties"]["error"]["required"] == ["reason", "message"]
    cols = out_schema["properties"]["rows"]["items"]["properties"]
    assert list(cols) == ["id", "label", "price", "big", "seen"]
    assert cols["id"] == {"type": ["integer", "null"]}
    assert cols["label"] == {"type": ["string", "null"]}
    assert cols["price"]["pattern"] == "^(-?[0-9]+(\\.[0-9]+)?|NaN|-?Infinity)$"
    assert cols["big"]["pattern"] == "^-?[0-9]+$"
    assert cols["seen"]["anyOf"][0]["format"] == "date-time"
    assert [b["required"] for b in out["rename_thing"]["outputSchema"]["anyOf"]] == [
        ["rows", "row_count", "truncated", "dry_run", "changes", "plan_id"], ["error"]]
    assert [b["required"] for b in out["crunch"]["outputSchema"]["anyOf"]] == [
        ["dry_run"], ["error"]]
    assert out["rename_thing"]["annotations"]["readOnlyHint"] is False
    assert out["rename_thing"]["annotations"]["destructiveHint"] is False
    assert out["add_thing"]["annotations"]["destructiveHint"] is True
    assert list(out["rename_thing"]["outputSchema"]["properties"]["rows"]["items"]["properties"]) == [
        "id", "label"]
    assert out["crunch"]["outputSchema"]["type"] == "object"


def test_usage_errors(cluster, tmp_path):
    assert ctl("tool", check=False).returncode == USAGE
    assert ctl("tool", "frobnicate", check=False).returncode == USAGE
    assert ctl("tool", "export", "--tools", tmp_path, "--db", cluster.operator_url,
               check=False).returncode == USAGE
    assert ctl("tool", "export", "--format", "yaml", "--tools", tmp_path,
               check=False).returncode == USAGE
    p = ctl("tool", "check", "--tools", tmp_path / "missing", "--db", cluster.operator_url,
            check=False)
    assert p.returncode == NOINPUT and "missing" in p.stderr
    assert ctl("tools", "--help").stdout.startswith("usage: airlockctl tool")
