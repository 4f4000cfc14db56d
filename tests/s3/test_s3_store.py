"""BlockStore on S3 (moto over HTTP): the conformance suite, exact request counts as the
server saw them, retries of real 503/500 answers, multipart uploads, concurrent ranged
reads, endpoints from the standard AWS variables, and secrets kept out of messages."""

from __future__ import annotations

import logging
import os
import pickle
import sys
import time
from collections import Counter

import pytest

from dagrun.runtime.faults import store_throttle_error
from shuffle.errors import StoreUnavailable
from shuffle.retry import RetryPolicy, classify
from shuffle.store import BlockStore, RequestCounts

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit"))
from store_conformance import BlockStoreConformance  # noqa: E402

SECRET = "hunter2-s3-secret-value"


def counted(store: BlockStore, before: RequestCounts | None = None) -> Counter:
    """The store's counts in the proxy's terms (kinds and bytes, zeros dropped)."""
    used = store.counts - before if before is not None else store.counts
    return +Counter({k: v for k, v in used.as_dict().items() if k != "throttled"})


class TestS3BlockStore(BlockStoreConformance):
    @pytest.fixture
    def store(self, s3):
        yield BlockStore(s3.store_url())

    def secret_store(self, store: BlockStore) -> tuple[BlockStore, str]:
        return BlockStore(store.url, {"key": "AKIAFAKEFAKEFAKE", "secret": SECRET}), SECRET


def test_every_request_is_counted_as_the_server_saw_it(s3) -> None:
    store = BlockStore(s3.store_url())
    store.put("a/x", b"12345")
    store.put("a/y", b"abc")
    store.put("b/z", b"")
    store.get("a/x")
    store.get_range("a/x", 1, 3)
    store.get_ranges([("a/x", 0, 1), ("a/y", 0, 3)])
    store.exists("a/x")
    store.exists("nope/x")  # s3fs would add a LIST here to look for a "directory"
    assert store.list("a") == ["a/x", "a/y"]
    assert store.list("zz/none") == []  # and a HEAD and a LIST here
    with pytest.raises(FileNotFoundError):
        store.get("a/missing")  # and a HEAD before the GET here
    store.delete("b/z")
    store.delete_prefix("a")
    store.delete_prefix("a")  # nothing left: one LIST
    seen = s3.proxy.counts(s3.store_bucket)
    assert seen == counted(store)
    assert seen == Counter(get=5, put=3, list=4, delete=2, head=2, bytes_in=11, bytes_out=8)


def test_endpoint_comes_from_the_standard_aws_variables(s3, monkeypatch) -> None:
    # AWS_ENDPOINT_URL_S3 is what the fixture sets; AWS_ENDPOINT_URL (all services) works too
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.proxy.url)
    store = BlockStore(s3.store_url())
    store.put("k", b"v")
    assert store.get("k") == b"v"
    assert s3.proxy.counts(s3.store_bucket)["put"] == 1


def test_storage_options_pass_through_to_s3fs(s3) -> None:
    # an explicit endpoint_url wins over the environment: these requests bypass the proxy
    store = BlockStore(s3.store_url(), {"endpoint_url": s3.moto_url, "key": "AKIAFAKE", "secret": SECRET})
    store.put("k", b"v")
    assert store.get("k") == b"v" and store.list("") == ["k"]
    assert s3.proxy.counts(s3.store_bucket) == Counter()
    assert SECRET not in repr(store) and SECRET not in repr(pickle.loads(pickle.dumps(store)))


def test_throttles_and_server_errors_are_retried_and_counted(s3) -> None:
    store = BlockStore(s3.store_url())
    s3.proxy.inject_status(3, 503, "SlowDown")
    store.put("a/x", b"12345")
    s3.proxy.inject_status(2, 500, "InternalError")
    assert store.get("a/x") == b"12345"
    s3.proxy.inject_status(2, 503, "SlowDown")
    assert store.exists("a/x")
    s3.proxy.inject_status(3, 503, "SlowDown")
    assert store.get_ranges([("a/x", 0, 1), ("a/x", 1, 3), ("a/x", 2, 5)]) == [b"1", b"23", b"345"]
    s3.proxy.inject_status(2, 503, "SlowDown")
    assert store.list("a") == ["a/x"]
    seen = s3.proxy.seen(s3.store_bucket)
    assert [r.status for r in seen if r.kind == "PUT"] == [503, 503, 503, 200]  # botocore did not retry
    assert store.counts.throttled == 3 + 2 + 3 + 2 == sum(r.status == 503 for r in seen)
    assert counted(store) == s3.proxy.counts(s3.store_bucket)


