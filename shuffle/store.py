"""Block store: immutable shuffle objects in an fsspec store, every request retried and counted.

State: one filesystem adapter (``shuffle.fsops``, made from ``url`` + ``storage_options``),
the store's root path, a lock-protected :class:`RequestCounts` of what this object asked
for, and ``before_request``, an optional hook run before every attempt of every request.

Policy:
- Writes are atomic (invariant 3).  Local paths and ``file://`` (local disk, EFS, NFS)
  write a temporary sibling and ``os.replace`` it into place.  ``s3://`` sends one PUT,
  or from two ``multipart_chunk``s up a multipart upload, atomic once completed.
  ``memory://`` stores bytes in a dict and only works in one process.
- Reads of many ranges run concurrently with at most ``max_concurrency`` in flight: on
  the event loop of async filesystems (s3fs), otherwise on a thread pool (local disk and
  EFS profit from parallel reads; memory reads run inline).
- Retries (``shuffle.retry``): a throttle (S3 503 SlowDown), a 500-class error or a
  transport failure is retried with capped, jittered exponential backoff, bounded in
  attempts and time; then ``StoreUnavailable`` is raised.  The client library's own
  retries are turned off for s3 (botocore ``total_max_attempts=1``, s3fs ``retries=1``)
  so that every attempt, and every throttle, is seen and counted here.
- Counts are in S3 request units, the same for every backend, so a local run predicts
  what the job would cost on S3 (invariant 8): a put is one PUT (a multipart upload
  counts create + parts + complete), each get/range one GET, ``exists`` one HEAD, a
  listing one LIST per page of 1000 keys (at least one), ``delete`` one DELETE, and
  ``delete_keys``/``delete_prefix`` their listing plus one DELETE per 1000 keys.  Every
  attempt that reaches the store is counted, whether or not it succeeds; ``throttled``
  counts the attempts answered with a throttle.  ``bytes_in`` are bytes read from the
  store, ``bytes_out`` bytes sent to it.
- s3fs is never imported here: fsspec imports it the first time an ``s3://`` URL is used.
  The endpoint comes from ``storage_options`` or, as for any boto3 client, from
  ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``.

Promise: a missing key raises ``FileNotFoundError`` naming the key, a store that keeps
failing ``StoreUnavailable``; pickling carries only ``url`` and ``storage_options``, and
the copy starts with zero counts, no hook and the default retry policy; neither ``repr``
nor any message contains ``storage_options`` values or URL credentials.  Counts match
the requests the store received, except that an upload retried after some of its
multipart parts went through counts the whole upload again.
"""

from __future__ import annotations

import copy
import errno
import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, TypeVar

import fsspec.core

from shuffle.errors import StoreUnavailable
from shuffle.fsops import LIST_PAGE, ops_for
from shuffle.layout import redact as _redact
from shuffle.retry import RetryPolicy, classify

__all__ = ["BlockStore", "RequestCounts", "StoredObject"]

log = logging.getLogger("dagrun.store")
T = TypeVar("T")
_S3_CHUNK = 50 << 20  # s3fs pipe_file's default multipart chunk size


