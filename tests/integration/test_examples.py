"""examples/function_calling.py, the OpenAI-style and Anthropic-style tool-call loops,
against a real airlockd and PostgreSQL with recorded model turns (examples/turns): tools from
`airlockctl tool export --token`, the model's tool-call id as the idempotency key (a call
sent again is replayed, not run twice), tool errors and refusals relayed as errors the model
can read, and retryAfterSeconds waited out or relayed."""
import json
import os
import secrets
import subprocess

import pytest

from conftest import ROOT, ctl
from world import NO_LIMITS, World

EXAMPLE = ROOT / "examples" / "function_calling.py"
TURNS = ROOT / "examples" / "turns"


def mint(world, *tools):
    """A token of the world's tenant for tools, and its id."""
    token = world.token(world.a, *tools)
    ids = ctl("token", "list", "--tenant", world.a, "--db", world.cluster.operator_url).stdout
    return token, ids.splitlines()[-1].split("\t")[0]


@pytest.fixture(scope="module")
def world(cluster):
    w = World(cluster, "fc", tenants=1)
    w.add_customer(w.a, email=f"f@{w.a}.example", name="F")
    return w


def run(api, daemon, world, token, tid, turns, tmp_path, *extra):
    tools = tmp_path / f"{api}-tools.json"
    tools.write_text(ctl("tool", "export", "--format", api, "--token", tid, "--tools",
                         ROOT / "tools", "--db", world.cluster.operator_url).stdout)
    note = f"note {secrets.token_hex(4)}"
    p = subprocess.run(["/usr/bin/python3", str(EXAMPLE), "--api", api, "--url", daemon.url,
                        "--tools", str(tools), "--turns", str(turns),
                        "--set", f"CUSTOMER_ID={world.cust[world.a][0]}", "--set", f"NOTE={note}",
                        *extra], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, AIRLOCK_TOKEN=token))
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    return lines[:-1], lines[-1]["final"], note


def test_openai_loop(start_daemon, world, tmp_path):
    d = start_daemon(*NO_LIMITS)
    token, tid = mint(world, "get_customer", "add_support_note")
    messages, final, note = run("openai", d, world, token, tid, TURNS / "openai.json", tmp_path,
                                "--conversation", "conv-" + secrets.token_hex(4))
    assert final == "I added a note to the customer's record."
    tool_msgs = [(m["tool_call_id"], json.loads(m["content"])) for m in messages
                 if m["role"] == "tool"]
    assert [t for t, _ in tool_msgs] == ["call_lookup1", "call_note1", "call_note1",
                                        "call_lookup2", "call_invoices"]
    got = dict(tool_msgs[:2])
    assert got["call_lookup1"]["isError"] is False
    assert got["call_lookup1"]["rows"][0]["id"] == str(world.cust[world.a][0])   # int8: a string
    first, again = tool_msgs[1][1], tool_msgs[2][1]
    # The host sent call_note1 again: same key, the stored answer, one note.
    assert first["replayed"] is False and again["replayed"] is True
    assert again["call_id"] == first["call_id"] and again["rows"] == first["rows"]
    assert world.notes(world.a, note) == 1
    # A tool error the model can correct, and a refusal it can read.
    bad = tool_msgs[3][1]
    assert bad["isError"] is True and bad["error"]["reason"] == "invalid_arguments"
    refused = tool_msgs[4][1]
    assert refused["isError"] is True and refused["error"]["reason"] == "tool_not_granted"


def test_anthropic_loop(start_daemon, world, tmp_path):
    d = start_daemon(*NO_LIMITS)
    token, tid = mint(world, "get_customer", "add_support_note")
    messages, final, note = run("anthropic", d, world, token, tid, TURNS / "anthropic.json",
                                tmp_path)
    assert final == "The note is on the customer's record."
    results = [b for m in messages if m["role"] == "user" and isinstance(m["content"], list)
               for b in m["content"]]
    assert [r["tool_use_id"] for r in results] == ["toolu_01A", "toolu_01B", "toolu_01B",
                                                  "toolu_02A", "toolu_02B"]
    body = [json.loads(r["content"]) for r in results]
    assert [r["is_error"] for r in results] == [False, False, False, True, True]
    assert body[1]["replayed"] is False and body[2]["replayed"] is True
    assert world.notes(world.a, note) == 1
    assert body[3]["error"]["reason"] == "invalid_arguments"
    assert body[4]["error"]["reason"] == "tool_not_granted"


def test_retry_after_is_waited_out_or_relayed(start_daemon, world, tmp_path):
    token, tid = mint(world, "get_customer")
    # One call a second: the second call of the turn waits its second and goes through.
    d = start_daemon("--rate-token", "1/1", "--rate-tenant", "0/0", "--rate-client", "0/0")
    messages, final, _ = run("openai", d, world, token, tid, TURNS / "openai_rate.json",
                             tmp_path, "--max-wait", "5")
    relays = [json.loads(m["content"]) for m in messages if m["role"] == "tool"]
    assert [r["isError"] for r in relays] == [False, False] and final == "Done."
    # One call a minute: too long to wait, so the model hears when to try again.
    token, tid = mint(world, "get_customer")
    d = start_daemon("--rate-token", "0.02/1", "--rate-tenant", "0/0", "--rate-client", "0/0")
    messages, final, _ = run("openai", d, world, token, tid, TURNS / "openai_rate.json",
                             tmp_path, "--max-wait", "2")
    relays = [json.loads(m["content"]) for m in messages if m["role"] == "tool"]
    assert relays[0]["isError"] is False
    assert relays[1]["isError"] is True and relays[1]["error"]["reason"] == "rate_limited"
    assert 2 < relays[1]["error"]["retryAfterSeconds"] <= 50


def test_tools_given_to_the_model_are_the_export(start_daemon, world, tmp_path):
    d = start_daemon(*NO_LIMITS)
    token, tid = mint(world, "get_customer", "add_support_note")
    export = json.loads(ctl("tool", "export", "--format", "openai", "--token", tid, "--tools",
                            ROOT / "tools", "--db", world.cluster.operator_url).stdout)
    assert [t["function"]["name"] for t in export] == ["add_support_note", "get_customer"]
    assert export[1]["function"]["strict"] is True and "strict" not in export[0]["function"]
