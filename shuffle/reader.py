"""Reduce-side shuffle reader: fetch, verify, decode; then combine or sort in bounded memory.

State: none between calls.  ``read_blocks`` holds the fetched (compressed) segments of
one reduce task until each is decoded; ``merge_combiners`` and ``sort_records`` hold at
most about ``memory_budget`` of records plus their spill files (see ``shuffle.spill``).

Policy:
- All non-empty segments are fetched at once with ranged GETs, at most
  ``max_concurrency`` in flight, and every checksum is verified before the first record
  is yielded.  That way one ``FetchFailed`` names every map whose block is missing or
  corrupt, and the driver reruns them together instead of one per retry.  Zero-length
  segments cost no request.  Blocks are read by the ``key`` the driver tracked, never by
  LIST (invariant 2).
- A task that computes a group of consecutive reduce partitions (``scheduler.core.coalesce``)
  fetches first, with ``fetch_segments``: adjacent segments of one object (consecutive
  partitions of one map output) come in one ranged GET, and each partition's ``read_blocks``
  then takes its segments from what was fetched.  The group's compressed bytes are held
  until its partitions are read, as one partition's are without a group.
- Only a missing object (``FileNotFoundError``) or a checksum failure
  (``ChecksumMismatch``, including a short read) is a fetch failure.  Any other error,
  such as a permission problem or a failed unpickle, is a task error and propagates.
- If blocks of several shuffles fail at once, the ``FetchFailed`` is for the shuffle of
  the first failing block in the given order (one shuffle per error); fixing it and
  retrying surfaces the next.

Promise: records come out in block order and, within a block, in written order; a bad
block never yields a record.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import itertools

from shuffle.codec import decode_batches
from shuffle.errors import ChecksumMismatch, FetchFailed
from shuffle.spill import AggregatorLike, external_combine, external_sort
from shuffle.store import BlockStore
from shuffle.writer import BlockColumn, BlockRef

__all__ = ["fetch_segments", "merge_combiners", "read_blocks", "sort_records"]


def _describe(block: BlockRef, problem: str) -> str:
    return f"{block.key} [{block.offset}, {block.offset + block.length}): {problem}"


Fetched = dict  # (object key, offset) -> the segment's bytes, or the exception its GET raised


def fetch_segments(store: BlockStore, columns: Iterable[BlockColumn | Iterable[BlockRef]],
                   max_concurrency: int = 16) -> Fetched:
    """Every non-empty segment of ``columns``, with one ranged GET per run of adjacent segments
    of one object; a failed GET is kept in place of the bytes of each segment it covered."""
    by_key: dict[str, list[tuple[int, int]]] = {}
    for column in columns:
        for b in column:
            if b.length > 0:
                by_key.setdefault(b.key, []).append((b.offset, b.length))
    runs: list[tuple[str, list[tuple[int, int]]]] = []
    for key, segments in by_key.items():
        segments.sort()
        run = [segments[0]]
        for segment in segments[1:]:
            if segment[0] == run[-1][0] + run[-1][1]:
                run.append(segment)
            elif segment != run[-1]:
                runs.append((key, run))
                run = [segment]
        runs.append((key, run))
    results = store.get_ranges([(key, run[0][0], run[-1][0] + run[-1][1]) for key, run in runs],
                               max_concurrency, return_exceptions=True)
    fetched: Fetched = {}
    for (key, run), data in zip(runs, results):
        view = data if isinstance(data, BaseException) else memoryview(data)
        start = run[0][0]
        for offset, length in run:
            fetched[(key, offset)] = view if isinstance(view, BaseException) else \
                view[offset - start:offset - start + length]
    return fetched


def read_blocks(store: BlockStore, blocks: BlockColumn | Iterable[BlockRef], max_concurrency: int = 16,
                on_batch: Callable[[int], Any] | None = None, fetched: Fetched | None = None) -> Iterator:
    """Records of ``blocks`` (a reducer's ``BlockColumn``, or ``BlockRef``s) in the given order;
    raises ``FetchFailed`` before yielding any record if a block is missing or corrupt.
    ``on_batch(n)`` is called as each batch of ``n`` records is decoded (a count per batch
    costs nothing per record).  Segments found in ``fetched`` (see :func:`fetch_segments`) are
    taken from it (and removed) instead of being fetched."""
    wanted = [b for b in blocks if b.length > 0]
    results = [fetched.pop((b.key, b.offset), None) for b in wanted] if fetched else [None] * len(wanted)
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        got = store.get_ranges([(wanted[i].key, wanted[i].offset, wanted[i].offset + wanted[i].length)
                                for i in todo], max_concurrency, return_exceptions=True)
        for i, data in zip(todo, got):
            results[i] = data
    failures: list[tuple[BlockRef, str]] = []
    decoders: list[Iterator] = []
    for block, data in zip(wanted, results):
        if isinstance(data, FileNotFoundError):
            failures.append((block, "object missing"))
        elif isinstance(data, BaseException):
            raise data
        elif len(data) != block.length:
            failures.append((block, f"short read: {len(data)} of {block.length} bytes"))
        else:
            try:
                decoders.append(decode_batches(data, block.checksum))
            except ChecksumMismatch as e:
                failures.append((block, str(e)))
    del results
    if failures:
        shuffle_id = failures[0][0].shuffle_id
        mine = [(b, why) for b, why in failures if b.shuffle_id == shuffle_id]
        reason = f"{len(mine)} of {len(wanted)} blocks unreadable: " + "; ".join(
            _describe(b, why) for b, why in mine[:5]) + (" ..." if len(mine) > 5 else "")
        raise FetchFailed(shuffle_id, tuple(b.map_id for b, _ in mine), reason)
    return BlockRecords(_batches(decoders, wanted, on_batch))


class BlockRecords:
    """The records ``read_blocks`` returns: an iterator over them, whose frames a consumer that
    works a frame at a time takes instead, before reading any record, with ``take_batches``
    (``shuffle.spill.external_combine`` merges a pair frame's columns with no tuple per record)."""

    __slots__ = ("_batches", "_records")

    def __init__(self, batches: Iterator) -> None:
        self._batches = batches
        self._records = itertools.chain.from_iterable(batches)

    def __iter__(self) -> Iterator:
        self._batches = None  # a record may be read now: the batches are no longer whole
        return self._records  # a for loop then runs in C, with no Python call per record

    def __next__(self) -> Any:
        self._batches = None
        return next(self._records)

    def take_batches(self) -> Iterator | None:
        """The frames as batches (lists, or ``shuffle.codec.PairColumns``); None once a record
        was asked for (a user's function may read one and hand on the rest)."""
        batches, self._batches = self._batches, None
        if batches is not None:
            self._records = iter(())
        return batches


def _batches(decoders: list[Iterator], blocks: list[BlockRef],
             on_batch: Callable[[int], Any] | None) -> Iterator:
    # Python runs here once per batch, not per record; each decoder (and the bytes it
    # holds) is dropped as soon as it is used up.
    decoders.reverse()
    blocks = blocks[::-1]
    while decoders:
        decoder = decoders.pop()
        block = blocks.pop()
        try:
            for batch in decoder:
                if on_batch is not None:
                    on_batch(len(batch))
                yield batch
        except ChecksumMismatch as e:  # bytes passed the CRC but did not parse
            raise FetchFailed(block.shuffle_id, (block.map_id,), _describe(block, str(e))) from e


def merge_combiners(records: Iterable[tuple], aggregator: AggregatorLike, *, memory_budget: int,
                    scratch_dir: str, combined: bool) -> Iterator[tuple]:
    """(key, combiner) per distinct key; ``combined`` says whether values are combiners."""
    return external_combine(records, aggregator, combined=combined, memory_budget=memory_budget,
                            scratch_dir=scratch_dir)


def sort_records(records: Iterable, *, key: Callable[[Any], Any] | None, reverse: bool,
                 memory_budget: int, scratch_dir: str) -> Iterator:
    """``sorted(records, key=key, reverse=reverse)`` as an iterator, in bounded memory."""
    return external_sort(records, key=key, reverse=reverse, memory_budget=memory_budget,
                         scratch_dir=scratch_dir)
