"""The lineage nodes of the block-at-a-time sort of ``binary_records`` by ``key_prefix``.

The map side cuts each split into sorted runs of raw bytes, one per range partition; the
reduce side sorts the runs it reads as one buffer (the kernels are in
``dagrun.runtime.prefix_sort``, which also says why the answer equals the general sort's).
"""

from __future__ import annotations

import collections
import operator
from typing import Iterator

from dagrun.graph.nodes import BinaryRecordsNode, Node, ShuffledNode
from dagrun.graph.partitioners import HashPartitioner, identity
from dagrun.runtime.prefix_sort import KeyPrefix, cut_runs, sorted_records, split_records


def prefix_sorted(records: BinaryRecordsNode, key_length: int, bounds: tuple, ascending: bool) -> "PrefixSortedNode":
    """The sorted node over ``records`` for sampled range ``bounds``.

    As in sort_by_key, an empty sample (no records) leaves one partition, not n.
    """
    runs = PrefixRunsNode(records, key_length, bounds, ascending)
    return PrefixSortedNode(runs, len(bounds) + 1, records.record_length, key_length, ascending)


class PrefixRunsNode(Node):
    """The map side: ``(reduce partition, sorted run)`` pairs from each split of the records."""

    op_name = "sort_by (byte-prefix runs)"

    def __init__(self, parent: Node, key_length: int, bounds: tuple, ascending: bool):
        super().__init__(parent.ctx, [parent])
        self.key_length, self.bounds, self.ascending = key_length, bounds, ascending

    def _make_splits(self):
        return self.parents[0].splits

    def compute(self, split, tc) -> Iterator:
        parent = self.parents[0]
        for chunk in parent.chunks(split, tc):
            yield from cut_runs(chunk, parent.record_length, self.key_length, self.bounds, self.ascending)


class PrefixSortedNode(ShuffledNode):
    """The reduce side: the records of one range partition, in order."""

    def __init__(self, runs: PrefixRunsNode, num_partitions: int, record_length: int, key_length: int,
                 ascending: bool):
        super().__init__(runs, HashPartitioner(num_partitions, identity), ascending=ascending,
                         op_name="sort_by (byte-prefix)")
        self.record_length, self.key_length = record_length, key_length

    def compute(self, split, tc) -> Iterator:
        # The sort holds the joined runs and their sorted copy, plus 16 bytes a record of
        # keys and order: a little over twice the partition.
        limit = tc.config.shuffle_memory // 2
        reads = tc.read_shuffle(self.dependency.shuffle_id, split.index)
        runs: list[bytes] = []
        total = 0
        for _, run in reads:
            runs.append(run)
            total += len(run)
            if total > limit:
                return self._external(tc, runs, reads)
        return sorted_records(runs, self.record_length, self.key_length, reverse=not self.ascending)

    def _external(self, tc, runs: list[bytes], rest: Iterator) -> Iterator:
        prefix, length = KeyPrefix(self.key_length), self.record_length

        def pairs():
            held = collections.deque(runs)  # each run is dropped once it is split
            runs.clear()
            while held:
                for record in split_records(held.popleft(), length):
                    yield prefix(record), record
            for _, run in rest:
                for record in split_records(run, length):
                    yield prefix(record), record

        ordered = tc.sort(pairs(), key=operator.itemgetter(0), reverse=not self.ascending)
        return (record for _, record in ordered)
