"""Output commit for ``save_as_text_file``: attempts write aside, the driver commits winners.

State: none between jobs.  During a job, ``{out}/_temporary/{token}/`` holds one file per
task attempt that got as far as writing.

Policy (Hadoop's FileOutputCommitter, version 1, in miniature):
- every attempt writes ``{out}/_temporary/{token}/part-NNNNN-a{attempt}``, a name no
  other attempt shares, and returns it as an :class:`AttemptFile`;
- the scheduler commits exactly one attempt per partition (the first to finish); an
  attempt that loses, a speculative duplicate or a straggler that finishes after the job,
  is discarded, and the driver deletes its file (``AttemptFile.discard_output``, called
  through the Context's discard hook);
- once every partition has committed, the driver claims the output by creating
  ``{out}/_COMMIT`` exclusively (``O_EXCL`` on local disk, a PUT with ``If-None-Match: *``
  on S3), the commit point: of two saves racing to one path exactly one gets it, and the
  other fails with ``FileExistsError`` having written no final name.  The winner moves each
  committed attempt's file to ``{out}/part-NNNNN``, writes ``_SUCCESS``, then drops its
  claim and its ``_temporary/{token}`` (``_temporary`` itself once empty).  A save that gets the claim after a winner dropped it finds
  ``_SUCCESS`` there (written before the drop) and fails the same way;
- a save that fails deletes its own ``_temporary/{token}``; a failure after the claim also
  deletes the part files already moved and the claim, and writes no ``_SUCCESS``.
On an object store a move is a copy and a delete (S3 has no rename); the commit is still
driver-only, so no final name is ever written by two attempts.  A driver killed during its
commit leaves ``_COMMIT`` without ``_SUCCESS``: ``text_file`` refuses such a folder
(``dagrun.runtime.inputs.IncompleteOutputError``) and a new save to it says how to clean it.

Promise: after a successful job the output holds exactly ``part-00000`` .. one per
partition and ``_SUCCESS``, all of one save; after a failed one it holds no
``_SUCCESS`` and no part file.  Stores with neither exclusive create nor conditional PUT
(``memory://``) check and write, which does not exclude a race.
"""

from __future__ import annotations

import itertools
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import fsspec

from dagrun import optional
from dagrun.runtime.file_codecs import open_compressed
from dagrun.runtime.output_marks import COMMIT_MARK, SUCCESS_MARK, TEMPORARY_DIR
from dagrun.runtime.prefix_sort import split_records

if TYPE_CHECKING:
    from dagrun.api.rdd import RDD

_CODECS = {"gzip": ("gzip", ".gz"), "org.apache.hadoop.io.compress.GzipCodec": ("gzip", ".gz"),
           "bz2": ("bz2", ".bz2"), "bzip2": ("bz2", ".bz2"),
           "org.apache.hadoop.io.compress.BZip2Codec": ("bz2", ".bz2"),
           "deflate": ("deflate", ".deflate"), "org.apache.hadoop.io.compress.DefaultCodec": ("deflate", ".deflate"),
           "zstd": ("zstd", ".zst"), "org.apache.hadoop.io.compress.ZStandardCodec": ("zstd", ".zst")}


@dataclass(frozen=True)
class AttemptFile:
    """One task attempt's output file under ``_temporary``: committed by a move, or discarded."""

    fs: Any  # the output's fsspec filesystem (pickles as its class and options)
    path: str

    def discard_output(self) -> None:
        """Delete the file of an attempt that lost (the driver calls this on discard)."""
        try:
            self.fs.rm_file(self.path)
        except FileNotFoundError:
            pass


def _encode_lines(batch: list) -> bytes:
    """``batch`` as UTF-8 lines, with the common all-``str`` and all-``bytes`` batches joined
    in one call."""
    try:
        return ("\n".join(batch) + "\n").encode("utf-8")
    except TypeError:
        pass
    if set(map(type, batch)) != {bytes}:
        return ("\n".join(map(_as_text, batch)) + "\n").encode("utf-8")
    return _as_utf8(b"\n".join(batch) + b"\n")


def _record_lines(block: bytes, record_length: int) -> bytes:
    """The records of ``block`` (``record_length`` bytes each) as ``_encode_lines`` writes them."""
    np = optional.numpy()
    if np is None:
        return _as_utf8(b"\n".join(split_records(block, record_length)) + b"\n")
    rows = np.frombuffer(block, dtype=np.uint8).reshape(-1, record_length)
    lines = np.empty((len(rows), record_length + 1), dtype=np.uint8)
    lines[:, :record_length] = rows
    lines[:, record_length] = 10  # "\n"
    return _as_utf8(lines.tobytes())


def _as_utf8(data: bytes) -> bytes:
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        # "\n" ends any broken sequence, so this is what decoding each record alone gives
        return data.decode("utf-8", "replace").encode("utf-8")


def _as_text(x) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")  # PySpark writes bytes as UTF-8 text (BytesToString)
    return str(x)


