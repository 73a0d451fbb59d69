"""Rate limits against a real airlockd: per token and per client address, a tenant's rate
set by the operator."""

import pytest

from conftest import ctl
from world import READ_TOOLS, billing_world, rpc, tool


@pytest.fixture(scope="module")
def world(cluster):
    return billing_world(cluster, "rl", READ_TOOLS)


def test_rate_limits(start_daemon, world):
    d = start_daemon("--rate-token", "0.01/2", "--rate-client", "0/0")
    tok = world.mint(world.a)
    codes = [tool(d, tok, "get_customer", {"customer_id": 1}) for _ in range(4)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    e = limited[0].json()["error"]
    assert e["data"]["reason"] == "rate_limited" and e["data"]["retryAfterSeconds"] >= 1
    assert int(limited[0].headers["Retry-After"]) >= 1
    # Another token of the same tenant has its own bucket.
    assert tool(d, world.mint(world.a), "get_customer", {"customer_id": 1}).status_code == 200
    d2 = start_daemon("--rate-client", "0.01/3")
    codes = [rpc(d2, None, "tools/list").status_code for _ in range(6)]
    assert 429 in codes


def test_tenant_rate_set_by_the_operator(start_daemon, world, cluster):
    d = start_daemon("--rate-tenant", "0/0", "--rate-token", "0/0", "--rate-client", "0/0")
    db = ["--db", cluster.operator_url]
    assert ctl("tenant", "rate", world.b, "0.01/2", *db).returncode == 0
    try:
        tok = world.mint(world.b)
        codes = [tool(d, tok, "get_customer", {"customer_id": 1}).status_code for _ in range(4)]
        assert codes[:2] == [200, 200] and 429 in codes[2:], codes
        # Another tenant is not held back by it.
        assert tool(d, world.mint(world.a), "get_customer", {"customer_id": 1}).status_code == 200
    finally:
        assert ctl("tenant", "rate", world.b, "default", *db).returncode == 0
    assert tool(d, tok, "get_customer", {"customer_id": 1}).status_code == 200
    assert ctl("tenant", "rate", world.b, "fast", *db, check=False).returncode == 64
    assert ctl("tenant", "rate", "nosuchtenant", "1/1", *db, check=False).returncode == 65
