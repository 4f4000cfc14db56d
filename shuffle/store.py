"""Block store: immutable shuffle objects in an fsspec store, with every request counted.

State: one fsspec filesystem (made from ``url`` + ``storage_options``), the store's root
path, and a lock-protected :class:`RequestCounts` of what this object asked for.

Policy:
- Writes are atomic (invariant 3).  Local paths and ``file://`` write a temporary
  sibling and ``os.replace`` it into place, so a reader sees the whole block or nothing.
  ``s3://`` sends one PUT (s3fs ``pipe_file``; above 100 MiB s3fs uses a multipart
  upload, which is atomic once completed).  ``memory://`` stores bytes in a dict.
- Reads of many ranges run concurrently: with ``fs.cat_ranges`` on async filesystems
  (s3fs batches them on its event loop), otherwise on a bounded thread pool (local
  disk and EFS profit from parallel reads; memory reads run inline).
- Counts are in S3 request units, the same for every backend, so a local run predicts
  what the job would cost on S3 (invariant 8): a put is one PUT (a multipart upload
  counts create + parts + complete), each get/range one GET, ``exists`` one HEAD,
  ``list`` one LIST per 1000 keys (at least one), ``delete`` one DELETE, and
  ``delete_prefix`` its listing plus one DELETE per 1000 keys (S3 DeleteObjects
  batches).  A request is counted when it is made, whether or not it succeeds;
  ``bytes_in`` are bytes read from the store, ``bytes_out`` bytes written to it.
- s3fs is never imported here: fsspec imports it the first time an ``s3://`` URL is used.

Promise: a missing key raises ``FileNotFoundError`` naming the key; pickling carries only
``url`` and ``storage_options`` and the copy starts with zero counts; neither ``repr`` nor
any message contains ``storage_options`` values or URL credentials.
"""

from __future__ import annotations

import errno
import math
import os
import re
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from typing import Any

import fsspec.core

__all__ = ["BlockStore", "RequestCounts"]

_S3_CHUNK = 50 << 20  # s3fs pipe_file's multipart chunk size
_LIST_PAGE = 1000  # keys per ListObjectsV2 page and per DeleteObjects request
_TMP_MARK = ".tmp-"


