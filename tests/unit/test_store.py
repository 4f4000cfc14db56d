"""BlockStore: the conformance suite on local disk and memory, plus local-only behaviour.

S3: another suite subclasses ``BlockStoreConformance`` against a ThreadedMotoServer
(tests/s3), for example::

    class TestS3BlockStore(BlockStoreConformance):
        @pytest.fixture
        def store(self, s3_url, s3_storage_options):     # fixtures of tests/s3
            yield BlockStore(s3_url, s3_storage_options)  # a fresh bucket/prefix per test

        def secret_store(self, store):
            return BlockStore(store.url, store.storage_options), store.storage_options["secret"]
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

import fsspec
import pytest

from shuffle.store import BlockStore, RequestCounts

try:
    from .store_conformance import BlockStoreConformance
except ImportError:  # tests/unit is not a package: pytest put this folder on sys.path
    from store_conformance import BlockStoreConformance


class TestLocalPathBlockStore(BlockStoreConformance):
    def make_store(self, tmp_path: Path) -> BlockStore:
        return BlockStore(str(tmp_path / "store"))


class TestFileUrlBlockStore(BlockStoreConformance):
    def make_store(self, tmp_path: Path) -> BlockStore:
        return BlockStore((tmp_path / "store").as_uri())


class TestMemoryBlockStore(BlockStoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[BlockStore]:
        url = f"memory://shuffle-test-{uuid.uuid4().hex}"
        yield BlockStore(url)
        fs = fsspec.filesystem("memory")
        root = "/" + url.split("://", 1)[1]
        if fs.exists(root):
            fs.rm(root, recursive=True)


# S3: see the module docstring; the subclass lives with the moto fixtures in tests/s3.


def test_protocols_and_process_reach(tmp_path: Path) -> None:
    local = BlockStore(str(tmp_path))
    assert local.protocol == "file" and local.crosses_processes
    assert BlockStore(tmp_path.as_uri()).protocol == "file"
    mem = BlockStore("memory://somewhere")
    assert mem.protocol == "memory" and not mem.crosses_processes


def test_plain_path_and_file_url_see_the_same_objects(tmp_path: Path) -> None:
    BlockStore(str(tmp_path)).put("a/b/c", b"data")
    assert BlockStore(tmp_path.as_uri()).get("a/b/c") == b"data"
    assert (tmp_path / "a" / "b" / "c").read_bytes() == b"data"


def test_local_put_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = BlockStore(str(tmp_path))
    store.put("0a/job/s0/m0-a0", b"x" * 100_000)
    assert os.listdir(tmp_path / "0a" / "job" / "s0") == ["m0-a0"]


def test_failed_local_put_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlockStore(str(tmp_path))

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        store.put("0a/job/s0/m0-a0", b"partial?")
    monkeypatch.undo()
    assert os.listdir(tmp_path / "0a" / "job" / "s0") == []
    assert not store.exists("0a/job/s0/m0-a0")


def test_list_hides_in_flight_temporary_files(tmp_path: Path) -> None:
    store = BlockStore(str(tmp_path))
    store.put("j/s0/m0-a0", b"x")
    (tmp_path / "j" / "s0" / ".m1-a0.tmp-123-abcd").write_bytes(b"half")
    assert store.list("j") == ["j/s0/m0-a0"]


def test_delete_prefix_removes_the_folder(tmp_path: Path) -> None:
    store = BlockStore(str(tmp_path))
    store.put("0a/job/s0/m0-a0", b"x")
    store.delete_prefix("0a/job")
    assert not (tmp_path / "0a" / "job").exists()


def test_request_counts_arithmetic() -> None:
    a = RequestCounts(get=3, put=2, list=1, delete=1, head=4, bytes_in=100, bytes_out=50)
    b = RequestCounts(get=1, put=1, bytes_in=10)
    assert a + b == RequestCounts(4, 3, 1, 1, 4, 110, 50)
    assert a - b == RequestCounts(2, 1, 1, 1, 4, 90, 50)
    assert a.as_dict() == {"get": 3, "put": 2, "list": 1, "delete": 1, "head": 4,
                           "bytes_in": 100, "bytes_out": 50, "throttled": 0}
    assert a.requests == 11


def test_url_credentials_are_redacted(tmp_path: Path) -> None:
    store = BlockStore("memory://user:pa55word@bucket/x")
    assert "pa55word" not in repr(store)
    with pytest.raises(FileNotFoundError) as info:
        store.get("no/such")
    assert "pa55word" not in str(info.value)


def test_importing_shuffle_pulls_in_no_aws_and_no_upper_layers() -> None:
    code = (
        "import sys, shuffle, shuffle.store, shuffle.reader, shuffle.writer, shuffle.spill\n"
        "shuffle.store.BlockStore('memory://x')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('s3fs', 'boto3', 'botocore', 'aiobotocore', 'dagrun', 'scheduler', 'lambda_executor')]\n"
        "print(bad)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]"


def test_memory_store_needs_the_inline_executor() -> None:
    import dagrun

    with pytest.raises(ValueError, match="cannot be shared with 'local' executors"):
        dagrun.Context(executor="local", store="memory://no-sharing", conf={"progress": "off"})
    with dagrun.Context(executor="inline", store="memory://shared-in-process", conf={"progress": "off"}) as ctx:
        assert sorted(ctx.parallelize(range(6), 3).map(lambda x: (x % 2, x)).reduce_by_key(
            lambda a, b: a + b).collect()) == [(0, 6), (1, 9)]


def test_a_task_store_view_shares_the_filesystem_but_not_counts_or_hook(tmp_path: Path) -> None:
    store = BlockStore(str(tmp_path))
    store.before_request = lambda kind: None
    view = store.view()
    view.put("a/b", b"xyz")
    assert view.counts.put == 1 and store.counts.put == 0
    assert view.before_request is None and store.get("a/b") == b"xyz"
