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
- once every partition has committed, the driver moves each committed attempt's file to
  ``{out}/part-NNNNN``, writes ``_SUCCESS`` and deletes ``_temporary`` (with every other
  attempt's file in it);
- a failed job deletes ``_temporary`` and any part file already moved, and writes no
  ``_SUCCESS``.
On an object store a move is a copy and a delete (S3 has no rename); the commit is still
driver-only, so no final name is ever written by two attempts.

Promise: after a successful job the output holds exactly ``part-00000`` .. one per
partition and ``_SUCCESS``; after a failed one it holds no ``_SUCCESS`` and no part file.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import fsspec

if TYPE_CHECKING:
    from dagrun.api.rdd import RDD

_CODECS = {"gzip": ("gzip", ".gz"), "org.apache.hadoop.io.compress.GzipCodec": ("gzip", ".gz"),
           "bz2": ("bz2", ".bz2"), "bzip2": ("bz2", ".bz2"),
           "org.apache.hadoop.io.compress.BZip2Codec": ("bz2", ".bz2")}


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
    data = b"\n".join(batch) + b"\n"
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
        it = iter(it)
        while batch := list(itertools.islice(it, 4096)):
            f.write(_encode_lines(batch))

    save_parts(rdd, path, write_lines, codec, suffix)


def save_parts(rdd: "RDD", path: str, write_part, codec: str | None = None, suffix: str = "") -> None:
    """One ``part-NNNNN`` file per partition, written by ``write_part(file, iterator)``,
    committed as described above, then ``_SUCCESS``."""
    fs, root = fsspec.core.url_to_fs(path, **dict(rdd.ctx.config.storage_options))
    root = root.rstrip("/")
    if fs.exists(root) and (not fs.isdir(root) or fs.ls(root)):
        raise FileExistsError(f"output path {root!r} already exists; delete it or choose another path "
                              "(dagrun never overwrites committed output)")
    temp = f"{root}/_temporary/{secrets.token_hex(4)}"

    def write(tc, it: Iterator) -> AttemptFile:
        name = f"{temp}/part-{tc.partition_index:05d}-a{tc.attempt}{suffix}"
        with fs.open(name, "wb", compression=codec) as f:
            write_part(f, it)
        return AttemptFile(fs, name)

    moved: list[str] = []
    try:
        fs.makedirs(temp, exist_ok=True)
        written = rdd.ctx.run_job(rdd, write)
        for index, attempt in enumerate(written):
            final = f"{root}/part-{index:05d}{suffix}"
            fs.mv(attempt.path, final)
            moved.append(final)
        fs.touch(f"{root}/_SUCCESS")
    except BaseException:
        for final in moved:  # only the driver writes final names, so these are all there can be
            try:
                fs.rm_file(final)
            except FileNotFoundError:
                pass
        raise
    finally:
        if fs.exists(f"{root}/_temporary"):
            fs.rm(f"{root}/_temporary", recursive=True)
