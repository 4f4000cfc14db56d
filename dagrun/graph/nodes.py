"""Lineage nodes: the ``Node`` base and the concrete nodes that make up a job's graph.

State: each node knows its Context (driver side only), its dependencies, its partitions
(computed once, on the driver) and, when persisted, the id under which its partitions are
kept in the store.

Policy:
- Narrow nodes pickle their parents, so a stage's blob is the fused chain of narrow
  operations back to its sources.  A ``ShuffledNode`` drops its parent when pickled: the
  stage boundary is exactly where the pickled lineage stops.
- Partition objects carry what a task needs of its partition (a parallelize slice, a byte
  range, the parent partitions of a union or coalesce), so a task blob is one partition.
- ``iterator(split, tc)`` reads a persisted node's partition from the store when the task was
  given it as an input, and computes it otherwise.
- A text source computes a ``Batched`` partition: records that can also be taken as lists.
  When the shuffle writer takes them so, a fused chain of per-record steps (``map``,
  ``filter``, ``map_values``, ``key_by``, ``keys``, ``values``) runs over whole lists, one
  comprehension per list and step, instead of a generator resume per record and step (about
  60 ns a record for one ``map`` on this machine).  Every other consumer iterates record by
  record, as lazily as before.

The methods users call are ``dagrun.RDD``'s (``dagrun/api``), which build these nodes; this
module holds what the planner and the task runtime rely on.
"""

from __future__ import annotations

import itertools
import operator
import sys
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

if TYPE_CHECKING:
    from dagrun.api.context import Context
    from dagrun.runtime.task import TaskContext


@dataclass(frozen=True)
class Split:
    """A partition of a node: its index plus whatever reading it needs."""

    index: int
    data: Any = None
    parents: tuple = ()


@dataclass(frozen=True)
class ShuffleDependency:
    """The map side of a shuffle: how to partition, and the map-side combiner if any."""

    shuffle_id: int
    partitioner: Any  # callable key -> reduce partition, with num_partitions
    aggregator: Any = None  # shuffle.Aggregator used on the map side, or None
    job_scope: str = "job"  # "job": deleted after the job; "context": kept (persist)
    adaptive: bool = False  # the partition count was not given: reduce tasks may group partitions
    raw: bool = False  # the records carry runs of raw bytes: uncompressed on a local store


class Batched:
    """A partition's records, which its consumer may take instead as the lists they come in.

    Iterating it gives the records one by one, each step as lazy as ever.  ``take_batches()``
    gives the lists, each step run over a whole list at a time; only the shuffle writer asks,
    since it consumes every record anyway (so no step runs further ahead than it would have,
    as a ``take`` would notice).  Either way is chosen once: after ``take_batches()`` returned
    lists the records cannot be iterated, and once iterated it returns None.
    """

    __slots__ = ("_take", "_each", "_flat")

    def __init__(self, take: Callable[[], Iterable[list] | None], each: Callable[[], Iterable]):
        self._take: Callable[[], Iterable[list] | None] | None = take
        self._each: Callable[[], Iterable] | None = each
        self._flat: Iterator | None = None

    def __iter__(self) -> Iterator:
        if self._flat is None:
            if self._each is None:
                raise RuntimeError("this partition was already taken as batches")
            self._flat, self._take = iter(self._each()), None
        return self._flat

    def __next__(self) -> Any:
        return next(self.__iter__())

    def take_batches(self) -> Iterable[list] | None:
        take, self._take = self._take, None
        batches = None if take is None else take()
        if batches is not None:
            self._each = None
        return batches


def _callsite() -> str:
    for frame in reversed(traceback.extract_stack(limit=12)[:-2]):
        if "/dagrun/" not in frame.filename.replace("\\", "/"):
            return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"
    return "?"


