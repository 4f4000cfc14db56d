"""Filesystem adapters under the block store: one small set of object operations per kind of store.

State: each adapter holds its fsspec filesystem (none for local disk); nothing else.

Policy: an adapter turns each operation into the fewest requests its store allows and
makes exactly the requests the block store counts for it, so the counts match what the
store bills:
- ``LocalOps`` (plain paths, ``file://``, EFS/NFS mounts): temp file + ``os.replace``.
- ``S3Ops`` (s3fs): one PUT (a multipart upload at ``multipart_chunk`` and above two
  chunks), one ranged or whole GET, one HEAD for ``head``, one ListObjectsV2 per page of
  1000 keys, one DeleteObjects per 1000 keys.  It calls ``head_object``,
  ``list_objects_v2`` and ``delete_objects`` itself because s3fs's ``exists``, ``find``
  and whole-object ``cat_file`` add HEAD and LIST requests of their own (to tell files
  from "directories", or to size a concurrent download).
- ``FsspecOps``: any other fsspec filesystem (``memory://``, gcs, ...) through the
  generic API.
Adapters do not retry, count or translate errors: the block store does that for all.

Promise: a missing object raises ``FileNotFoundError``; ``list_pages`` calls
``before_page`` right before it requests each page (so a failed request is counted
too), yields ``Listed`` pages, and never yields an in-flight temporary file.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator

from shuffle.layout import TMP_MARK, is_temporary, temporary_name

__all__ = ["LIST_PAGE", "TMP_MARK", "FsspecOps", "Listed", "LocalOps", "S3Ops", "ops_for"]

LIST_PAGE = 1000  # keys per ListObjectsV2 page and per DeleteObjects request


@dataclass(frozen=True)
class Listed:
    """One listed object: its path in the filesystem, size and last change (epoch seconds)."""

    path: str
    size: int
    modified: float


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


class LocalOps:
    """Local disk and network mounts: atomic rename, parallel reads on a thread pool."""

    is_async = False

    def put(self, path: str, data: bytes, multipart_chunk: int) -> None:
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, temporary_name(os.path.basename(path), os.getpid(), uuid.uuid4().hex[:8]))
        try:
            # No fsync: a shuffle block only has to outlive the writing process, not the
            # machine, and the page cache (or NFS close-to-open) already gives readers that.
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def get(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        with open(path, "rb") as f:
            if start is None:
                return f.read()
            f.seek(start)
            return f.read(max(0, (end or 0) - start))

    def head(self, path: str) -> bool:
        return os.path.isfile(path)

    def list_pages(self, base: str, before_page: Callable[[], None],
                   temporaries: bool = False) -> Iterator[list[Listed]]:
        found: list[Listed] = []
        if os.path.isfile(base):
            found.append(_stat(base))
        for dirpath, _dirs, files in os.walk(base):
            for n in files:
                if temporaries or not is_temporary(n):
                    try:
                        found.append(_stat(os.path.join(dirpath, n)))
                    except FileNotFoundError:
                        pass  # a temporary renamed or removed since the walk saw it
        found.sort(key=lambda o: o.path)
        for i in range(0, max(1, len(found)), LIST_PAGE):
            before_page()
            yield found[i:i + LIST_PAGE]

    def delete(self, path: str) -> None:
        _unlink_quietly(path)

    def delete_batch(self, paths: list[str]) -> None:
        for path in paths:
            _unlink_quietly(path)

    def remove_folder(self, path: str) -> None:
        """Drop the (now empty) folders too, so a deleted job leaves no directory tree."""
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)


def _stat(path: str) -> Listed:
    st = os.stat(path)
    return Listed(path, st.st_size, st.st_mtime)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class FsspecOps:
    """Any fsspec filesystem through its generic API."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs
        self.is_async = bool(getattr(fs, "async_impl", False))

    def put(self, path: str, data: bytes, multipart_chunk: int) -> None:
        self.fs.pipe_file(path, data)

    def get(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        return self.fs.cat_file(path, start=start, end=end)

    def get_many(self, ranges: list[tuple[str, int, int]], concurrency: int) -> list[Any]:
        """Ranged reads in one batch on the filesystem's event loop; errors in place."""
        return self.fs.cat_ranges([p for p, _, _ in ranges], [s for _, s, _ in ranges],
                                  [e for _, _, e in ranges], batch_size=concurrency, on_error="return")

    def head(self, path: str) -> bool:
        self.fs.invalidate_cache(path)  # another process may have written since
        return bool(self.fs.isfile(path))

    def list_pages(self, base: str, before_page: Callable[[], None],
                   temporaries: bool = False) -> Iterator[list[Listed]]:  # object stores write no temporaries
        self.fs.invalidate_cache(base)
        before_page()  # the first page is requested now; later ones are counted as S3 would page
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            found = {}
        infos = sorted((Listed(name, int(i.get("size") or 0),
                                   _epoch(i.get("LastModified") or i.get("mtime") or i.get("created")))
                        for name, i in found.items() if i.get("type", "file") == "file"), key=lambda o: o.path)
        for i in range(0, max(1, len(infos)), LIST_PAGE):
            if i:
                before_page()
            yield infos[i:i + LIST_PAGE]

    def delete(self, path: str) -> None:
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass

    def delete_batch(self, paths: list[str]) -> None:
        try:
            self.fs.rm(paths)
        except FileNotFoundError:
            pass

    def remove_folder(self, path: str) -> None:
        pass  # object stores have no folders; memory:// keeps no empty ones worth a request


class S3Ops(FsspecOps):
    """s3fs, with every operation exactly the S3 requests the block store counts."""

    def put(self, path: str, data: bytes, multipart_chunk: int) -> None:
        self.fs.pipe_file(path, data, chunksize=multipart_chunk)

    def get(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        if start is None:
            # max_concurrency=1: s3fs would otherwise HEAD the object first, to decide
            # whether to download it in concurrent chunks.
            return self.fs.cat_file(path, max_concurrency=1)
        return self.fs.cat_file(path, start=start, end=end)

    def head(self, path: str) -> bool:
        bucket, key, _ = self.fs.split_path(path)
        try:
            self.fs.call_s3("head_object", Bucket=bucket, Key=key)
        except FileNotFoundError:
            return False
        return True

    def list_uploads(self, base: str, before_page: Callable[[], None]) -> dict[str, list[tuple[str, float]]]:
        """Incomplete multipart uploads under ``base``: path -> [(upload id, initiated)]."""
        bucket, key, _ = self.fs.split_path(base)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": f"{key}/" if key else ""}
        found: dict[str, list[tuple[str, float]]] = {}
        while True:
            before_page()
            page = self.fs.call_s3("list_multipart_uploads", **kwargs)
            for u in page.get("Uploads", []):
                found.setdefault(f"{bucket}/{u['Key']}", []).append((u["UploadId"], _epoch(u.get("Initiated"))))
            if not page.get("IsTruncated"):
                return found
            kwargs["KeyMarker"], kwargs["UploadIdMarker"] = page["NextKeyMarker"], page["NextUploadIdMarker"]

    def abort_upload(self, path: str, upload_id: str) -> None:
        bucket, key, _ = self.fs.split_path(path)
        try:
            self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
        except FileNotFoundError:
            pass  # completed or aborted meanwhile (NoSuchUpload)

    def list_pages(self, base: str, before_page: Callable[[], None],
                   temporaries: bool = False) -> Iterator[list[Listed]]:  # object stores write no temporaries
        bucket, key, _ = self.fs.split_path(base)
        # Prefix without the trailing "/" so that a key equal to ``base`` is listed too
        # (no HEAD needed); keys that merely share the stem ("job10" for "job1") are dropped.
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": key}
        while True:
            before_page()
            page = self.fs.call_s3("list_objects_v2", **kwargs)
            yield [Listed(f"{bucket}/{o['Key']}", int(o.get("Size", 0)), _epoch(o.get("LastModified")))
                   for o in page.get("Contents", [])
                   if (not key or o["Key"] == key or o["Key"].startswith(key + "/")) and not o["Key"].endswith("/")]
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def delete(self, path: str) -> None:
        bucket, key, _ = self.fs.split_path(path)
        self.fs.invalidate_cache(path)
        self.fs.call_s3("delete_object", Bucket=bucket, Key=key)  # S3 answers 204 for a missing key too

    def delete_batch(self, paths: list[str]) -> None:
        if not paths:
            return
        bucket = self.fs.split_path(paths[0])[0]
        keys = [{"Key": self.fs.split_path(p)[1]} for p in paths]
        for p in paths:
            self.fs.invalidate_cache(p)
        for i in range(0, len(keys), LIST_PAGE):
            out = self.fs.call_s3("delete_objects", Bucket=bucket,
                                  Delete={"Objects": keys[i:i + LIST_PAGE], "Quiet": True})
            failed = out.get("Errors") or []  # S3 answers 200 and lists the keys it could not delete
            if failed:
                e = failed[0]
                raise OSError(errno.EIO, f"DeleteObjects could not delete {len(failed)} keys, e.g. "
                                         f"{e.get('Key')!r}: {e.get('Code')} {e.get('Message', '')}".rstrip())


def ops_for(protocol: str, fs: Any) -> LocalOps | FsspecOps:
    if protocol == "file":
        return LocalOps()
    if protocol in ("s3", "s3a"):
        return S3Ops(fs)
    return FsspecOps(fs)
