"""Input splits for ``text_file`` and ``binary_records``: byte ranges of files, read through fsspec.

State: none.  A split is a frozen value (a URL and a byte range) that ships with a task; the
executor opens the file when it reads the split, so no handle lives between calls.

Policy (Hadoop's ``FileInputFormat`` and ``LineRecordReader``):

* Planning.  A path is a file, a glob (with Hadoop's ``{a,b}`` alternatives:
  ``dagrun.runtime.globs``), a directory (its regular files, sorted, non-recursive,
  skipping names that start with ``_`` or ``.`` such as ``_SUCCESS``), or a list of these.  A
  visible folder inside a directory is an error, as in Spark's ``HadoopRDD`` (whose reader
  does not recurse), rather than data silently left out; whole-file inputs skip it, as
  Spark's ``wholeTextFiles`` and ``binaryFiles`` do.  The
  split size is Hadoop's: ``max(1, min(block, total_bytes // min_partitions))``, where ``block``
  is the ``split_size`` setting, or when that is 0 the file's block size as Hadoop reports it:
  32 MiB for a local file (``fs.local.block.size``, so PySpark's partitions), 128 MiB in any
  other store (HDFS's block size; Hadoop's S3 connector reports 32 MiB, but a Lambda task
  pays its start and its requests, so dagrun reads object stores in larger pieces).  A file is
  cut into pieces of that size, but the last piece may be up to 10% larger (Hadoop's SPLIT_SLOP)
  so that no tiny tail split is made.  Text files follow Hadoop exactly; so ``text_file`` of a
  small file gives PySpark's partitions, empty ones included (a 5-byte file and 2 partitions
  asked for give 3 splits).  An empty file gives no split, as Spark drops empty splits; binary
  records keep its one empty split, and round the split size down to whole records.
  A file named explicitly is read whatever its name; an existing directory with no visible
  files gives no splits, while a missing path, a glob matching nothing or an unfinished save
  (``output_marks``) is an error.
  A ``.gz``, ``.deflate`` or ``.zst`` file cannot be split: it is one split, read as a
  decompressed stream (``dagrun.runtime.file_codecs``).  A ``.bz2``
  file is planned like plain text, and a split reads the compressed blocks that start in its
  range (Hadoop's ``BZip2Codec``; ``dagrun.runtime.bzip2_split``).
* Line ownership (Hadoop's ``LineRecordReader``).  The byte range ``[s, e)`` owns the lines
  that start in ``(s, e]``, and the first range also the line at 0: a reader always finishes
  the line it is in at its end, and every range but the first skips the line it starts in.
  A ``TextSplit`` holds that rule as the range of line starts ``[s + 1, e + 1)`` (``[0, e + 1)``
  for the first), and owns exactly the lines that *start* in it; a line starts at offset 0 or
  right after a ``\\n``.  A split other than the first therefore discards through the first
  ``\\n`` at or after ``start - 1`` (none before ``end``: it owns nothing), and reads past
  ``end`` only to the next ``\\n``.
* Lines end with ``\\n``, ``\\r\\n`` or a lone ``\\r``, as in Hadoop's reader, and the ending is
  stripped.  A final line without an ending is still a line, and a trailing ending makes no
  empty last line.  The blocks read have each lone ``\\r`` turned into ``\\n`` first
  (``dagrun.runtime.lines.lone_crs_as_newlines``), which moves no offset, so the rest of the reader knows only
  ``\\n`` and ``\\r\\n``.  A UTF-8 byte-order mark at offset 0 is dropped, as
  Hadoop does.  Lines are cut as bytes and decoded whole, so a character that straddles a
  split boundary decodes correctly.  Invalid UTF-8 becomes U+FFFD, as with Spark's
  ``Text.toString``.
* Binary records.  The split size is rounded down to a multiple of ``record_length``, so every
  split holds whole records.  A file whose size is not a multiple is refused when planning.

Promise: for any file and any split size, the lines of all its splits, concatenated in split
order, are the file's lines; ``count_text_split_lines`` equals the number of lines
``read_text_split`` yields, without decoding anything.

I/O: reads are large blocks (``BLOCK_SIZE``) with fsspec's read cache off, so on an object store
each read is one ranged GET of exactly that range.  The read past ``end`` starts small
(``TAIL_BLOCK_SIZE``) and doubles, because the last line is usually short.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import chain
from typing import Any, BinaryIO

from fsspec.core import url_to_fs

from shuffle.layout import redact
from dagrun.runtime import bzip2_split
from dagrun.runtime.file_codecs import compression_of, open_decompressed
from dagrun.runtime.globs import expand_braces, is_glob
from dagrun.runtime.lines import line_lists, lone_crs_as_newlines, owned_runs
from dagrun.runtime.output_marks import check_complete
from dagrun.runtime.prefix_sort import split_records

BLOCK_SIZE = 8 << 20
TAIL_BLOCK_SIZE = 64 << 10
SPLIT_SLOP = 1.1  # Hadoop FileInputFormat: the last split may be this much larger than the rest

PathArg = str | os.PathLike[str] | list[str | os.PathLike[str]]


@dataclass(frozen=True)
class TextSplit:
    """Lines starting in ``[start, end)`` of ``url``; all of a gzip, deflate or zstd file; the
    lines of the bzip2 blocks that start in bytes ``[start, end)`` (``dagrun.runtime.bzip2_split``)."""

    url: str
    start: int
    end: int
    file_size: int
    compression: str | None


@dataclass(frozen=True)
class BinarySplit:
    """Fixed-length records in ``[start, end)`` of ``url``; both ends are record boundaries."""

    url: str
    start: int
    end: int


@dataclass(frozen=True)
class _File:
    url: str
    size: int


# ---------------------------------------------------------------------------------- planning

LOCAL_BLOCK_SIZE = 32 << 20  # Hadoop's fs.local.block.size
STORE_BLOCK_SIZE = 128 << 20  # HDFS's dfs.blocksize, and dagrun's piece of an object store


def plan_text_splits(
    path: PathArg, *, split_size: int, min_partitions: int, storage_options: dict[str, Any] | None = None
) -> list[TextSplit]:
    """Cut every input file into Hadoop's splits; a gzip, deflate or zstd file is one split.

    >>> [(s.start, s.end) for s in plan_text_splits("a.txt", split_size=1 << 27, min_partitions=2)]  # doctest: +SKIP
    [(0, 3), (3, 5), (5, 6)]
    """
    files = _list_files(path, storage_options)
    goal = _goal_size(files, split_size, min_partitions)
    splits: list[TextSplit] = []
    for f in files:
        if f.size == 0:
            continue
        compression = compression_of(f.url)
        if compression not in (None, "bz2"):  # gzip, deflate, zstd: no stream can start mid-file
            splits.append(TextSplit(f.url, 0, f.size, f.size, compression))
            continue
        size = _split_size(f, split_size, goal)
        if compression == "bz2":  # byte ranges of compressed blocks (dagrun.runtime.bzip2_split)
            splits.extend(TextSplit(f.url, s, e, f.size, compression) for s, e in _cut(f.size, size))
        else:
            splits.extend(TextSplit(f.url, s + 1 if s else 0, e + 1, f.size, None) for s, e in _cut(f.size, size))
    return splits


def plan_binary_splits(
    path: PathArg,
    *,
    record_length: int,
    split_size: int,
    min_partitions: int,
    storage_options: dict[str, Any] | None = None,
) -> list[BinarySplit]:
    """Cut every input file into splits that hold whole records of ``record_length`` bytes."""
    _check_record_length(record_length)
    files = _list_files(path, storage_options)
    for f in files:
        if f.size % record_length:
            raise ValueError(
                f"{f.url} is {f.size} bytes, not a multiple of record_length={record_length} "
                f"({f.size % record_length} bytes left over); check the record length, or that the "
                "file is complete and holds only fixed-length records"
            )
    goal = _goal_size(files, split_size, min_partitions)
    splits = []
    for f in files:
        size = _split_size(f, split_size, goal)
        size = max(record_length, size // record_length * record_length)
        splits.extend(BinarySplit(f.url, s, e) for s, e in _cut(f.size, size))
    return splits


def block_size(url: str) -> int:
    """The block size Hadoop would report for ``url``: what a split is at most when the
    ``split_size`` setting is 0 (its default).

    >>> block_size("file:///data/logs.txt") >> 20, block_size("s3://bucket/logs.txt") >> 20
    (32, 128)
    """
    return LOCAL_BLOCK_SIZE if url.startswith("file:") else STORE_BLOCK_SIZE


def _goal_size(files: list[_File], split_size: int, min_partitions: int) -> int:
    if split_size < 0:
        raise ValueError(f"split_size must be a positive number of bytes (or 0: the file system's "
                         f"block size), got {split_size}")
    return sum(f.size for f in files) // max(1, min_partitions)  # Hadoop's goalSize


def _split_size(f: _File, split_size: int, goal: int) -> int:
    # Hadoop's computeSplitSize, with the block size per file as Hadoop takes it
    return max(1, min(split_size or block_size(f.url), goal))


def _cut(length: int, split_size: int) -> Iterator[tuple[int, int]]:
    start = 0
    while (length - start) / split_size > SPLIT_SLOP:
        yield start, start + split_size
        start += split_size
    if length > start or length == 0:
        yield start, length


def _list_files(path: PathArg, storage_options: dict[str, Any] | None, *, skip_folders: bool = False) -> list[_File]:
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise FileNotFoundError("no input path given: pass a file, a directory, a glob or a list of them")
    if not all(os.fspath(p) for p in paths):  # fsspec would read "" as the current folder
        raise ValueError(f"an input path is empty (in {path!r}); name a file, a folder or a glob, as in "
                         "Hadoop, which cannot make a path from an empty string")
    files: list[_File] = []
    for p in paths:
        files.extend(_expand(os.fspath(p), storage_options or {}, skip_folders))
    return files


def _expand(path: str, storage_options: dict[str, Any], skip_folders: bool) -> list[_File]:
    try:
        fs, root = url_to_fs(path, **storage_options)
    except ValueError as e:
        if "Protocol not known" not in str(e):
            raise
        raise ValueError(f"input path {redact(path)!r}: {e}; name a local path or a URL of a protocol fsspec "
                         "knows (s3://, file://, memory://, ...)") from None
    if is_glob(root):
        # Hadoop filters hidden names out of glob results too.
        matches = {name: info for pattern in expand_braces(root)  # {a,b}: Hadoop's, not fsspec's
                   for name, info in fs.glob(pattern, detail=True).items()}
        infos = [matches[name] for name in sorted(matches) if not _hidden(name)]
        if not infos:
            raise FileNotFoundError(
                f"input glob {redact(path)!r} matched no files; check the pattern, that the directory it "
                "names exists, and that matching names do not start with '_' or '.' (those are skipped)"
            )
    else:
        try:
            infos = [fs.info(root)]
        except FileNotFoundError:
            raise FileNotFoundError(f"input path {redact(path)!r} does not exist; {_what_to_check(fs)}") from None
    found: list[dict[str, Any]] = []
    for info in infos:
        if info["type"] == "directory":
            children = fs.ls(info["name"], detail=True)
            check_complete(path, {c["name"].rstrip("/").rsplit("/", 1)[-1] for c in children})
            folders = [c["name"] for c in children if c["type"] == "directory" and not _hidden(c["name"])]
            if folders and not skip_folders:
                raise IsADirectoryError(
                    f"input folder {redact(path)!r} holds the folder {redact(fs.unstrip_protocol(folders[0]))!r}, "
                    "and folders are not read recursively (as in Spark); name the inner folder too, or give "
                    "a glob that reaches its files, such as 'folder/*/*'"
                )
            found.extend(
                sorted(
                    (c for c in children if c["type"] == "file" and not _hidden(c["name"])),
                    key=lambda c: c["name"],
                )
            )
        elif info["type"] == "file":
            found.append(info)
    return [_File(fs.unstrip_protocol(info["name"]), int(info["size"])) for info in found]


def _what_to_check(fs: Any) -> str:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
    if "file" in protocols:
        return f"check its spelling and that it is absolute or relative to {os.getcwd()!r}"
    return "check its spelling, the bucket or container name, and the credentials and endpoint in storage_options"


def _hidden(name: str) -> bool:
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return base.startswith(("_", "."))


def _check_record_length(record_length: int) -> None:
    if record_length < 1:
        raise ValueError(f"record_length must be a positive number of bytes, got {record_length}")


# ----------------------------------------------------------------------------------- reading


def read_text_split(split: TextSplit, storage_options: dict[str, Any] | None = None) -> Iterator[str]:
    """The lines this split owns, endings stripped, decoded as UTF-8 (lazily, like a generator)."""
    # chain runs no Python code per line, where generator layers cost a frame resume each
    return chain.from_iterable(read_text_batches(split, storage_options))


def read_text_batches(split: TextSplit, storage_options: dict[str, Any] | None = None) -> Iterator[list[str]]:
    """``read_text_split``'s lines as lists (see ``dagrun.runtime.lines``)."""
    with owned_blocks(split, storage_options, past_end=True) as (line_off, blocks, at_start, end):
        yield from line_lists(owned_runs(line_off, blocks, end), strip_bom=at_start)


