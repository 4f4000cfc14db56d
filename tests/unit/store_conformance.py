"""Conformance suite every BlockStore backend must pass (one subclass per backend).

Subclass :class:`BlockStoreConformance` as ``Test<Backend>BlockStore`` and provide a
``store`` fixture that yields a fresh, empty :class:`~shuffle.store.BlockStore` (override
``make_store`` for the simple case, or the fixture itself when the backend needs other
fixtures, e.g. a moto server).  Optionally override ``secret_store`` to build a store
whose ``storage_options`` carry a credential.  The class name does not start with
``Test``, so pytest collects only the subclasses.

Request counts are in S3 request units for every backend, so the exact-count test holds
unchanged for local disk, memory and S3.
"""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Iterator

import pytest

from shuffle.store import BlockStore, RequestCounts


class BlockStoreConformance:
    """Behaviour shared by all BlockStore backends."""

    def make_store(self, tmp_path: Path) -> BlockStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[BlockStore]:
        yield self.make_store(tmp_path)

    def secret_store(self, store: BlockStore) -> tuple[BlockStore, str]:
        """A store like ``store`` whose storage_options hold a secret; returns (store, secret)."""
        return BlockStore(store.url, {"token": "hunter2-secret"}), "hunter2-secret"

    # -- reads and writes -------------------------------------------------------------
    def test_put_get_round_trip(self, store: BlockStore) -> None:
        store.put("0a/job/s0/m1-a0", b"hello world")
        assert store.get("0a/job/s0/m1-a0") == b"hello world"
        store.put("0a/job/s0/m2-a0", b"")
        assert store.get("0a/job/s0/m2-a0") == b""

    def test_get_range(self, store: BlockStore) -> None:
        store.put("k/a", bytes(range(100)))
        assert store.get_range("k/a", 10, 20) == bytes(range(10, 20))
        assert store.get_range("k/a", 95, 200) == bytes(range(95, 100))

    def test_get_ranges_keeps_order(self, store: BlockStore) -> None:
        for i in range(20):
            store.put(f"p/o{i}", bytes([i]) * 50)
        ranges = [(f"p/o{i}", i, i + 7) for i in reversed(range(20))]
        out = store.get_ranges(ranges, max_concurrency=4)
        assert out == [bytes([i]) * 7 for i in reversed(range(20))]
        assert store.get_ranges([]) == []

    def test_missing_key_names_the_key(self, store: BlockStore) -> None:
        store.put("p/here", b"x")
        with pytest.raises(FileNotFoundError, match="p/nothere"):
            store.get("p/nothere")
        with pytest.raises(FileNotFoundError, match="p/nothere"):
            store.get_range("p/nothere", 0, 1)
        with pytest.raises(FileNotFoundError, match="p/gone"):
            store.get_ranges([("p/here", 0, 1), ("p/gone", 0, 1)])

    def test_get_ranges_can_return_exceptions(self, store: BlockStore) -> None:
        store.put("p/a", b"abc")
        out = store.get_ranges([("p/a", 0, 2), ("p/b", 0, 2), ("p/a", 1, 3), ("p/c", 0, 1)],
                               return_exceptions=True)
        assert out[0] == b"ab" and out[2] == b"bc"
        assert isinstance(out[1], FileNotFoundError) and "p/b" in str(out[1])
        assert isinstance(out[3], FileNotFoundError) and "p/c" in str(out[3])

    def test_exists_and_delete(self, store: BlockStore) -> None:
        store.put("d/x", b"1")
        assert store.exists("d/x") and not store.exists("d/y")
        store.delete("d/x")
        assert not store.exists("d/x")
        store.delete("d/x")  # idempotent, like S3

    def test_list_and_delete_prefix(self, store: BlockStore) -> None:
        keys = ["0a/job1/s0/m0-a0", "0a/job1/s1/m1-a0", "0b/job1/s0/m2-a0", "0a/job10/s0/m0-a0"]
        for k in keys:
            store.put(k, b"x")
        assert store.list("0a/job1") == ["0a/job1/s0/m0-a0", "0a/job1/s1/m1-a0"]
        assert store.list("") == sorted(keys)
        assert store.list("zz/none") == []
        store.delete_prefix("0a/job1")
        assert store.list("") == ["0a/job10/s0/m0-a0", "0b/job1/s0/m2-a0"]
        store.delete_prefix("0a/job1")  # nothing left: no error
        store.delete_prefix("0b/job1/s0/m2-a0")  # a prefix that is one whole key
        assert store.list("") == ["0a/job10/s0/m0-a0"]
        with pytest.raises(ValueError):
            store.delete_prefix("")

    def test_bad_keys_are_refused(self, store: BlockStore) -> None:
        for key in ("", "/abs", "a/../b", "a//b"):
            with pytest.raises(ValueError):
                store.put(key, b"x")

    def test_written_object_is_complete_and_alone(self, store: BlockStore) -> None:
        data = bytes(range(256)) * 4096
        store.put("w/s0/m0-a0", data)
        assert store.list("w") == ["w/s0/m0-a0"]  # no temporary names visible
        assert store.get("w/s0/m0-a0") == data

    # -- identity, pickling, secrets ------------------------------------------------------
    def test_pickle_keeps_url_and_resets_counts(self, store: BlockStore) -> None:
        store.put("q/a", b"abc")
        assert store.counts.put == 1
        copy = pickle.loads(pickle.dumps(store))
        assert copy.url == store.url and copy.protocol == store.protocol
        assert copy.counts == RequestCounts()
        assert copy.get("q/a") == b"abc"  # same process, so memory:// is shared as well

    def test_secrets_stay_out_of_repr_and_errors(self, store: BlockStore) -> None:
        secret_store, secret = self.secret_store(store)
        assert secret not in repr(secret_store)
        with pytest.raises(FileNotFoundError) as info:
            secret_store.get("no/such")
        assert secret not in str(info.value)

    # -- request counting ---------------------------------------------------------------
    def test_request_counts_are_exact(self, store: BlockStore) -> None:
        store.put("a/x", b"12345")
        store.put("a/y", b"abc")
        store.put("b/z", b"")
        store.get("a/x")
        store.get_range("a/x", 1, 3)
        store.get_ranges([("a/x", 0, 1), ("a/y", 0, 3)])
        store.exists("a/x")
        store.exists("nope/x")
        assert store.list("a") == ["a/x", "a/y"]
        with pytest.raises(FileNotFoundError):
            store.get("a/missing")
        store.delete("b/z")
        store.delete_prefix("a")
        assert store.counts == RequestCounts(get=5, put=3, list=2, delete=2, head=2,
                                             bytes_in=11, bytes_out=8)

    def test_counts_are_thread_safe(self, store: BlockStore) -> None:
        store.put("t/a", b"x" * 10)
        before = store.counts

        def work() -> None:
            for _ in range(50):
                store.get_range("t/a", 0, 10)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        store.get_ranges([("t/a", 0, 5)] * 64, max_concurrency=16)
        delta = store.counts - before
        assert delta.get == 8 * 50 + 64 and delta.bytes_in == 8 * 50 * 10 + 64 * 5
        assert delta.requests == delta.get