class Node:
    """One step of a job's lineage: its parents, its partitions, and how to compute one.

    ``dagrun.RDD`` is the user's handle on a node; nodes know nothing of that API.
    """

    op_name = "rdd"
    lazy_id = False  # True: the id is drawn when first asked for (PySpark's PipelinedRDD)

    def __init__(self, ctx: "Context", parents: Iterable["Node"] = ()):
        self.ctx = ctx
        self._rdd_id: int | None = None if self.lazy_id else ctx._next_id("rdd")
        self.parents: list[Node] = list(parents)
        self.partitioner: Any = None
        self._name = f"{self.op_name} at {_callsite()}"
        self._splits: list[Split] | None = None
        self._cache_id: int | None = None

    # ---- what subclasses provide -----------------------------------------------------------

    def _make_splits(self) -> list[Split]:
        raise NotImplementedError

    def compute(self, split: Split, tc: "TaskContext") -> Iterator:
        raise NotImplementedError

    def narrow_parents(self, split: Split) -> list[tuple["Node", Split]]:
        """The parent partitions this partition is computed from within its stage."""
        return [(self.parents[0], split)] if self.parents else []

    @property
    def shuffle_dependency(self) -> ShuffleDependency | None:
        return None

    def describe_input(self) -> str | None:
        return None

    # ---- lineage machinery -----------------------------------------------------------------

    @property
    def splits(self) -> list[Split]:
        if self._splits is None:
            self._splits = self._make_splits()
        return self._splits

    def iterator(self, split: Split, tc: "TaskContext") -> Iterator:
        if self._cache_id is not None and tc.has_input(self._cache_id, split.index):
            return (value for _, value in tc.read_shuffle(self._cache_id, split.index))
        return self.compute(split, tc)

    @property
    def rdd_id(self) -> int:
        if self._rdd_id is None:
            self._rdd_id = self.ctx._next_id("rdd")
        return self._rdd_id

    def __getstate__(self) -> dict:
        self.rdd_id  # noqa: B018 - drawn here at the latest: an executor has no Context to draw from
        state = self.__dict__.copy()
        state["ctx"] = None
        state["_splits"] = None
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__.removesuffix('Node')}RDD[{self.rdd_id}] {self._name}"

    def get_num_partitions(self) -> int:
        return len(self.splits)

    def name(self) -> str:
        return self._name


# ---- sources ---------------------------------------------------------------------------------