def read_binary_split(
    split: BinarySplit, record_length: int, storage_options: dict[str, Any] | None = None
) -> Iterator[bytes]:
    """The records of this split, each ``record_length`` bytes (cut a chunk at a time, in C)."""
    chunks = read_binary_chunks(split, record_length, storage_options)
    return chain.from_iterable(split_records(data, record_length) for data in chunks)


def read_binary_chunks(
    split: BinarySplit, record_length: int, storage_options: dict[str, Any] | None = None
) -> Iterator[bytes]:
    """The bytes of this split in large chunks, each a whole number of records."""
    _check_record_length(record_length)
    if split.start % record_length or split.end % record_length:
        raise ValueError(f"{split} does not lie on record boundaries of record_length={record_length}")
    if split.start >= split.end:
        return
    chunk = max(record_length, BLOCK_SIZE // record_length * record_length)
    # size=end: nothing past the split is read, and object stores need no HEAD to learn the size.
    with _open(split.url, storage_options, size=split.end, cache_type="none") as f:
        f.seek(split.start)
        pos = split.start
        while pos < split.end:
            want = min(chunk, split.end - pos)
            data = _read_exactly(f, want)
            if len(data) < want:
                raise ValueError(
                    f"{split.url} ended at byte {pos + len(data)}, inside a split planned to end at "
                    f"{split.end}; the file changed after the job was planned"
                )
            yield data
            pos += want


def _open(url: str, storage_options: dict[str, Any] | None, *, size: int | None, cache_type: str) -> BinaryIO:
    fs, path = url_to_fs(url, **(storage_options or {}))
    try:
        # size= saves object stores a HEAD request; local and memory files ignore both keywords.
        f = fs.open(path, "rb", block_size=BLOCK_SIZE, cache_type=cache_type, size=size)
    except TypeError:  # an implementation whose _open takes no extra keywords
        return fs.open(path, "rb")
    if size is not None and getattr(f, "_details", {}) is None:
        # s3fs (2025+) reads the file's ``details`` on every ranged fetch, which costs a HEAD
        # when they are unknown; the planner already knows all the fetch needs.
        f.details = {"name": path, "size": size, "type": "file"}
    _count_fetches(f)
    return f


# Set by ``dagrun.runtime.task.run_task`` for the task it runs: called with the bytes of each ranged
# GET an input file makes, so the task's input reads are billed with its other requests.
input_get_hook: ContextVar[Callable[[int], None] | None] = ContextVar("input_get_hook", default=None)


def _count_fetches(f: BinaryIO) -> None:
    """Count every remote fetch of ``f`` (an fsspec buffered file: one GET per fetch).
    Local and in-memory files make no requests and are left alone."""
    hook, cache = input_get_hook.get(), getattr(f, "cache", None)
    fetch = getattr(cache, "fetcher", None)
    if hook is None or fetch is None:
        return

    def counted(start: int, end: int) -> bytes:
        data = fetch(start, end)
        hook(len(data))
        return data

    cache.fetcher = counted


@contextmanager
def owned_blocks(split: TextSplit, storage_options: dict[str, Any] | None, *,
                 past_end: bool) -> Iterator[tuple[float, Iterator[bytes], bool, float]]:
    """``(line_off, blocks, at_start, end)``: the blocks from the split's first owned line on,
    which starts at ``line_off`` (``inf``: none does), whether that is the file's first line,
    and where the last owned line may start at the latest (``inf``: every line the blocks hold).

    Uncompressed blocks are cut at ``end`` unless ``past_end``; a compressed split's blocks go
    as far as its lines do either way.
    """
    if split.compression == "bz2":
        with _open(split.url, storage_options, size=split.file_size, cache_type="none") as f:
            chunks = _blocks(f, split.start + 1 if split.start else 0, split.end, past_end=True)
            at_start, text = bzip2_split.owned_text(chunks, split.start, split.end, split.url)
            yield *_first_line(text, 0 if at_start else 1, math.inf), at_start, math.inf
        return
    with _text_blocks(split, storage_options, past_end=past_end) as blocks:
        end = split.end if split.compression is None else math.inf
        yield *_first_line(blocks, split.start, end), split.start == 0, end


@contextmanager
def _text_blocks(split: TextSplit, storage_options: dict[str, Any] | None, *, past_end: bool) -> Iterator[Iterator[bytes]]:
    """The split's bytes as blocks: see ``_blocks``; a compressed file decompressed, whole."""
    if split.compression is None:
        with _open(split.url, storage_options, size=split.file_size, cache_type="none") as f:
            yield lone_crs_as_newlines(_blocks(f, split.start, split.end, past_end=past_end))
        return
    # The decompressors read in small pieces, so fsspec's read-ahead cache batches them into
    # BLOCK_SIZE requests.
    with _open(split.url, storage_options, size=split.file_size, cache_type="readahead") as raw:
        with open_decompressed(raw, split.compression, split.url) as stream:
            yield lone_crs_as_newlines(iter(lambda: stream.read(BLOCK_SIZE), b""))


def _blocks(f: BinaryIO, start: int, end: int, *, past_end: bool) -> Iterator[bytes]:
    """Bytes from ``start - 1`` (or 0): large blocks up to ``end``, then, if ``past_end``, blocks
    that start at ``TAIL_BLOCK_SIZE`` and double, until end of file."""
    pos = start - 1 if start > 0 else 0
    f.seek(pos)
    tail = TAIL_BLOCK_SIZE
    while True:
        if pos < end:
            n = min(BLOCK_SIZE, end - pos)
        elif past_end:
            n, tail = tail, min(2 * tail, BLOCK_SIZE)
        else:
            return
        block = f.read(n)
        if not block:
            return
        pos += len(block)
        yield block


def _first_line(blocks: Iterator[bytes], start: int, end: float) -> tuple[float, Iterator[bytes]]:
    """Where this split's first line starts, and the blocks from there on.

    The first split's first line starts at 0.  Any other split's blocks start at ``start - 1``,
    and everything through the first ``\\n`` belongs to a line the previous split owns; with no
    ``\\n`` before ``end``, no line starts here (``inf``) and nothing past ``end`` is read.
    """
    if start == 0:
        return 0, blocks
    consumed, budget = 0, end - (start - 1)  # blocks are cut at ``end``, so this is a whole number of them
    for block in blocks:
        nl = block.find(b"\n")
        if nl >= 0:
            return start + consumed + nl, chain((block[nl + 1 :],), blocks)
        if (consumed := consumed + len(block)) >= budget:
            break
    return math.inf, iter(())


def _read_exactly(f: BinaryIO, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        part = f.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)
