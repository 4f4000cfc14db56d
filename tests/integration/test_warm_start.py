"""Local executors start with the Context: a warm pool of real processes that take their
assignment on stdin, count their lifetime from it, and end with the Context."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

import dagrun
from scheduler import backends

pytestmark = pytest.mark.timeout(120)


def _executors(at_least: int, timeout: float = 30) -> list[psutil.Process]:
    """This process's executor processes, once there are ``at_least`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for p in psutil.Process().children():
            try:
                if "scheduler.executor" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE:
                    found.append(p)
            except psutil.Error:
                pass
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _gone_within(processes: list[psutil.Process], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in processes):
                return True
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.05)
    return False


def test_executors_start_with_the_context_and_run_its_first_job():
    with dagrun.Context(executor="local", max_executors=2, conf={"progress": "off"}) as ctx:
        warm = {p.pid for p in _executors(2)}  # before any job was planned
        assert len(warm) == 2
        assert ctx.parallelize(range(10), 2).sum() == 45
        registered = {e["pid"] for e in ctx._driver.executor_log if "pid" in e}
        executors = _executors(2)
        # the secret reached them on stdin, not through an environment other users' tools can read
        assert all("DAGRUN_SECRET" not in p.environ() for p in executors)
    assert registered and registered <= warm
    assert _gone_within(executors, 5)


def test_an_executor_counts_its_lifetime_from_its_assignment_not_from_its_warm_start():
    conf = {"progress": "off", "executor_timeout": "20s"}
    with dagrun.Context(executor="local", max_executors=1, conf=conf) as ctx:
        assert len(_executors(1)) == 1
        time.sleep(3)  # warm, waiting for work: no part of its lease
        assert ctx.parallelize([1, 2], 1).collect() == [1, 2]
        (entry,) = ctx._driver.executor_log
    assert entry["remaining"] > 20 - 2.5, entry


def test_a_context_that_never_runs_a_job_closes_fast_and_leaves_no_process():
    ctx = dagrun.Context(executor="local", max_executors=2, conf={"progress": "off"})
    started = time.monotonic()
    ctx.stop()  # at once: the pool may still be starting up
    assert time.monotonic() - started < 2
    ctx = dagrun.Context(executor="local", max_executors=2, conf={"progress": "off"})
    pool = _executors(2)
    started = time.monotonic()
    ctx.stop()
    assert time.monotonic() - started < 2
    assert _gone_within(pool, 5)


class Refuses:
    name = "refuses"
    tried = 0

    def __init__(self, config):
        Refuses.tried += 1
        raise RuntimeError("this backend has no executors: use executor='local'")


def test_a_failure_while_starting_with_the_context_is_raised_by_the_first_job(monkeypatch):
    monkeypatch.setitem(backends.known_backends, "refuses",
                        {"class": f"{__name__}:Refuses", "start_with_context": "yes"})
    with dagrun.Context(executor="refuses", conf={"progress": "off"}) as ctx:
        with pytest.raises(RuntimeError, match="this backend has no executors"):
            ctx.parallelize([1]).collect()
        assert Refuses.tried == 1  # the constructor's attempt, raised by the job (not tried again)


def test_a_pool_process_exits_quietly_when_its_pool_closes():
    """EOF on stdin before any assignment: exit 0, nothing on stderr; a missing optional module is no error."""
    proc = subprocess.Popen([sys.executable, "-m", "scheduler.executor", "--preload", "json",
                             "--warm", "no_such_module_for_dagrun"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)  # usually past its imports, so the optional one is tried
    _, stderr = proc.communicate(input=b"", timeout=30)
    assert proc.returncode == 0 and stderr == b"", stderr