@dataclass
class RequestCounts:
    """Store requests by kind, bytes moved and throttles; add and subtract for per-stage deltas."""

    get: int = 0
    put: int = 0
    list: int = 0
    delete: int = 0
    head: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    throttled: int = 0  # attempts the store answered with "slow down" (counted in their kind too)

    def __add__(self, other: RequestCounts) -> RequestCounts:
        return RequestCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: RequestCounts) -> RequestCounts:
        return RequestCounts(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    @property
    def requests(self) -> int:
        return self.get + self.put + self.list + self.delete + self.head

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class StoredObject:
    """One object of the store: its key, size in bytes and last change (epoch seconds)."""

    key: str
    size: int
    modified: float


def _put_requests(size: int, chunk: int) -> int:
    if size < 2 * chunk:
        return 1
    return math.ceil(size / chunk) + 2


def _client_options(protocol: str, options: dict) -> dict:
    """What the filesystem is built with: the user's options plus, for s3, no client retries."""
    if protocol not in ("s3", "s3a"):
        return dict(options)
    opts = dict(options)
    config = dict(opts.get("config_kwargs") or {})
    # This store retries and counts every attempt itself; botocore retrying underneath
    # would hide throttles and make the counts differ from what S3 bills.
    config.setdefault("retries", {"total_max_attempts": 1})
    config.setdefault("max_pool_connections", 32)  # above get_ranges' default concurrency
    # These config_kwargs are part of fsspec's instance-cache key, so block stores share one
    # S3FileSystem (and its connection pool) per process while every other user of s3fs
    # with the same credentials gets a separate instance that keeps its own retries.
    opts["config_kwargs"] = config
    return opts


class BlockStore:
    """Keys under one root of an fsspec store, e.g. ``"/tmp/shuffle"``, ``"s3://bucket/x"``."""

    multipart_chunk = _S3_CHUNK  # bytes per part of a multipart upload (S3's minimum is 5 MiB)

    def __init__(self, url: str, storage_options: dict | None = None, *, retry: RetryPolicy | None = None) -> None:
        self.url = url
        self.storage_options = dict(storage_options or {})
        self.retry = retry or RetryPolicy()
        protocol = fsspec.core.split_protocol(url)[0] or "file"
        try:
            fs, root = fsspec.core.url_to_fs(url, **_client_options(protocol, self.storage_options))
        except ImportError as e:
            raise ImportError(
                f"the store {_redact(url)!r} needs an fsspec backend that is not installed ({e}); "
                "for s3:// run: pip install 'dagrun[aws]'") from e
        except ValueError as e:
            if "Protocol not known" not in str(e):
                raise
            raise ValueError(f"the store {_redact(url)!r} names the protocol {protocol!r}, which fsspec does not "
                             "know; give a local folder, or a URL such as s3://bucket/prefix, file:///path or "
                             "memory://name") from e
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self.protocol: str = "file" if protocol == "local" else protocol
        if self.protocol in ("s3", "s3a"):
            fs.retries = 1  # s3fs's own retry loop: one try, the retries are ours
        self._fs = fs
        self._ops = ops_for(self.protocol, fs)
        self._local = self.protocol == "file"
        self._root = root.rstrip("/")
        self.crosses_processes = self.protocol != "memory"
        self._lock = threading.Lock()
        self._counts = RequestCounts()
        # (kind) -> None, run before each attempt; what it raises fails that attempt as if
        # the store had answered with it (fault injection).  Such an attempt made no request.
        self.before_request: Callable[[str], None] | None = None

    # -- bookkeeping -------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"BlockStore({_redact(self.url)!r})"

    def __reduce__(self) -> tuple:
        return (type(self), (self.url, self.storage_options))

    def view(self) -> BlockStore:
        """A store sharing this one's connection pool, with its own counts and no hook.

        One per task, so that tasks running side by side in one process (the inline
        backend) neither mix their counts nor share a fault hook.
        """
        other = copy.copy(self)
        other._lock, other._counts, other.before_request = threading.Lock(), RequestCounts(), None
        return other

    @property
    def counts(self) -> RequestCounts:
        """Snapshot of the requests this object made in this process."""
        with self._lock:
            return RequestCounts(**asdict(self._counts))

    def count_request(self, kind: str, n: int = 1, bytes_in: int = 0, bytes_out: int = 0) -> None:
        """Count a request made outside this store on its behalf, such as a task's input read,
        so that it is billed with the task's other requests."""
        self._count(kind, n, bytes_in, bytes_out)

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

    def _key(self, path: str) -> str:
        return os.path.relpath(path, self._root).replace(os.sep, "/") if self._local \
            else path[len(self._root) + 1:]

    def _missing(self, key: str, cause: BaseException | None = None) -> FileNotFoundError:
        err = FileNotFoundError(errno.ENOENT, f"no object {key!r} in store {_redact(self.url)!r}")
        err.__cause__ = cause
        return err

    # -- the retry loop ----------------------------------------------------------------
    def _call(self, kind: str, what: str, request: Callable[[], T], n: int = 1, bytes_out: int = 0) -> T:
        """``request()`` with retries; each attempt that reaches the store counts ``n`` of ``kind``."""
        started, failures = time.monotonic(), 0
        while True:
            try:
                if self.before_request is not None:
                    self.before_request(kind)
                self._count(kind, n, bytes_out=bytes_out)
                return request()
            except Exception as e:  # classified: only throttles and transient errors are retried
                if not self._retryable(e):
                    raise
                failures += 1
                delay = self._backoff(e, failures, started, f"{kind} {what}")
            time.sleep(delay)

    def _retryable(self, e: BaseException) -> bool:
        why = classify(e)
        if why == "throttle":
            self._count("throttled")
        return why is not None

    def _backoff(self, e: BaseException, failures: int, started: float, what: str) -> float:
        """The wait before the next try, or ``StoreUnavailable`` when the retry budget is spent."""
        delay = self.retry.delay(failures)
        spent = time.monotonic() - started
        if failures >= self.retry.max_attempts or spent + delay > self.retry.max_seconds:
            raise StoreUnavailable(what, _redact(self.url), failures, spent, f"{type(e).__name__}: {e}") from e
        log.debug("store %s: %s failed (%s), retry %d in %.2fs", _redact(self.url), what, type(e).__name__,
                  failures, delay)
        return delay

    # -- writes --------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        """Write one whole object atomically; parent folders are created as needed."""
        path, data, chunk = self._path(key), bytes(data), self.multipart_chunk
        self._call("put", key, lambda: self._ops.put(path, data, chunk), _put_requests(len(data), chunk),
                   bytes_out=len(data))

    def delete(self, key: str) -> None:
        """Remove one object; deleting a missing key is not an error (S3 semantics)."""
        path = self._path(key)
        self._call("delete", key, lambda: self._ops.delete(path))

    def delete_keys(self, keys: list[str]) -> None:
        """Remove many objects, one DELETE (S3 DeleteObjects) per 1000 keys."""
        paths = [self._path(k) for k in keys]
        for i in range(0, len(paths), LIST_PAGE):
            batch = paths[i:i + LIST_PAGE]
            self._call("delete", f"{len(batch)} keys from {keys[i]!r}", lambda b=batch: self._ops.delete_batch(b))

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under the folder ``prefix`` (e.g. a job dir)."""
        if not prefix.strip("/"):
            raise ValueError("delete_prefix needs a non-empty prefix; it will not empty the whole store")
        keys = self.list(prefix)
        if keys:
            self.delete_keys(keys)
        self._ops.remove_folder(self._path(prefix))

    # -- reads -----------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        return self._read(key, None, None)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of an object (fewer if the object is shorter)."""
        return self._read(key, start, end)

    def _read(self, key: str, start: int | None, end: int | None) -> bytes:
        path = self._path(key)
        try:
            data = self._call("get", key, lambda: self._ops.get(path, start, end))
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
        if self._ops.is_async:
            results = self._get_ranges_async(ranges, max_concurrency)
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

    def _get_ranges_async(self, ranges: list[tuple[str, int, int]], max_concurrency: int) -> list[Any]:
        """One batch on the event loop, then a retry round for the ranges that may succeed later."""
        results: list[Any] = [None] * len(ranges)
        todo, failures, started = list(range(len(ranges))), 0, time.monotonic()
        while True:
            sent = []
            for i in todo:
                try:
                    if self.before_request is not None:
                        self.before_request("get")
                    sent.append(i)
                except Exception as e:  # an injected answer stands in for the store's
                    results[i] = e
            self._count("get", len(sent))
            out = self._ops.get_many([(self._path(ranges[i][0]), ranges[i][1], ranges[i][2]) for i in sent],
                                     max_concurrency) if sent else []
            for i, r in zip(sent, out):
                results[i] = r
                if isinstance(r, (bytes, bytearray)):
                    self._count("get", 0, bytes_in=len(r))
            retry = [i for i in todo if isinstance(results[i], Exception) and self._retryable(results[i])]
            if not retry:
                break
            failures += 1
            try:
                delay = self._backoff(results[retry[0]], failures, started,
                                      f"get of {len(retry)} ranges from {ranges[retry[0]][0]!r}")
            except StoreUnavailable as gave_up:
                for i in retry:
                    results[i] = gave_up
                break
            time.sleep(delay)
            todo = retry
        for i, r in enumerate(results):
            if isinstance(r, FileNotFoundError):
                results[i] = self._missing(ranges[i][0], r)
        return results

    def exists(self, key: str) -> bool:
        path = self._path(key)
        return self._call("head", key, lambda: self._ops.head(path))

    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys of every object under the folder ``prefix`` ("" for all)."""
        return [o.key for o in self.list_objects(prefix)]

    def list_objects(self, prefix: str = "", *, temporaries: bool = False) -> list[StoredObject]:
        """Every object under the folder ``prefix`` ("" for all) with size and age, by key;
        ``temporaries=True`` lists in-flight local writes too (for ``shuffle.gc``)."""
        base = self._path(prefix) if prefix.strip("/") else self._root

        def listing() -> list[StoredObject]:
            found = []
            for page in self._ops.list_pages(base, lambda: self._count("list"), temporaries):
                found.extend(StoredObject(self._key(o.path), o.size, o.modified) for o in page)
            return found

        found = self._call("list", prefix or "(all)", listing, n=0)
        return sorted((o for o in found if o.key and o.key != "."), key=lambda o: o.key)

    def list_uploads(self) -> list[StoredObject]:
        """Incomplete multipart uploads under the root (S3 only; other stores have none):
        ``StoredObject(key, 0, initiated)`` with the upload id kept in ``upload_ids``."""
        lister = getattr(self._ops, "list_uploads", None)
        if lister is None:
            return []
        found = self._call("list", "multipart uploads", lambda: lister(self._root, lambda: self._count("list")), n=0)
        self.upload_ids = {self._key(path): ids for path, ids in found.items()}
        return sorted((StoredObject(key, 0, max(t for _, t in ids)) for key, ids in self.upload_ids.items()),
                      key=lambda o: o.key)

    def abort_uploads(self, key: str) -> int:
        """Abort every incomplete multipart upload of ``key`` listed by ``list_uploads``; how many."""
        ids = getattr(self, "upload_ids", {}).get(key, [])
        path = self._path(key)
        for upload_id, _ in ids:
            self._call("delete", f"upload of {key}", lambda u=upload_id: self._ops.abort_upload(path, u))
        return len(ids)

    def remove_empty_folders(self, prefix: str) -> None:
        """Remove the folder ``prefix`` and the folders below it that hold no file (local disk)."""
        if self._local and prefix.strip("/"):
            path = self._path(prefix)
            for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass  # not empty: something else lives there
