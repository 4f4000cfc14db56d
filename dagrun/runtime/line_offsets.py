"""Lines with their byte offsets: Hadoop's ``TextInputFormat`` records, ``(offset, line)``.

State: none.  Policy: the lines are ``text_file``'s (``dagrun.runtime.inputs``: the same
splits, endings and U+FFFD for invalid UTF-8); a line's offset is where it starts in the
file, a byte-order mark counted, as Hadoop's ``LineRecordReader`` keys it.  In a compressed
file the offsets count decompressed bytes (Hadoop's count the compressed stream's position).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dagrun.runtime.inputs import TextSplit, owned_blocks
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
