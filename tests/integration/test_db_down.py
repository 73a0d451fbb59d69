"""The database going away under a running airlockd, and a daemon started while it is
down: 503 with Retry-After, then recovery on its own."""

import requests

from conftest import ROOT, ctl
from world import err, tool, wait_until


def test_database_down_is_503_then_recovers():
    """A gateway whose database goes away answers 503 with Retry-After, and reconnects."""
    from conftest import Daemon, own_cluster
    d = None
    with own_cluster("alk-down-") as c:
        try:
            path = c.dir
            ctl("tenant", "add", "solo", "--db", c.operator_url)
            tok = ctl("token", "mint", "--tenant", "solo", "--tool", "get_customer", "--ttl", "5m",
                      "--db", c.operator_url).stdout.strip()
            d = Daemon(["--db", c.gateway_url, "--tools", str(ROOT / "tools")])
            assert tool(d, tok, "get_customer", {"customer_id": 1}).status_code == 200
            ctl("dev-db", "stop", "--dir", path)
            r = tool(d, tok, "get_customer", {"customer_id": 1})
            assert r.status_code == 503 and r.headers["Retry-After"] == "1"
            assert err(r) == (503, "backend_unavailable")
            assert requests.get(d.url + "/readyz", timeout=5).status_code == 503
            # A gateway started while the database is down starts, live but not ready...
            d2 = Daemon(["--db", c.gateway_url, "--tools", str(ROOT / "tools")])
            assert requests.get(d2.url + "/readyz", timeout=5).status_code == 503
            assert err(tool(d2, tok, "get_customer", {"customer_id": 1})) == (503, "backend_unavailable")
            ctl("dev-db", "start", "--dir", path)
            assert tool(d, tok, "get_customer", {"customer_id": 1}).status_code == 200
            assert requests.get(d.url + "/readyz", timeout=5).status_code == 200
            # ...and checks its catalog and serves once the database is back.
            wait_until(lambda: requests.get(d2.url + "/readyz", timeout=5).status_code == 200,
                       what="the second daemon ready")
            assert tool(d2, tok, "get_customer", {"customer_id": 1}).status_code == 200
            d2.stop()
        finally:
            if d is not None:
                d.stop()
