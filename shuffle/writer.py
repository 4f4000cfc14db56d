"""Map-side shuffle writer: one immutable object per map attempt.

State: for the duration of one call, a :class:`~shuffle.codec.RecordEncoder` per reduce
partition (pending records plus finished compressed frames) and, with an aggregator,
one bounded :class:`~shuffle.spill.CombineMap`.

Policy:
- Records ``(key, value)`` go to ``partition_of(key)``; each partition's records are
  encoded in arrival order, so order within a partition is preserved (no aggregator).
- With an :class:`Aggregator`, values are combined per key on the map side.  When the
  combine dict's estimated size passes ``memory_budget`` (sampled ``sys.getsizeof``; see
  ``shuffle.spill``) its (key, combiner) pairs are encoded into their partitions'
  segments and a fresh dict starts.  A key can then appear more than once in a segment;
  reducers merge combiners anyway (``merge_combiners(..., combined=True)``).
- Without an aggregator, the records waiting in encoders are estimated from their
  pickled size (x4 for live Python objects) every 4096 records; past the budget all
  partitions are encoded early.  The compressed object itself is held in memory until
  its single PUT.
- Segments are concatenated in partition order into one object at
  ``layout.block_key(...)`` (invariant 2), written with one atomic ``put`` (invariant 3).
  An attempt with no records still writes its (empty) object, so "attempt committed"
  always means "object exists".

Promise: the returned :class:`MapStatus` locates, counts and checksums every partition's
segment, so a reducer needs no index object and no LIST.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from shuffle.codec import RecordEncoder, default_codec_for
from shuffle.layout import block_key
from shuffle.spill import CombineMap, chunked
from shuffle.store import BlockStore

__all__ = ["Aggregator", "BlockRef", "MapStatus", "Segment", "write_map_output"]

_CHECK_EVERY = 4096
_LIVE_OBJECT_FACTOR = 4  # Python objects take ~2-5x their pickled size
_SPILL_SLICE = 1 << 16  # combiners partitioned per call: bounds the extra lists


@dataclass(frozen=True)
class Segment:
    """One reduce partition's bytes inside a map output object."""

    offset: int
    length: int
    count: int
    checksum: int


@dataclass(frozen=True)
class BlockRef:
    """Everything a reducer needs to fetch and verify one map's segment for it."""

    shuffle_id: int
    map_id: int
    key: str
    offset: int
    length: int
    count: int
    checksum: int


@dataclass(frozen=True)
class MapStatus:
    """What a map attempt wrote: its object key and one segment per reduce partition."""

    shuffle_id: int
    map_id: int
    attempt: int
    key: str
    segments: tuple[Segment, ...]

    def block(self, reduce_id: int) -> BlockRef:
        s = self.segments[reduce_id]
        return BlockRef(self.shuffle_id, self.map_id, self.key, s.offset, s.length, s.count, s.checksum)

    @property
    def bytes_written(self) -> int:
        return sum(s.length for s in self.segments)

    @property
    def records_written(self) -> int:
        return sum(s.count for s in self.segments)


@dataclass(frozen=True)
class Aggregator:
    """PySpark's combineByKey trio: value -> combiner, (combiner, value), (combiner, combiner)."""

    create_combiner: Callable[[Any], Any]
    merge_value: Callable[[Any, Any], Any]
    merge_combiners: Callable[[Any, Any], Any]


def _bad_partition(p: Any, key: Any, n: int) -> ValueError:
    return ValueError(f"partition_of({key!r}) returned {p!r}; it must be an int in [0, {n})")


def write_map_output(store: BlockStore, records: Iterable[tuple], *, job_id: str, shuffle_id: int,
                     map_id: int, attempt: int, num_partitions: int,
                     partition_of: Callable[[Any], int], aggregator: Aggregator | None = None,
                     codec: str | None = None, prefixes: int = 16,
                     memory_budget: int = 256 << 20) -> MapStatus:
    """Partition, (optionally) combine, encode and store one map attempt's output."""
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
    key = block_key(job_id, shuffle_id, map_id, attempt, prefixes)
    codec = codec or default_codec_for(store.protocol)
    encoders = [RecordEncoder(codec) for _ in range(num_partitions)]
    chunks: list[list[bytes]] = [[] for _ in range(num_partitions)]
    n = num_partitions

    def encode_all() -> None:
        for enc, out in zip(encoders, chunks):
            out.extend(enc.take_chunks())

    many = getattr(partition_of, "partition_many", None)

    def partition(keys: list, records: list) -> None:
        # One call for the chunk's partition numbers (the partitioner's ``partition_many``
        # when it has one), then one list per partition and one ``extend`` per encoder.
        if not keys:
            return
        parts = many(keys) if many is not None else [partition_of(k) for k in keys]
        if min(parts) < 0 or max(parts) >= n:
            bad = next(i for i, p in enumerate(parts) if not 0 <= p < n)
            raise _bad_partition(parts[bad], keys[bad], n)
        if n == 1:
            encoders[0].extend(records)
            return
        buckets: list[list] = [[] for _ in range(n)]
        appends = [b.append for b in buckets]
        for p, record in zip(parts, records):
            appends[p](record)
        for enc, bucket in zip(encoders, buckets):
            if bucket:
                enc.extend(bucket)

    if aggregator is None:
        for chunk in chunked(records, _CHECK_EVERY):
            partition([record[0] for record in chunk], chunk)
            pending = sum(e.pending_bytes() for e in encoders) * _LIVE_OBJECT_FACTOR
            if pending > memory_budget:
                encode_all()
    else:
        cmap = CombineMap(aggregator, combined=False, memory_budget=memory_budget)

        def spill() -> None:
            items = list(cmap.drain().items())
            for start in range(0, len(items), _SPILL_SLICE):
                part = items[start:start + _SPILL_SLICE]
                partition([k for k, _ in part], part)
            encode_all()

        for chunk in chunked(records, 2048):
            if cmap.add_chunk(chunk):
                spill()
        spill()

    encode_all()
    segments, offset = [], 0
    for enc, out in zip(encoders, chunks):
        length = sum(map(len, out))
        segments.append(Segment(offset, length, enc.count, enc.checksum))
        offset += length
    store.put(key, b"".join(itertools.chain.from_iterable(chunks)))
    return MapStatus(shuffle_id, map_id, attempt, key, tuple(segments))
