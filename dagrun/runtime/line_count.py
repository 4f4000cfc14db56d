"""Counting a text split's lines without making them: ``text_file(p).count()``.

The count equals ``len(list(read_text_split(split)))`` (``dagrun.runtime.inputs``), line
ownership and lone ``\\r`` endings included, but only ``\\n`` bytes are counted over large
blocks: with numpy over one reused buffer, else with ``bytes.replace``.
"""

from __future__ import annotations

from typing import Any

from dagrun import optional
from dagrun.runtime import inputs  # by module: tests count its reads and shrink its blocks
from dagrun.runtime.inputs import TextSplit, owned_blocks
from dagrun.runtime.lines import lone_cr_inside

_COUNT_SLICE = 256 << 10


def _newlines(block: bytes) -> int:
    # bytes.replace finds a single byte with memchr; bytes.count walks byte by byte.  On this
    # machine the difference is 2.8 vs 1.9 GB/s for 8 MiB blocks, the copy included.
    return len(block) - len(block.replace(b"\n", b""))


def count_text_split_lines(split: TextSplit, storage_options: dict[str, Any] | None = None) -> int:
    """How many lines ``read_text_split`` yields, by counting ``\\n`` bytes over large blocks.

    An uncompressed split never reads past ``end``: a line is owned if it starts before ``end``,
    and where it finishes does not change the count.
    """
    if split.compression is None and optional.numpy() is not None:
        return _count_uncompressed_lines(split, storage_options)
    return _count_lines_in_blocks(split, storage_options)


def _count_lines_in_blocks(split: TextSplit, storage_options: dict[str, Any] | None) -> int:
    lines, last = 0, b""
    with owned_blocks(split, storage_options, past_end=False) as (_, blocks, _, _):
        for block in blocks:
            if block:
                lines += _newlines(block)
                last = block
    if not last:
        return 0  # no line starts in this split
    # Each "\n" starts another line, except a "\n" that is the last byte read: the line after
    # it starts at `end` (the next split's) or at end of file (no line).  The first line needs
    # no "\n" before it.
    return lines + 1 - (last[-1:] == b"\n")


def _count_uncompressed_lines(split: TextSplit, storage_options: dict[str, Any] | None) -> int:
    """``count_text_split_lines`` for an uncompressed split, counting ``\\n`` bytes with numpy."""
    pos = split.start - 1 if split.start > 0 else 0
    newlines, last = _count_read(split, storage_options, pos)
    if last == _HAS_CR:
        return _count_lines_in_blocks(split, storage_options)
    if last is None:
        return 0
    ends_in_newline = last == 10
    if split.start > 0:
        # The first "\n" ends the line the previous split owns; if it is the only one and the
        # last byte read, no line starts in this split.
        if newlines == 0 or (newlines == 1 and ends_in_newline):
            return 0
        newlines -= 1
    return newlines + 1 - ends_in_newline


_HAS_CR = -1  # _count_read's "last byte" when it met a lone "\r"


def _count_read(split: TextSplit, storage_options: dict[str, Any] | None, pos: int) -> tuple[int, int | None]:
    """Newlines in bytes [pos, split.end) and the last byte there (``_HAS_CR`` at a lone
    ``\\r``): ``readinto`` one reused buffer
    (fresh ``bytes`` blocks cost page faults): BLOCK_SIZE requests from a remote (buffered) file,
    _COUNT_SLICE reads from a local one, whose copy then lands in cache (3.0 vs 2.6 GB/s here)."""
    np, newlines, last, cr_pending = optional.numpy(), 0, None, False
    with inputs._open(split.url, storage_options, size=split.file_size, cache_type="none") as f:
        buf = bytearray(min(inputs.BLOCK_SIZE if hasattr(f, "cache") else _COUNT_SLICE, split.end - pos))
        view, data = memoryview(buf), np.frombuffer(buf, dtype=np.uint8)
        hits = np.empty(min(len(buf), _COUNT_SLICE), dtype=bool)  # reused: a slice and its comparison stay in L2
        f.seek(pos)
        while pos < split.end:
            n = f.readinto(view[: min(len(buf), split.end - pos)])
            if not n:
                break
            if (cr_pending and buf[0] != 10) or (buf.find(b"\r", 0, n) >= 0 and lone_cr_inside(buf, n)):
                return 0, _HAS_CR  # a lone "\r" ends a line: the caller counts the careful way
            cr_pending = buf[n - 1] == 13  # a "\r\n" across two reads, or a lone "\r"
            for i in range(0, n, _COUNT_SLICE):
                out = hits[: min(n - i, _COUNT_SLICE)]
                newlines += int(np.count_nonzero(np.equal(data[i : i + len(out)], 10, out=out)))
            last, pos = buf[n - 1], pos + n
    return newlines, last
