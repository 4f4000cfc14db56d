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
  segments, as a column of keys and one of combiners (``RecordEncoder.extend_pairs``),
  and a fresh dict starts.  A key can then appear more than once in a segment;
  reducers merge combiners anyway (``merge_combiners(..., combined=True)``).
- The combine is adaptive (a partial aggregation that can give up): the first
  ``_PROBE`` (131,072) records are combined, and when at least 80% of those in its second
  half were fresh keys, the dict is written out and every later record goes straight to its
  partition as ``(key, create_combiner(value))``.  Why 80%: one 128 MiB map of uservisits
  (920k records, CPU seconds of the map plus the merge of its output on the reduce side):
  at 35% distinct keys (58% fresh in the probe's second half) 2.32 combining against 2.21
  not, a tie that the 2.7x smaller shuffle settles for combining; at 63% distinct (90%
  fresh) 1.33 against 1.02; all distinct 1.45 against 0.87.  The map
  side's dict outgrows the CPU cache, so at high cardinality each record costs about a cache
  miss for little reduction.  The probe reads the start of the task only: keys that repeat
  only much later are then written once per occurrence, which is still correct.
- Without an aggregator, the records waiting in encoders are estimated from their
  pickled size (x4 for live Python objects) every 4096 records; past the budget all
  partitions are encoded early.  The compressed object itself is held in memory until
  its single PUT.
- Segments are concatenated in partition order into one object at
  ``layout.block_key(...)`` (invariant 2), written with one atomic ``put`` (invariant 3).
  An attempt with no records still writes its (empty) object, so "attempt committed"
  always means "object exists".

Promise: the returned :class:`MapStatus` locates, counts and checksums every partition's
segment, so a reducer needs no index object and no LIST.  A reducer is handed its
:class:`BlockColumn`: one reduce partition's non-empty segments across all maps.
"""

from __future__ import annotations

import itertools
import operator
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from shuffle.codec import RecordEncoder, default_codec_for
from shuffle.layout import block_key
from shuffle.spill import CombineMap, chunked
from shuffle.store import BlockStore

__all__ = ["Aggregator", "BlockColumn", "BlockRef", "MapStatus", "Segment", "write_map_output"]

_CHECK_EVERY = 4096  # records partitioned per call: each call makes a list per partition
_COMBINE_CHUNK = 256  # fewest records merged per call into the combine's dict
_first = operator.itemgetter(0)  # a record's key, with no Python frame per record
_LIVE_OBJECT_FACTOR = 4  # Python objects take ~2-5x their pickled size
_SPILL_SLICE = 1 << 16  # combiners partitioned per call: bounds the extra lists
_PROBE = 1 << 17  # records combined before deciding whether combining pays
_FRESH_BYPASS = 0.8  # share of fresh keys in the probe's second half above which it does not


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


def _numbers(code: str, values: Iterable[int] = ()) -> array:
    return array(code, values)


@dataclass(frozen=True)
class MapStatus:
    """What a map attempt wrote: its object key and, per reduce partition, where its segment
    lies (offset, length), how many records it holds and its CRC32, as four arrays.

    Arrays, not one object per segment: the driver holds M of these per shuffle, so a
    shuffle costs O(M x R) machine numbers, never O(M x R) Python objects.
    """

    shuffle_id: int
    map_id: int
    attempt: int
    key: str
    offsets: array = field(repr=False)
    lengths: array = field(repr=False)
    counts: array = field(repr=False)
    checksums: array = field(repr=False)

    @classmethod
    def of_segments(cls, shuffle_id: int, map_id: int, attempt: int, key: str,
                    segments: Iterable[Segment]) -> "MapStatus":
        segments = list(segments)
        return cls(shuffle_id, map_id, attempt, key, _numbers("Q", (s.offset for s in segments)),
                   _numbers("Q", (s.length for s in segments)), _numbers("Q", (s.count for s in segments)),
                   _numbers("I", (s.checksum for s in segments)))

    @property
    def num_partitions(self) -> int:
        return len(self.lengths)

    @property
    def segments(self) -> tuple[Segment, ...]:
        return tuple(map(Segment, self.offsets, self.lengths, self.counts, self.checksums))

    def block(self, reduce_id: int) -> BlockRef:
        r = reduce_id
        return BlockRef(self.shuffle_id, self.map_id, self.key, self.offsets[r], self.lengths[r],
                        self.counts[r], self.checksums[r])

    @property
    def bytes_written(self) -> int:
        return sum(self.lengths)

    @property
    def records_written(self) -> int:
        return sum(self.counts)


class BlockColumn:
    """One reduce partition's blocks of one shuffle: its column of the shuffle's map statuses.

    Only the non-empty segments, in map order, as parallel arrays plus their object keys:
    what travels to a reducer is O(M) numbers.  Iterating gives ``BlockRef``s, so a reader
    treats it like a list of them.
    """

    __slots__ = ("shuffle_id", "reduce_id", "num_maps", "map_ids", "keys", "offsets", "lengths", "counts",
                 "checksums")

    def __init__(self, shuffle_id: int, reduce_id: int, statuses: Sequence[MapStatus]):
        self.shuffle_id, self.reduce_id, self.num_maps = shuffle_id, reduce_id, len(statuses)
        r = reduce_id
        chosen = [s for s in statuses if s.lengths[r]]
        self.map_ids = _numbers("Q", (s.map_id for s in chosen))
        self.keys = [s.key for s in chosen]
        self.offsets = _numbers("Q", (s.offsets[r] for s in chosen))
        self.lengths = _numbers("Q", (s.lengths[r] for s in chosen))
        self.counts = _numbers("Q", (s.counts[r] for s in chosen))
        self.checksums = _numbers("I", (s.checksums[r] for s in chosen))

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[BlockRef]:
        sid = self.shuffle_id
        return map(lambda m, k, o, n, c, x: BlockRef(sid, m, k, o, n, c, x), self.map_ids, self.keys,
                   self.offsets, self.lengths, self.counts, self.checksums)

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(self.__slots__, state):
            setattr(self, name, value)

    def __repr__(self) -> str:
        return (f"BlockColumn(shuffle {self.shuffle_id}, reduce {self.reduce_id}: {len(self)} of "
                f"{self.num_maps} maps non-empty)")


@dataclass(frozen=True)
class Aggregator:
    """PySpark's combineByKey trio: value -> combiner, (combiner, value), (combiner, combiner)."""

    create_combiner: Callable[[Any], Any]
    merge_value: Callable[[Any, Any], Any]
    merge_combiners: Callable[[Any, Any], Any]


def _bad_partition(p: Any, key: Any, n: int) -> ValueError:
    return ValueError(f"partition_of({key!r}) returned {p!r}; it must be an int in [0, {n})")


_INT = {int}


def _as_ints(parts: list, keys: list, n: int) -> list[int]:
    # a partition number of another integral type (numpy's, bool) is taken as the int it is
    ints = []
    for i, p in enumerate(parts):
        try:
            ints.append(operator.index(p))
        except TypeError:
            raise _bad_partition(p, keys[i], n) from None
    return ints


def _regrouped(lists: Iterable[list], size: int) -> Iterator[list]:
    """The records of ``lists`` in lists of at least ``size`` (the last may be shorter)."""
    buf: list = []
    for part in lists:
        if not buf and len(part) >= size:
            yield part if type(part) is list else list(part)
            continue
        buf += part
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def _combine_probe(cmap: CombineMap, batches: Iterator[list], spill: Callable[[], None]) -> bool:
    """Combine the first ``_PROBE`` records; True when combining the rest is worth it.

    Worth it unless at least ``_FRESH_BYPASS`` of the probe's second half were keys not seen
    before (a spill in between makes keys fresh again, rightly: they are written twice).
    """
    seen = fresh = probed = 0  # probed: the records of chunks that began in the second half
    for chunk in batches:
        before = len(cmap)
        over = cmap.add_chunk(chunk)
        if seen >= _PROBE // 2:
            fresh += len(cmap) - before
            probed += len(chunk)
        seen += len(chunk)
        if over:
            spill()
        if seen >= _PROBE and probed:
            return fresh < _FRESH_BYPASS * probed
    return True


def write_map_output(store: BlockStore, records: Iterable[tuple], *, job_id: str, shuffle_id: int,
                     map_id: int, attempt: int, num_partitions: int,
                     partition_of: Callable[[Any], int], aggregator: Aggregator | None = None,
                     codec: str | None = None, prefixes: int = 16,
                     memory_budget: int = 256 << 20, raw: bool = False) -> MapStatus:
    """Partition, (optionally) combine, encode and store one map attempt's output.

    ``raw`` says the records carry runs of raw bytes, for the default codec's choice.
    """
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
    key = block_key(job_id, shuffle_id, map_id, attempt, prefixes)
    codec = codec or default_codec_for(store.protocol, raw)
    n = num_partitions
    # an encoder only for partitions that get records: with many reduce partitions and
    # little data per map (an M x M shuffle of small data) most segments stay empty
    encoders: dict[int, RecordEncoder] = {}
    chunks: dict[int, list[bytes]] = {}

    def encoder(p: int) -> RecordEncoder:
        enc = encoders.get(p)
        if enc is None:
            enc = encoders[p] = RecordEncoder(codec)
            chunks[p] = []
        return enc

    def encode_all() -> None:
        for p, enc in encoders.items():
            chunks[p].extend(enc.take_chunks())

    many = getattr(partition_of, "partition_many", None)
    # a partitioner whose numbers are in range by construction (the default hash) needs no check
    trusted = getattr(partition_of, "in_range", False) is True and getattr(partition_of, "num_partitions", 0) == n

    def partitions_of(keys: list) -> list[int]:
        # One call for the chunk's partition numbers (the partitioner's ``partition_many``
        # when it has one), each checked to be one of the ``n`` unless the partitioner
        # makes them so.
        parts = many(keys) if many is not None else [partition_of(k) for k in keys]
        if trusted:
            return parts
        if not set(map(type, parts)) <= _INT:
            parts = _as_ints(parts, keys, n)
        if min(parts) < 0 or max(parts) >= n:
            bad = next(i for i, p in enumerate(parts) if not 0 <= p < n)
            raise _bad_partition(parts[bad], keys[bad], n)
        return parts

    def partition(keys: list, records: list) -> None:
        # then one list per partition and one ``extend`` per encoder
        if not keys:
            return
        parts = partitions_of(keys)
        if n == 1:
            encoder(0).extend(records)
            return
        buckets: list[list] = [[] for _ in range(n)]
        appends = [b.append for b in buckets]
        for p, record in zip(parts, records):
            appends[p](record)
        for p, bucket in enumerate(buckets):
            if bucket:
                encoder(p).extend(bucket)

    def partition_pairs(keys: list, values: list) -> None:
        # ``partition`` for a dict's keys and values, each partition's given to its encoder as columns
        if only is not None:
            encoder(only).extend_pairs(keys, values)
            return
        parts = partitions_of(keys)
        if n == 1:
            encoder(0).extend_pairs(keys, values)
            return
        key_columns: list[list] = [[] for _ in range(n)]
        value_columns: list[list] = [[] for _ in range(n)]
        key_appends, value_appends = [c.append for c in key_columns], [c.append for c in value_columns]
        for p, k, v in zip(parts, keys, values):
            key_appends[p](k)
            value_appends[p](v)
        for p, column in enumerate(key_columns):
            if column:
                encoder(p).extend_pairs(column, value_columns[p])

    # a dict's keys are hashable, so a partitioner that only hashes them has nothing to check
    only = getattr(partition_of, "partition_of_hashable", None)

    def route(batches: Iterable[list]) -> None:
        for chunk in batches:
            partition(list(map(_first, chunk)), chunk)
            pending = sum(e.pending_bytes() for e in encoders.values()) * _LIVE_OBJECT_FACTOR
            if pending > memory_budget:
                encode_all()

    # a partition that comes as lists (dagrun.graph.nodes.Batched) is taken so: no Python step per record
    take = getattr(records, "take_batches", None)
    lists = take() if take is not None else None
    if aggregator is None:
        route(chunked(records, _CHECK_EVERY) if lists is None else _regrouped(lists, _CHECK_EVERY))
    else:
        cmap = CombineMap(aggregator, combined=False, memory_budget=memory_budget)

        def spill() -> None:
            # keys and values as columns: no (key, combiner) tuple is made to be pickled
            combined = cmap.drain()
            keys, values = iter(combined), iter(combined.values())
            while key_slice := list(itertools.islice(keys, _SPILL_SLICE)):
                partition_pairs(key_slice, list(itertools.islice(values, len(key_slice))))
            encode_all()

        # The combine takes the lists as they come, joining only short ones: a list is merged
        # while its records are still in cache (the map's lists hold a 64 KiB piece of text
        # each), where joining them into 4096 records cost a tenth of the map task.
        batches = chunked(records, _COMBINE_CHUNK) if lists is None else _regrouped(lists, _COMBINE_CHUNK)
        if _combine_probe(cmap, batches, spill):
            for chunk in batches:
                if cmap.add_chunk(chunk):
                    spill()
            spill()
        else:  # the combine barely reduces: send (key, combiner) pairs on as they come
            spill()
            create = cmap.create_combiner
            pairs = batches if create is None else ([(k, create(v)) for k, v in chunk] for chunk in batches)
            route(_regrouped(pairs, _CHECK_EVERY))

    encode_all()
    offsets, lengths, counts, checksums = (_numbers(c, bytes(8 * n if c == "Q" else 4 * n)) for c in "QQQI")
    offset, parts_in_order = 0, []
    for p in sorted(encoders):
        length = sum(map(len, chunks[p]))
        offsets[p], lengths[p], counts[p], checksums[p] = offset, length, encoders[p].count, encoders[p].checksum
        offset += length
        parts_in_order.append(chunks[p])
    for p in range(n):  # an empty segment sits where the next non-empty one starts
        if not lengths[p] and p:
            offsets[p] = offsets[p - 1] + lengths[p - 1]
    store.put(key, b"".join(itertools.chain.from_iterable(parts_in_order)))
    return MapStatus(shuffle_id, map_id, attempt, key, offsets, lengths, counts, checksums)