class ParallelCollectionNode(Node):
    """A local collection, sliced exactly as PySpark slices it.

    A ``range`` is cut by element: slice i starts at ``int(i * n / k)``.  Any other
    collection is first grouped into batches of ``max(1, min(n // k, 1024))`` elements
    (PySpark's BatchedSerializer) and the batches are cut as the JVM cuts a Seq:
    slice i takes batches ``[i*m//k, (i+1)*m//k)`` of the m batches.
    """

    op_name = "parallelize"

    def __init__(self, ctx, data: list | range, num_slices: int):
        super().__init__(ctx)
        self._data, self._num_slices = data, num_slices

    def _make_splits(self) -> list[Split]:
        data, n, k = self._data, len(self._data), self._num_slices
        if k == 0:
            return []
        if isinstance(data, range):
            bounds = [int(i * n / k) for i in range(k + 1)]
            return [Split(i, data[bounds[i]:bounds[i + 1]]) for i in range(k)]
        batch = max(1, min(n // k, 1024))
        m = -(-n // batch)
        return [Split(i, data[(i * m // k) * batch:((i + 1) * m // k) * batch]) for i in range(k)]

    def compute(self, split: Split, tc) -> Iterator:
        return iter(split.data)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_data"] = None  # each task carries only its own slice
        return state


class TextFileNode(Node):
    """The lines of text files; with ``offsets``, ``(byte offset, line)`` pairs (Hadoop's
    TextInputFormat), cut at ``delimiter`` when one is given."""

    op_name = "text_file"

    def __init__(self, ctx, path, split_size: int, min_partitions: int, storage_options: dict | None,
                 offsets: bool = False, delimiter: bytes | None = None):
        super().__init__(ctx)
        self.path, self.split_size, self.min_partitions = path, split_size, min_partitions
        self.storage_options, self.offsets, self.delimiter = storage_options, offsets, delimiter

    def _make_splits(self) -> list[Split]:
        from dagrun.runtime.inputs import plan_text_splits

        splits = plan_text_splits(self.path, split_size=self.split_size, min_partitions=self.min_partitions,
                                  storage_options=self.storage_options)
        return [Split(i, s) for i, s in enumerate(splits)]

    def compute(self, split: Split, tc) -> Iterator:
        from dagrun.runtime.inputs import read_text_batches
        from dagrun.runtime.line_offsets import read_delimited, read_offset_lines

        if self.delimiter is not None:
            batches = read_delimited(split.data, self.delimiter, self.storage_options)
        else:
            batches = (read_offset_lines if self.offsets else read_text_batches)(split.data, self.storage_options)
        return Batched(lambda: batches, lambda: itertools.chain.from_iterable(batches))

    def count_lines(self, split: Split) -> int:
        from dagrun.runtime.line_count import count_text_split_lines

        if self.delimiter is not None:
            return sum(len(batch) for batch in self.compute(split, None).take_batches())
        return count_text_split_lines(split.data, self.storage_options)

    def describe_input(self) -> str:
        most = f"{self.split_size} bytes" if self.split_size else "the block size"
        text = f"text {self.path!r}: {len(self.splits)} byte-range splits of up to {most}"
        whole = sorted({s.data.compression for s in self.splits} - {None, "bz2"})
        if whole:
            text += f"; {'/'.join(whole)} files are read whole (not splittable)"
        if any(s.data.compression == "bz2" for s in self.splits):
            text += "; bz2 files by their compressed blocks"
        return text


class BinaryRecordsNode(Node):
    op_name = "binary_records"

    def __init__(self, ctx, path, record_length: int, split_size: int, min_partitions: int, storage_options):
        super().__init__(ctx)
        self.path, self.record_length = path, record_length
        self.split_size, self.min_partitions, self.storage_options = split_size, min_partitions, storage_options

    def _make_splits(self) -> list[Split]:
        from dagrun.runtime.inputs import plan_binary_splits

        splits = plan_binary_splits(self.path, record_length=self.record_length, split_size=self.split_size,
                                    min_partitions=self.min_partitions, storage_options=self.storage_options)
        return [Split(i, s) for i, s in enumerate(splits)]

    def compute(self, split: Split, tc) -> Iterator:
        from dagrun.runtime.inputs import read_binary_split

        return read_binary_split(split.data, self.record_length, self.storage_options)

    def chunks(self, split: Split, tc) -> Iterator[bytes]:
        """The split's records joined into large chunks, for block-at-a-time consumers."""
        from dagrun.runtime.inputs import BLOCK_SIZE, read_binary_chunks

        if self._cache_id is None or not tc.has_input(self._cache_id, split.index):
            return read_binary_chunks(split.data, self.record_length, self.storage_options)
        per_chunk = max(1, BLOCK_SIZE // self.record_length)
        records = self.iterator(split, tc)
        return (b"".join(batch) for batch in iter(lambda: list(itertools.islice(records, per_chunk)), []))

    def describe_input(self) -> str:
        return f"binary records of {self.record_length} bytes in {self.path!r}: {len(self.splits)} splits"


# ---- narrow ----------------------------------------------------------------------------------


class MapPartitionsNode(Node):
    """``f(partition_index, iterator)``; chains of these fuse into one function per stage.

    As PySpark's PipelinedRDD, a fused node draws its id only when asked: ``rdd.map(f).filter(g)``
    is one step, whose ``id()`` follows ``rdd.id()`` directly.
    """

    op_name = "map_partitions"
    lazy_id = True

    def __init__(self, parent: Node, func: Callable[[int, Iterator], Iterable], preserves_partitioning=False,
                 op_name: str | None = None, batch_func: Callable[[int, Iterator[list]], Iterator[list]] | None = None):
        # batch_func: the same step over lists of records (see ``Batched``), when it has one
        if isinstance(parent, MapPartitionsNode) and parent._cache_id is None:
            inner, outer = parent.func, func
            func = lambda index, it: outer(index, inner(index, it))  # noqa: E731 - fused pipeline
            inner_b, outer_b = parent.batch_func, batch_func
            batch_func = None if inner_b is None or outer_b is None else \
                (lambda index, bs: outer_b(index, inner_b(index, bs)))  # noqa: E731
            preserves_partitioning = preserves_partitioning and parent.preserves_partitioning
            source = parent.parents[0]
        else:
            source = parent
        self.op_name = op_name or self.op_name
        super().__init__(parent.ctx, [source])
        self.func, self.batch_func = func, batch_func
        self.preserves_partitioning = preserves_partitioning
        if preserves_partitioning:
            self.partitioner = parent.partitioner

    def _make_splits(self) -> list[Split]:
        return self.parents[0].splits

    def compute(self, split: Split, tc) -> Iterator:
        records = self.parents[0].iterator(split, tc)
        index, func, batch_func = split.index, self.func, self.batch_func
        if batch_func is None or not isinstance(records, Batched):
            return iter(func(index, records))

        def take() -> Iterable[list] | None:
            batches = records.take_batches()
            return None if batches is None else batch_func(index, batches)

        return Batched(take, lambda: func(index, records))


class UnionNode(Node):
    """The partitions of every parent, in order; or, when all parents are partitioned by the
    same partitioner, partition i of each parent as partition i (Spark's
    PartitionerAwareUnionRDD), keeping the partitioner so that a join after it needs no shuffle."""

    op_name = "union"

    def __init__(self, ctx: "Context", parents: Iterable["Node"] = ()):
        super().__init__(ctx, parents)
        first = self.parents[0].partitioner
        if first is not None and all(p.partitioner == first for p in self.parents[1:]):
            self.partitioner = first

    def _make_splits(self) -> list[Split]:
        if self.partitioner is not None:
            return [Split(i, None, tuple(p.splits[i] for p in self.parents))
                    for i in range(self.partitioner.num_partitions)]
        out = []
        for which, parent in enumerate(self.parents):
            for split in parent.splits:
                out.append(Split(len(out), which, (split,)))
        return out

    def narrow_parents(self, split: Split) -> list:
        if split.data is None:  # partitioner-aware: one split of every parent
            return list(zip(self.parents, split.parents))
        return [(self.parents[split.data], split.parents[0])]

    def compute(self, split: Split, tc) -> Iterator:
        if split.data is None:
            return itertools.chain.from_iterable(p.iterator(s, tc) for p, s in zip(self.parents, split.parents))
        return self.parents[split.data].iterator(split.parents[0], tc)


class CoalescedNode(Node):
    """Spark's no-locality coalesce: partition i takes parents [i*n//k, (i+1)*n//k)."""

    op_name = "coalesce"

    def __init__(self, parent: Node, num_partitions: int):
        super().__init__(parent.ctx, [parent])
        self.num_partitions = num_partitions

    def _make_splits(self) -> list[Split]:
        parent = self.parents[0].splits
        n, k = len(parent), min(self.num_partitions, max(1, len(parent)))
        return [Split(i, None, tuple(parent[i * n // k:(i + 1) * n // k])) for i in range(k)] if n else []

    def narrow_parents(self, split: Split) -> list:
        return [(self.parents[0], p) for p in split.parents]

    def compute(self, split: Split, tc) -> Iterator:
        return itertools.chain.from_iterable(self.parents[0].iterator(p, tc) for p in split.parents)


class ZippedNode(Node):
    op_name = "zip"

    def _make_splits(self) -> list[Split]:
        a, b = self.parents
        if len(a.splits) != len(b.splits):
            raise ValueError("Can only zip with RDD which has the same number of partitions")
        return [Split(i, None, (sa, sb)) for i, (sa, sb) in enumerate(zip(a.splits, b.splits))]

    def narrow_parents(self, split: Split) -> list:
        return [(self.parents[0], split.parents[0]), (self.parents[1], split.parents[1])]

    def compute(self, split: Split, tc) -> Iterator:
        left = self.parents[0].iterator(split.parents[0], tc)
        right = self.parents[1].iterator(split.parents[1], tc)
        for pair in itertools.zip_longest(left, right, fillvalue=_MISSING):
            if _MISSING in pair:
                raise ValueError("Can only zip RDDs with same number of elements in each partition")
            yield pair


_MISSING = object()


class CartesianNode(Node):
    op_name = "cartesian"

    def _make_splits(self) -> list[Split]:
        a, b = self.parents
        return [Split(i * len(b.splits) + j, None, (sa, sb))
                for i, sa in enumerate(a.splits) for j, sb in enumerate(b.splits)]

    def narrow_parents(self, split: Split) -> list:
        return [(self.parents[0], split.parents[0]), (self.parents[1], split.parents[1])]

    def compute(self, split: Split, tc) -> Iterator:
        right = list(self.parents[1].iterator(split.parents[1], tc))
        for x in self.parents[0].iterator(split.parents[0], tc):
            for y in right:
                yield (x, y)


# ---- shuffle ---------------------------------------------------------------------------------


class ShuffledNode(Node):
    """The reduce side of a shuffle.  Its parent is the previous stage; it is not pickled."""

    op_name = "shuffle"

    def __init__(self, parent: Node, partitioner, *, map_side_aggregator=None, reduce_aggregator=None,
                 combined: bool = False, sort_key: Callable | None = None, ascending: bool = True,
                 op_name: str | None = None, adaptive: bool = False, raw: bool = False):
        self.op_name = op_name or self.op_name
        super().__init__(parent.ctx, [parent])
        self.partitioner = partitioner
        self.dependency = ShuffleDependency(parent.ctx._next_id("shuffle"), partitioner, map_side_aggregator,
                                            adaptive=adaptive, raw=raw)
        self.reduce_aggregator = reduce_aggregator
        self.combined = combined
        self.sort_key, self.ascending = sort_key, ascending

    @property
    def shuffle_dependency(self) -> ShuffleDependency:
        return self.dependency

    def _make_splits(self) -> list[Split]:
        return [Split(i) for i in range(self.partitioner.num_partitions)]

    def narrow_parents(self, split: Split) -> list:
        return []

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["parents"] = []  # the stage boundary: the parent is another stage
        return state

    def compute(self, split: Split, tc) -> Iterator:
        records = tc.read_shuffle(self.dependency.shuffle_id, split.index)
        if self.reduce_aggregator is not None:
            records = tc.merge_combiners(records, self.reduce_aggregator, combined=self.combined)
        if self.sort_key is not None:
            from dagrun.graph.partitioners import identity

            key = self.sort_key
            by_key = operator.itemgetter(0) if key is identity else (lambda kv: key(kv[0]))
            records = tc.sort(records, key=by_key, reverse=not self.ascending)
        return records


def _recursion_guard() -> None:
    # deep lineages (iterative jobs) pickle recursively
    if sys.getrecursionlimit() < 10000:
        sys.setrecursionlimit(10000)


_recursion_guard()
