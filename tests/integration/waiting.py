"""wait_until: the one way tests wait, on a condition and never for a fixed time.  Used by
the integration tests (conftest.py, world.py) and the sandbox tests (imported there as
integration.waiting); it depends on nothing else."""
import time


def wait_until(pred, timeout=15, every=0.05, what=None):
    """Calls pred until it returns something true, and returns that; fails the test after
    timeout seconds, naming what (or pred's last value) in the message."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or pred.__name__} "
                                 f"(last: {got!r})")
        time.sleep(every)
