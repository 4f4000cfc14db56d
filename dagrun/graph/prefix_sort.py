"""The lineage nodes of the block-at-a-time sort of ``binary_records`` by a key function.

The map side cuts each split into sorted runs of raw bytes, one per range partition, when
the keys are the records' byte prefixes (``key_prefix``, or any function whose keys turn out
to be, such as ``lambda r: r[:10]``), else into (key, record) pairs; the reduce side sorts
the runs it reads as one buffer, or everything through the general sort when pairs came
(the kernels are in ``dagrun.runtime.prefix_sort``, which also says why the answer equals
the general sort's).
"""

from __future__ import annotations

import collections
import itertools
import operator
from typing import Iterator

from dagrun.graph.nodes import BinaryRecordsNode, Node, ShuffledNode
from dagrun.graph.partitioners import HashPartitioner, identity
from dagrun.runtime.prefix_sort import cut_keyed_runs, in_memory_limit, sorted_records, split_records


def prefix_sorted(records: BinaryRecordsNode, keyfunc, bounds: tuple, ascending: bool,
                  adaptive: bool = False) -> "PrefixSortedNode":
    """The sorted node over ``records`` by ``keyfunc`` for sampled range ``bounds``.

    As in sort_by_key, an empty sample (no records) leaves one partition, not n.
    """
    runs = PrefixRunsNode(records, keyfunc, bounds, ascending)
    return PrefixSortedNode(runs, len(bounds) + 1, records.record_length, ascending, adaptive)


class PrefixRunsNode(Node):
    """The map side: ``(reduce partition, (k, sorted run) or (None, pairs))`` from each split."""

    op_name = "sort_by (byte-prefix runs)"

    def __init__(self, parent: Node, keyfunc, bounds: tuple, ascending: bool):
        super().__init__(parent.ctx, [parent])
        self.keyfunc, self.bounds, self.ascending = keyfunc, bounds, ascending

    def _make_splits(self):
        return self.parents[0].splits

    def compute(self, split, tc) -> Iterator:
        parent = self.parents[0]
        for chunk in parent.chunks(split, tc):
            yield from cut_keyed_runs(chunk, parent.record_length, self.keyfunc, self.bounds, self.ascending)


class PrefixSortedNode(ShuffledNode):
    """The reduce side: the records of one range partition, in order."""

    def __init__(self, runs: PrefixRunsNode, num_partitions: int, record_length: int, ascending: bool,
                 adaptive: bool = False):
        super().__init__(runs, HashPartitioner(num_partitions, identity), ascending=ascending,
                         op_name="sort_by (byte-prefix)", adaptive=adaptive, raw=True)
        self.record_length = record_length

    def compute(self, split, tc) -> Iterator:
        # the numpy sort holds the joined runs and a few bytes a record of keys and order
        limit = in_memory_limit(tc.config.shuffle_memory, self.record_length)
        reads = tc.read_shuffle(self.dependency.shuffle_id, split.index)
        runs: list[bytes] = []
        total, key_length = 0, None
        for _, (k, payload) in reads:
            if k is None or (key_length is not None and k != key_length):
                return self._general(tc, runs, key_length, itertools.chain([(None, (k, payload))], reads))
            key_length = k
            runs.append(payload)
            total += len(payload)
            if total > limit:
                return self._general(tc, runs, key_length, reads)
        if not runs:
            return iter(())
        return sorted_records(runs, self.record_length, key_length, reverse=not self.ascending)

    def _general(self, tc, runs: list[bytes], key_length: int | None, rest: Iterator) -> Iterator:
        """Every record as a (key, record) pair through the external sort: for a partition over
        its memory budget, or one that received pairs (keys that are not byte prefixes)."""
        length = self.record_length

        def pairs():
            held = collections.deque(runs)  # each run is dropped once it is split
            runs.clear()
            while held:
                for record in split_records(held.popleft(), length):
                    yield record[:key_length], record
            for _, (k, payload) in rest:
                if k is None:
                    yield from payload
                else:
                    for record in split_records(payload, length):
                        yield record[:k], record

        ordered = tc.sort(pairs(), key=operator.itemgetter(0), reverse=not self.ascending)
        return map(operator.itemgetter(1), ordered)