def test_retries_are_bounded_and_the_error_says_what_to_do(s3) -> None:
    store = BlockStore(s3.store_url(), {"key": "AKIAFAKE", "secret": SECRET},
                       retry=RetryPolicy(max_attempts=3, base=0.01))
    s3.proxy.inject_status(10, 503, "SlowDown")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        store.put("a/x", b"1")
    assert time.monotonic() - started < 2
    assert len(s3.proxy.seen(s3.store_bucket)) == 3 and store.counts.throttled == 3
    err = info.value
    assert "failed 3 times" in str(err) and "shuffle.prefixes" in str(err) and SECRET not in str(err)
    assert classify(err.__cause__) == "throttle"
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err)


def test_definite_answers_are_not_retried(s3) -> None:
    store = BlockStore(s3.store_url())
    s3.proxy.inject_status(1, 403, "AccessDenied")
    with pytest.raises(PermissionError):
        store.put("a/x", b"1")
    with pytest.raises(FileNotFoundError):
        store.get("a/none")
    assert len(s3.proxy.seen(s3.store_bucket)) == 2


def test_connection_errors_are_retried_within_the_time_budget(s3, unused_port) -> None:
    store = BlockStore(s3.store_url(), {"endpoint_url": f"http://127.0.0.1:{unused_port}"},
                       retry=RetryPolicy(max_attempts=20, base=0.05, cap=0.2, max_seconds=1.0))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        store.get("a/x")
    assert time.monotonic() - started < 3
    assert classify(info.value.__cause__) == "transient"
    assert 2 <= store.counts.get < 20 and store.counts.throttled == 0


def test_injected_throttle_is_the_error_a_real_503_raises(s3) -> None:
    store = BlockStore(s3.store_url(), retry=RetryPolicy(max_attempts=1))
    s3.proxy.inject_status(1, 503, "SlowDown")
    with pytest.raises(StoreUnavailable) as info:
        store.put("a/x", b"1")
    real, fake = info.value.__cause__, store_throttle_error("s3", "put")
    assert type(real) is type(fake) and real.errno == fake.errno
    assert type(real.__cause__) is type(fake.__cause__)
    assert real.__cause__.response["Error"]["Code"] == fake.__cause__.response["Error"]["Code"] == "SlowDown"
    assert real.__cause__.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert classify(real) == classify(fake) == "throttle"


def test_large_blocks_use_a_multipart_upload(s3) -> None:
    store = BlockStore(s3.store_url())
    store.multipart_chunk = 5 << 20  # S3's smallest part
    data = os.urandom(11 << 20)
    store.put("big", data)
    seen = s3.proxy.seen(s3.store_bucket)
    assert [(r.method, "uploads" in r.query, "uploadId" in r.query) for r in seen] == \
        [("POST", True, False)] + [("PUT", False, True)] * 3 + [("POST", False, True)]
    assert store.counts.put == 5 == s3.proxy.counts(s3.store_bucket)["put"]
    assert store.get("big") == data
    assert store.get_range("big", (5 << 20) - 3, (5 << 20) + 3) == data[(5 << 20) - 3:(5 << 20) + 3]


def test_ranged_reads_run_concurrently_with_bounded_parallelism(s3) -> None:
    store = BlockStore(s3.store_url())
    for i in range(12):
        store.put(f"m/{i}", bytes([i]) * 100)
    s3.proxy.reset()
    s3.proxy.latency = 0.2
    started = time.monotonic()
    out = store.get_ranges([(f"m/{i}", 10, 20) for i in range(12)], max_concurrency=4)
    elapsed = time.monotonic() - started
    assert out == [bytes([i]) * 10 for i in range(12)]
    assert s3.proxy.max_in_flight == 4
    assert elapsed < 12 * 0.2 / 2  # far from sequential (2.4 s); about 3 rounds of 0.2 s
    assert s3.proxy.counts(s3.store_bucket)["get"] == 12


def test_credentials_stay_out_of_logs_repr_and_errors(s3, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    store = BlockStore(s3.store_url(), {"key": "AKIAFAKE", "secret": SECRET})
    with pytest.raises(FileNotFoundError) as info:
        store.get("no/such")
    s3.proxy.inject_status(20, 503, "SlowDown")
    store.retry = RetryPolicy(max_attempts=2, base=0.01)
    with pytest.raises(StoreUnavailable) as gave_up:
        store.put("k", b"v")
    texts = [repr(store), str(info.value), str(gave_up.value), caplog.text]
    assert caplog.text  # s3fs, botocore and the store did log at DEBUG
    assert not [t for t in texts if SECRET in t]
