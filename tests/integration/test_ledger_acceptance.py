"""Acceptance for the cost ledger: its figures match counts taken independently of dagrun.

- Store requests: with ``keep_shuffle`` the blocks stay on disk, so the ledger's PUTs and
  bytes written must equal the block files the job left and their sizes (the S3 twin of this
  test, against a counting HTTP proxy, is ``tests/s3/test_ledger_s3.py``).
- GB-seconds: a watcher thread polls this process's children (psutil and /proc) every few
  milliseconds and notes when each executor process first appeared and when it last held
  its control connection (a socket); those lifetimes, clipped to the job and multiplied by
  the configured memory, must match the ledger's GB-seconds, executor by executor.  Short
  executor leases make executors retire and be replaced during the job, so lifetimes that
  end inside the job are covered too.  The end is the connection's close, not the process
  exit: what follows is the local interpreter's teardown (0.1 s idle, 0.5 s on a busy
  machine), which a Lambda invocation does not bill, since its handler has returned.
"""

from __future__ import annotations

import operator
import os
import threading
import time

import psutil
import pytest

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="the watcher reads /proc (Linux)")

import dagrun
from dagrun.observe.ledger import executor_usage


def _holds_socket(pid: int) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                return True
        except OSError:
            continue
    return False


class ExecutorWatch:
    """When each ``scheduler.executor`` child of this process was first seen, last seen
    holding a socket (its control connection: the store is a local directory), and last seen."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.first: dict[int, float] = {}
        self.connected: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        workers: set[int] = set()
        while not self._stop.is_set():
            for child in me.children():
                if child.pid not in workers:
                    try:
                        if "scheduler.executor" not in child.cmdline():
                            continue
                    except psutil.Error:
                        continue
                    workers.add(child.pid)
                try:
                    alive = child.status() != psutil.STATUS_ZOMBIE
                except psutil.Error:
                    alive = False
                if alive:
                    now = time.time()
                    self.first.setdefault(child.pid, now)
                    self.last[child.pid] = now
                    if _holds_socket(child.pid):
                        self.connected[child.pid] = now
            self._stop.wait(self.interval)

    def __enter__(self) -> "ExecutorWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _slow(x: int) -> int:
    time.sleep(0.25)
    return x


def test_ledger_gb_seconds_match_watched_process_lifetimes():
    conf = {"progress": "off", "executor_timeout": "5s", "retire_margin": "0.3s", "speculation": False,
            "lambda.memory_mb": 1536, "ramp.initial": 8, "ramp.slope": 8}
    with dagrun.Context(executor="local", max_executors=3, conf=conf) as ctx, ExecutorWatch() as watch:
        begin = time.time()
        assert ctx.parallelize(range(60), 60).map(_slow).sum() == sum(range(60))
        end = time.time()
        job = ctx.last_job
        connected_at_end = {pid for pid, seen in watch.connected.items() if seen >= end - 0.1}
    registered = {e["pid"]: e for e in job.executors if "pid" in e}
    assert len(job.executors) == len(watch.first), "one executor process per launch"
    assert set(registered) <= set(watch.first)
    assert len([e for e in job.executors if e.get("ended", end) < end - 0.5]) >= 2, \
        "short leases should have retired executors during the job"
    total_watched = 0.0
    for pid in watch.first:
        if pid in registered:  # it served the job until it hung up
            stop = end if pid in connected_at_end else watch.connected[pid]
        else:  # killed (e.g. at its deadline) before it registered: it counts until it died
            stop = watch.last[pid]
        watched = max(0.0, min(stop, end) - max(watch.first[pid], begin))
        total_watched += watched
        if pid in registered:
            seconds, gb_s, billed = executor_usage(registered[pid], job.started, job.finished, 1536)
            assert not billed
            # the driver stamps 'launched' just before spawning and 'ended' when the channel closes
            assert seconds == pytest.approx(watched, abs=0.1), f"executor pid {pid}"
            assert gb_s == pytest.approx(seconds * 1536 / 1024)
    cost = job.cost
    assert cost.total.gb_s == pytest.approx(total_watched * 1536 / 1024, rel=0.02, abs=0.15 * len(watch.first))
    assert cost.total.invocations == len(registered) + sum(
        1 for e in job.executors if "pid" not in e and "throttl" not in str(e.get("reason")))
    assert sum(r.gb_s for r in cost.rows) == pytest.approx(cost.total.gb_s)


def test_ledger_puts_and_bytes_match_the_block_files_left_on_disk(tmp_path):
    store = tmp_path / "store"
    conf = {"progress": "off", "keep_shuffle": True}
    with dagrun.Context(executor="local", max_executors=2, store=str(store), conf=conf) as ctx:
        pairs = ctx.parallelize([(i % 31, i) for i in range(20_000)], 6)
        result = dict(pairs.reduce_by_key(operator.add, 5).map(lambda kv: (kv[0] % 4, kv[1])).group_by_key(3)
                      .map_values(sum).collect())
        job = ctx.last_job
    assert result == {k: sum(i for i in range(20_000) if (i % 31) % 4 == k) for k in range(4)}
    blocks = [os.path.join(d, f) for d, _, files in os.walk(store) for f in files if job.job_id in d]
    total = job.cost.total
    assert total.requests["put"] == len(blocks) == 6 + 5  # one object per map task (invariant 2)
    assert total.bytes_out == sum(os.path.getsize(b) for b in blocks)
    # every reducer read only its own segments of those objects, each at most once
    assert 0 < total.bytes_in <= total.bytes_out
    assert total.requests["get"] <= 6 * 5 + 5 * 3
    assert job.driver_requests == {}  # keep_shuffle: no cleanup