@dataclass
class RequestCounts:
    """Store requests by kind and bytes moved; add and subtract to get per-stage deltas."""

    get: int = 0
    put: int = 0
    list: int = 0
    delete: int = 0
    head: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def __add__(self, other: RequestCounts) -> RequestCounts:
        return RequestCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: RequestCounts) -> RequestCounts:
        return RequestCounts(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    @property
    def requests(self) -> int:
        return self.get + self.put + self.list + self.delete + self.head

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _redact(url: str) -> str:
    """Drop ``user:password@`` from a URL before it goes into a message."""
    return re.sub(r"^([a-zA-Z][\w+.-]*://)[^/@]*@", r"\1", url)


def _put_requests(size: int) -> int:
    if size < 2 * _S3_CHUNK:
        return 1
    return math.ceil(size / _S3_CHUNK) + 2


class BlockStore:
    """Keys under one root of an fsspec store, e.g. ``"/tmp/shuffle"``, ``"s3://bucket/x"``."""

    def __init__(self, url: str, storage_options: dict | None = None) -> None:
        self.url = url
        self.storage_options = dict(storage_options or {})
        try:
            fs, root = fsspec.core.url_to_fs(url, **self.storage_options)
        except ImportError as e:
            raise ImportError(
                f"the store {_redact(url)!r} needs an fsspec backend that is not installed ({e}); "
                "for s3:// run: pip install 'dagrun[aws]'") from e
        self._fs = fs
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self.protocol: str = "file" if protocol == "local" else protocol
        self._local = self.protocol == "file"
        self._root = root.rstrip("/")
        self.crosses_processes = self.protocol != "memory"
        self._async = bool(getattr(fs, "async_impl", False))
        self._lock = threading.Lock()
        self._counts = RequestCounts()

    # -- bookkeeping -------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"BlockStore({_redact(self.url)!r})"

    def __reduce__(self) -> tuple:
        return (type(self), (self.url, self.storage_options))

    @property
    def counts(self) -> RequestCounts:
        """Snapshot of the requests this object made in this process."""
        with self._lock:
            return RequestCounts(**asdict(self._counts))

    def _count(self, kind: str, n: int = 1, bytes_in: int = 0, bytes_out: int = 0) -> None:
        with self._lock:
            setattr(self._counts, kind, getattr(self._counts, kind) + n)
            self._counts.bytes_in += bytes_in
            self._counts.bytes_out += bytes_out

    def _path(self, key: str) -> str:
        parts = key.strip("/").split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"invalid store key {key!r}")
        if self._local:
            return os.path.join(self._root, *parts)
        return f"{self._root}/{key}"

    def _missing(self, key: str, cause: BaseException | None = None) -> FileNotFoundError:
        err = FileNotFoundError(errno.ENOENT, f"no object {key!r} in store {_redact(self.url)!r}")
        err.__cause__ = cause
        return err

    # -- writes --------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        """Write one whole object atomically; parent folders are created as needed."""
        path = self._path(key)
        self._count("put", _put_requests(len(data)), bytes_out=len(data))
        if not self._local:
            self._fs.pipe_file(path, bytes(data))
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = os.path.join(os.path.dirname(path),
                           f".{os.path.basename(path)}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            # No fsync: a shuffle block only has to outlive the writing process, not the
            # machine, and the page cache (or NFS close-to-open) already gives readers that.
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            self._unlink_quietly(tmp)
            raise

    def delete(self, key: str) -> None:
        """Remove one object; deleting a missing key is not an error (S3 semantics)."""
        path = self._path(key)
        self._count("delete")
        if self._local:
            self._unlink_quietly(path)
            return
        try:
            self._fs.rm_file(path)
        except FileNotFoundError:
            pass

    @staticmethod
    def _unlink_quietly(path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under the folder ``prefix`` (e.g. a job dir)."""
        if not prefix.strip("/"):
            raise ValueError("delete_prefix needs a non-empty prefix; it will not empty the whole store")
        keys = self.list(prefix)
        if not keys:
            return
        self._count("delete", math.ceil(len(keys) / _LIST_PAGE))
        if self._local:
            path = self._path(prefix)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                self._unlink_quietly(path)
        else:
            self._fs.rm([self._path(k) for k in keys])

    # -- reads -----------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        path = self._path(key)
        self._count("get")
        try:
            if self._local:
                with open(path, "rb") as f:
                    data = f.read()
            else:
                data = self._fs.cat_file(path)
        except FileNotFoundError as e:
            raise self._missing(key, e) from e
        self._count("get", 0, bytes_in=len(data))
        return data

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of an object (fewer if the object is shorter)."""
        path = self._path(key)
        self._count("get")
        try:
            if self._local:
                with open(path, "rb") as f:
                    f.seek(start)
                    data = f.read(max(0, end - start))
            else:
                data = self._fs.cat_file(path, start=start, end=end)
        except FileNotFoundError as e:
            raise self._missing(key, e) from e
        self._count("get", 0, bytes_in=len(data))
        return data

    def get_ranges(self, ranges: list[tuple[str, int, int]], max_concurrency: int = 16, *,
                   return_exceptions: bool = False) -> list[Any]:
        """Fetch ``(key, start, end)`` ranges concurrently, results in the given order.

        With ``return_exceptions=True`` a failed range gives its exception in place of
        bytes (like ``asyncio.gather``), so a reader can name every missing block at once.
        """
        if not ranges:
            return []
        max_concurrency = max(1, max_concurrency)
        if self._async:
            results = self._cat_ranges_async(ranges, max_concurrency)
        elif len(ranges) == 1 or max_concurrency == 1 or not self._local:
            results = [self._try_range(r) for r in ranges]
        else:
            with ThreadPoolExecutor(min(max_concurrency, len(ranges)),
                                    thread_name_prefix="shuffle-fetch") as pool:
                results = list(pool.map(self._try_range, ranges))
        if not return_exceptions:
            for r in results:
                if isinstance(r, BaseException):
                    raise r
        return results

    def _try_range(self, r: tuple[str, int, int]) -> Any:
        try:
            return self.get_range(*r)
        except Exception as e:  # handed back to the caller, who raises or reports it
            return e

    def _cat_ranges_async(self, ranges: list[tuple[str, int, int]], max_concurrency: int) -> list[Any]:
        paths = [self._path(k) for k, _, _ in ranges]
        self._count("get", len(ranges))
        out = self._fs.cat_ranges(paths, [s for _, s, _ in ranges], [e for _, _, e in ranges],
                                  batch_size=max_concurrency, on_error="return")
        results: list[Any] = []
        for (key, _, _), r in zip(ranges, out):
            if isinstance(r, FileNotFoundError):
                r = self._missing(key, r)
            elif isinstance(r, (bytes, bytearray)):
                self._count("get", 0, bytes_in=len(r))
            results.append(r)
        return results

    def exists(self, key: str) -> bool:
        path = self._path(key)
        self._count("head")
        if self._local:
            return os.path.isfile(path)
        self._fs.invalidate_cache(path)  # s3fs may answer from a listing another process outdated
        return bool(self._fs.exists(path))

    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys of every object under the folder ``prefix`` ("" for all)."""
        base = self._path(prefix) if prefix.strip("/") else self._root
        if self._local:
            keys = [prefix.strip("/")] if prefix.strip("/") and os.path.isfile(base) else []
            for dirpath, _dirs, files in os.walk(base):
                rel = os.path.relpath(dirpath, self._root).replace(os.sep, "/")
                for name in files:
                    if not (name.startswith(".") and _TMP_MARK in name):
                        keys.append(name if rel == "." else f"{rel}/{name}")
        else:
            self._fs.invalidate_cache(base)  # another process may have written since
            cut = len(self._root) + 1
            keys = [p[cut:] for p in self._fs.find(base)]
        self._count("list", max(1, math.ceil(len(keys) / _LIST_PAGE)))
        return sorted(keys)
