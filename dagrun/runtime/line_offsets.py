"""Lines with their byte offsets: Hadoop's ``TextInputFormat`` records, ``(offset, line)``,
and records cut at another delimiter (``textinputformat.record.delimiter``).

State: none.  Policy: the lines are ``text_file``'s (``dagrun.runtime.inputs``: the same
splits, endings and U+FFFD for invalid UTF-8); a line's offset is where it starts in the
file, a byte-order mark counted, as Hadoop's ``LineRecordReader`` keys it.  In a compressed
file the offsets count decompressed bytes (Hadoop's count the compressed stream's position),
from the split's first line in a ``.bz2`` split other than the first.
A delimiter that can overlap itself (``\n\n`` in a run of three newlines) may be cut
differently at a split boundary than by a reader from the file's start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dagrun.runtime.file_codecs import open_decompressed
from dagrun.runtime.inputs import BLOCK_SIZE, TAIL_BLOCK_SIZE, TextSplit, _open, _read_exactly, owned_blocks
from dagrun.runtime.lines import owned_runs


def read_offset_lines(split: TextSplit, storage_options: dict[str, Any] | None = None) -> Iterator[list[tuple]]:
    """Lists of ``(offset, line)`` for the lines the split owns."""
    with owned_blocks(split, storage_options, past_end=True) as (line_off, blocks, at_start, end):
        offset = int(line_off) if line_off != float("inf") else 0
        for run, _ in owned_runs(line_off, blocks, end):
            batch = []
            for raw in bytes(run).split(b"\n"):
                text = (raw[:-1] if raw.endswith(b"\r") else raw).decode("utf-8", "replace")
                if at_start:
                    at_start = False
                    text = text.removeprefix("\ufeff")
                batch.append((offset, text))
                offset += len(raw) + 1
            yield batch


def read_delimited(split: TextSplit, delimiter: bytes,
                   storage_options: dict[str, Any] | None = None) -> Iterator[list[tuple]]:
    """Lists of ``(offset, record)`` for records ending in ``delimiter`` (Hadoop's
    ``textinputformat.record.delimiter``): a record starts at 0 or right after a delimiter, and
    the split owns the records that start in its range, as with lines.  The delimiter is
    removed and nothing else is (a ``\\r`` stays); a file ending in the delimiter has no empty
    last record.  A compressed file is read whole by its first split."""
    if not delimiter:
        raise ValueError("the record delimiter is empty; give at least one byte")
    if split.compression is not None:
        if split.start == 0:  # the whole file, decompressed (a .bz2 file's later splits then give nothing)
            with _open(split.url, storage_options, size=split.file_size, cache_type="readahead") as raw:
                with open_decompressed(raw, split.compression, split.url) as stream:
                    data = stream.read()
            yield _records(data, 0, delimiter, 0, len(data) + 1, whole=True)
        return
    size = len(delimiter)
    begin = max(0, split.start - size)  # a delimiter ending at or after ``start`` gives a record here
    with _open(split.url, storage_options, size=split.file_size, cache_type="none") as f:
        f.seek(begin)
        data = _read_exactly(f, max(0, split.end - begin))
        tail = TAIL_BLOCK_SIZE
        while _unfinished(data, begin, delimiter, split.end) and begin + len(data) < split.file_size:
            more = f.read(tail)  # the last owned record goes on past the end: read to its delimiter
            if not more:
                break
            data += more
            tail = min(2 * tail, BLOCK_SIZE)
    yield _records(data, begin, delimiter, split.start, split.end, whole=begin + len(data) >= split.file_size)


def _unfinished(data: bytes, base: int, delimiter: bytes, end: int) -> bool:
    """Whether the last record the data starts before ``end`` runs on past the data."""
    last = data.rfind(delimiter)
    if last < 0:
        return base == 0  # the file's first record, with no delimiter yet
    return base + last + len(delimiter) < end


def _records(data: bytes, base: int, delimiter: bytes, start: int, end: int, *, whole: bool) -> list[tuple]:
    # ``data`` is the file from byte ``base``; records start at 0 and after each delimiter
    size, out = len(delimiter), []
    at = 0 if base == 0 else None  # where a record starts, in ``data``
    while True:
        if at is None:
            found = data.find(delimiter)
            if found < 0:
                break
            at = found + size
        if base + at >= end or (whole and at >= len(data)):  # the next split's, or the file's end
            break
        stop = data.find(delimiter, at)
        if base + at >= start:
            text = data[at:] if stop < 0 else data[at:stop]
            out.append((base + at, text.decode("utf-8", "replace")))
        if stop < 0:
            break
        at = stop + size
    return out
