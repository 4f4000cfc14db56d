"""Store retries without a network: classification, bounded backoff, counting, injected 503s."""

from __future__ import annotations

import errno
import operator
import pickle
import time
from pathlib import Path

import pytest

import dagrun
from dagrun.runtime.faults import parse_faults, store_fault_hook
from shuffle.errors import StoreThrottled, StoreUnavailable
from shuffle.retry import RetryPolicy, classify
from shuffle.store import BlockStore

FAST = RetryPolicy(max_attempts=5, base=0.001, cap=0.004, max_seconds=5)


class FakeClientError(Exception):
    """Shaped like botocore's ClientError: the server's answer is in ``response``."""

    def __init__(self, status: int, code: str):
        super().__init__(code)
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


def wrapped(cause: BaseException) -> OSError:
    err = OSError(errno.EBUSY, "translated")  # what s3fs raises, with botocore's error as cause
    err.__cause__ = cause
    return err


@pytest.mark.parametrize("exc, kind", [
    (StoreThrottled(), "throttle"),
    (wrapped(FakeClientError(503, "SlowDown")), "throttle"),
    (wrapped(FakeClientError(503, "503")), "throttle"),  # a HEAD's 503 has no body to name it
    (wrapped(FakeClientError(500, "InternalError")), "transient"),
    (ConnectionResetError(), "transient"),
    (TimeoutError(), "transient"),
    (wrapped(FakeClientError(404, "NoSuchKey")), None),
    (wrapped(FakeClientError(403, "AccessDenied")), None),
    (FileNotFoundError(), None),
    (ValueError("bad"), None),
])
def test_classify(exc: BaseException, kind: str | None) -> None:
    assert classify(exc) == kind


def test_delays_grow_are_capped_and_jittered() -> None:
    policy = RetryPolicy(base=0.1, cap=1.0)
    for failures in range(1, 12):
        ceiling = min(1.0, 0.1 * 2 ** (failures - 1))
        assert all(ceiling / 2 <= policy.delay(failures) <= ceiling for _ in range(20))
    assert len({policy.delay(3) for _ in range(20)}) > 1


def failing(times: int, exc_factory) -> tuple[list[str], object]:
    calls: list[str] = []

    def hook(kind: str) -> None:
        calls.append(kind)
        if len(calls) <= times:
            raise exc_factory()

    return calls, hook


def test_throttles_are_retried_and_counted_not_billed(tmp_path: Path) -> None:
    store = BlockStore(str(tmp_path), retry=FAST)
    calls, store.before_request = failing(3, StoreThrottled)
    store.put("a/b", b"xyz")
    assert calls == ["put"] * 4
    # an injected answer stands for a request that never reached the store: not counted
    assert store.counts.put == 1 and store.counts.throttled == 3
    calls, store.before_request = failing(2, StoreThrottled)
    assert store.get_ranges([("a/b", 0, 1), ("a/b", 1, 3)], max_concurrency=2) == [b"x", b"yz"]
    assert store.counts.throttled == 5


def test_retries_stop_at_the_attempt_limit(tmp_path: Path) -> None:
    store = BlockStore(str(tmp_path), retry=FAST)
    calls, store.before_request = failing(100, StoreThrottled)
    with pytest.raises(StoreUnavailable) as info:
        store.exists("a/b")
    assert len(calls) == 5 and store.counts.throttled == 5
    assert isinstance(info.value.__cause__, StoreThrottled)
    assert pickle.loads(pickle.dumps(info.value)).attempts == 5


def test_retries_stop_at_the_time_limit(tmp_path: Path) -> None:
    store = BlockStore(str(tmp_path), retry=RetryPolicy(max_attempts=1000, base=0.02, cap=0.05, max_seconds=0.3))
    calls, store.before_request = failing(10_000, ConnectionResetError)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.put("a/b", b"x")
    assert time.monotonic() - started < 0.4 and 3 < len(calls) < 100


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    store = BlockStore(str(tmp_path), retry=FAST)
    calls, store.before_request = failing(100, lambda: PermissionError("denied"))
    with pytest.raises(PermissionError):
        store.put("a/b", b"x")
    assert len(calls) == 1


def test_store_503_budget_is_shared_by_every_task(tmp_path: Path) -> None:
    faults = parse_faults([{"kind": "store_503", "count": 3}, {"kind": "store_503", "partition": 1, "count": 2}])
    hooks = [store_fault_hook(faults, str(tmp_path), "job-1", 0, "map", p, 0, "file") for p in range(3)]
    raised = 0
    for _ in range(4):
        for hook in hooks:
            try:
                hook("get")
            except StoreThrottled:
                raised += 1
    assert raised == 5
    assert store_fault_hook(faults, str(tmp_path), "job-1", 0, "map", 0, 1, "file") is None  # attempt 1


def test_a_job_with_injected_503s_is_exact_and_reports_them(tmp_path: Path) -> None:
    conf = {"progress": "off", "ledger": "off", "speculation": False, "faults": [{"kind": "store_503", "count": 5}]}
    with dagrun.Context(executor="inline", max_executors=2, store=str(tmp_path / "store"), conf=conf) as ctx:
        pairs = ctx.parallelize(range(1000), 4).map(lambda x: (x % 7, x))
        assert sorted(pairs.reduce_by_key(operator.add, 3).collect()) == \
            sorted({k: sum(range(k, 1000, 7)) for k in range(7)}.items())
        job = ctx.last_job
    assert job.throttles == 5 and not job.retried_tasks()
    assert [e.detail["source"] for e in job.scheduler_log if e.what == "throttle"]