def save_as_text_file(rdd: "RDD", path: str, compression: str | None = None) -> None:
    if compression is not None and compression not in _CODECS:
        raise ValueError(f"unknown compression {compression!r}; use one of {', '.join(sorted(_CODECS))}")
    codec, suffix = _CODECS[compression] if compression else (None, "")

    def write_lines(f, it: Iterator) -> None:
        take = getattr(it, "take_record_blocks", None)  # the block sort's output (dagrun.runtime.prefix_sort)
        blocks = take() if take is not None else None
        if blocks is not None:
            for block in blocks:
                f.write(_record_lines(block, it.record_length))
            return
        it = iter(it)
        while batch := list(itertools.islice(it, 4096)):
            f.write(_encode_lines(batch))

    save_parts(rdd, path, write_lines, codec, suffix)


def _exists_error(fs: Any, root: str) -> FileExistsError:
    names = {n.rstrip("/").rsplit("/", 1)[-1] for n in fs.ls(root, detail=False)} if fs.isdir(root) else set()
    if names and SUCCESS_MARK not in names and names & {COMMIT_MARK, TEMPORARY_DIR}:
        return FileExistsError(
            f"output path {root!r} holds a save that did not finish (no {SUCCESS_MARK}; a save may still be "
            "running there, or its driver died). If none is running, delete the folder (rm -r, or aws s3 rm "
            "--recursive) and save again")
    return FileExistsError(f"output path {root!r} already exists; delete it or choose another path "
                           "(dagrun never overwrites committed output)")


def _claim(fs: Any, path: str, token: str) -> bool:
    """Create ``path`` holding ``token`` only if it does not exist: True if this call created it."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    if "file" in protocols or "local" in protocols:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(token)
        return True
    if "s3" in protocols or "s3a" in protocols:
        bucket, key, _ = fs.split_path(path)
        try:
            fs.call_s3("put_object", Bucket=bucket, Key=key, Body=token.encode(), IfNoneMatch="*")
        except (FileExistsError, OSError) as exc:
            if _precondition_failed(exc):
                return False
            raise
        fs.invalidate_cache(path)
        return True
    if fs.exists(path):  # no exclusive create here: check and write, which a racing save can pass
        return False
    fs.pipe_file(path, token.encode())
    return True


def _precondition_failed(exc: BaseException) -> bool:
    """s3fs turns S3's 412 (and 409 ConditionalRequestConflict) into an OSError; find the code."""
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "response", {}).get("Error", {}).get("Code") if hasattr(seen, "response") else None
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or "PreconditionFailed" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _remove(fs: Any, path: str, recursive: bool = False) -> None:
    try:
        if recursive:
            if fs.exists(path):
                fs.rm(path, recursive=True)
        else:
            fs.rm_file(path)
    except FileNotFoundError:
        pass


def save_parts(rdd: "RDD", path: str, write_part, codec: str | None = None, suffix: str = "") -> None:
    """One ``part-NNNNN`` file per partition, written by ``write_part(file, iterator)``,
    committed as described above, then ``_SUCCESS``."""
    if not os.fspath(path):  # fsspec would take "" as the current folder
        raise ValueError("the output path is empty; name the folder to write, as in Hadoop, which cannot "
                         "make a path from an empty string")
    fs, root = fsspec.core.url_to_fs(path, **dict(rdd.ctx.config.storage_options))
    root = root.rstrip("/")
    if fs.exists(root) and (not fs.isdir(root) or fs.ls(root)):
        raise _exists_error(fs, root)
    token = secrets.token_hex(4)
    temp = f"{root}/{TEMPORARY_DIR}/{token}"

    def write(tc, it: Iterator) -> AttemptFile:
        name = f"{temp}/part-{tc.partition_index:05d}-a{tc.attempt}{suffix}"
        with fs.open(name, "wb") as raw, open_compressed(raw, codec) as f:
            write_part(f, it)
        return AttemptFile(fs, name)

    moved: list[str] = []
    claimed = False
    try:
        fs.makedirs(temp, exist_ok=True)
        written = rdd.ctx.run_job(rdd, write)
        claimed = _claim(fs, f"{root}/{COMMIT_MARK}", token)
        fs.invalidate_cache(root)
        if claimed and fs.exists(f"{root}/{SUCCESS_MARK}"):  # a winner that finished and dropped its claim
            _remove(fs, f"{root}/{COMMIT_MARK}")
            claimed = False
        if not claimed:
            raise FileExistsError(f"output path {root!r} was committed by another save while this one ran; "
                                  "its output is that save's, and this one wrote nothing there")
        for index, attempt in enumerate(written):
            final = f"{root}/part-{index:05d}{suffix}"
            fs.mv(attempt.path, final)
            moved.append(final)
        fs.touch(f"{root}/{SUCCESS_MARK}")
        _remove(fs, f"{root}/{COMMIT_MARK}")  # after _SUCCESS: a later claimer then finds _SUCCESS
    except BaseException:
        for final in moved:  # only the claiming driver writes final names, so these are all there can be
            _remove(fs, final)
        if claimed:
            _remove(fs, f"{root}/{COMMIT_MARK}")
        raise
    finally:
        # a racing save's attempt files live beside ours until it fails: remove only our own, and
        # the folder once it is empty
        _remove(fs, temp, recursive=True)
        fs.invalidate_cache(f"{root}/{TEMPORARY_DIR}")
        if fs.isdir(f"{root}/{TEMPORARY_DIR}") and not fs.ls(f"{root}/{TEMPORARY_DIR}"):
            _remove(fs, f"{root}/{TEMPORARY_DIR}", recursive=True)
