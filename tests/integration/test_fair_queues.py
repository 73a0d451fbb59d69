"""The database workers shared fairly between tenants, against a real airlockd: a flooding
tenant's queue is capped and does not hold another back, a lone tenant uses every worker,
tokens of one tenant share its queue."""
import json
import shutil
import threading
import time

import pytest

from conftest import ROOT
from world import READ_TOOLS, billing_world, metric, tool, wait_until


@pytest.fixture(scope="module")
def world(cluster):
    return billing_world(cluster, "fq", READ_TOOLS)


def write_slow_tool(tools):
    """A read tool, slow, that sleeps $s seconds (at most 5)."""
    (tools / "slow.json").write_text(json.dumps({
        "name": "slow", "description": "Sleeps.", "kind": "read", "timeout_ms": 10000,
        "arguments": {"type": "object", "properties": {"s": {"type": "number", "maximum": 5}},
                      "required": ["s"], "additionalProperties": False},
        "statement": "SELECT pg_sleep($s::float8) IS NULL AS slept"}))


def test_flooding_token_does_not_block_another(start_daemon, world, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    write_slow_tool(tools)
    shutil.copy(ROOT / "tools" / "get_customer.json", tools)
    d = start_daemon("--tools", str(tools), "--workers", "2", "--queue-per-tenant", "2",
                     "--rate-token", "0/0", "--rate-tenant", "0/0", "--rate-client", "0/0")
    flooder = world.mint(world.a, tools=["slow"])
    other = world.mint(world.b, tools=["get_customer"])
    # Once a token has been seen, its calls queue under its tenant.
    assert tool(d, flooder, "slow", {"s": 0}).status_code == 200
    done = []

    def flood():
        r = tool(d, flooder, "slow", {"s": 2})
        done.append((time.monotonic(), r))

    threads = [threading.Thread(target=flood) for _ in range(8)]
    for t in threads:
        t.start()
    # Both workers busy with the flood, its queue full, the rest refused.
    wait_until(lambda: metric(d, "airlock_pool_busy", pool="db") == 2
               and metric(d, "airlock_pool_waiting", pool="db") == 2
               and metric(d, "airlock_pool_rejected_total") == 4, what="the flood in place")
    r = tool(d, other, "get_customer", {"customer_id": 1})
    other_done = time.monotonic()
    for t in threads:
        t.join()
    assert r.status_code == 200
    refused = [x for _, x in done if x.status_code == 429]
    served = sorted(at for at, x in done if x.status_code == 200)
    # The flooding tenant's queue is capped: the rest are refused at once...
    assert refused and refused[0].json()["error"]["data"]["reason"] == "concurrency_limited"
    # ...alone, it ran on both workers, with two waiting...
    assert len(served) == 4
    # ...and once the other tenant waited, the first worker to finish served it, before
    # the flooder's calls that had waited longer.
    assert other_done < served[2]


def test_lone_tenant_uses_every_worker(start_daemon, world, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    write_slow_tool(tools)
    d = start_daemon("--tools", str(tools), "--workers", "4", "--rate-token", "0/0",
                     "--rate-tenant", "0/0", "--rate-client", "0/0")
    tok = world.mint(world.a, tools=["slow"])
    assert tool(d, tok, "slow", {"s": 0}).status_code == 200
    codes = []
    threads = [threading.Thread(target=lambda: codes.append(
        tool(d, tok, "slow", {"s": 2}).status_code)) for _ in range(4)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 4
    # No other tenant waits, so its four calls ran at once, on the four workers (two at a
    # time would have taken twice as long).
    assert time.monotonic() - start < 3.8


def test_tokens_of_one_tenant_share_its_queue(start_daemon, world, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    write_slow_tool(tools)
    d = start_daemon("--tools", str(tools), "--workers", "1", "--queue-per-tenant", "2",
                     "--rate-token", "0/0", "--rate-tenant", "0/0", "--rate-client", "0/0")
    t1, t2 = world.mint(world.a, tools=["slow"]), world.mint(world.a, tools=["slow"])
    for t in (t1, t2):      # the gateway learns each token's tenant
        assert tool(d, t, "slow", {"s": 0}).status_code == 200
    codes = []
    threads = [threading.Thread(target=lambda t=t: codes.append(tool(d, t, "slow", {"s": 3}).status_code))
               for t in (t1, t2, t1, t2, t1, t2)]
    for n, t in enumerate(threads, 1):
        t.start()
        # Each call in (running, waiting or refused) before the next is sent.
        wait_until(lambda: metric(d, "airlock_pool_busy", pool="db")
                   + metric(d, "airlock_pool_waiting", pool="db")
                   + metric(d, "airlock_pool_rejected_total") == n, what=f"call {n} in")
    for t in threads:
        t.join()
    # One running and two waiting for the tenant, whichever token sent them.
    assert sorted(codes) == [200, 200, 200, 429, 429, 429], codes
