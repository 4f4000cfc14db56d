"""``RDD``: the one public class of a job's data, a handle on a lineage node.

State: the node (``dagrun.graph.nodes``) it stands for, which holds the Context, the parents,
the partitions and the persisted id; the handle holds nothing else.

Policy: every method is a function of ``narrow`` (narrow transformations), ``wide`` (shuffles),
``actions`` or ``more_ops`` (PySpark's less common methods), taking the RDD as its first
argument; transformations build a node and wrap it with ``_derive``, actions run a job
through the Context.  Those modules never import this one: they only call methods on the RDD
they are given, so imports run one way, as PySpark keeps its algorithms beside ``rdd.py``.

Promise: PySpark's RDD API in snake_case, with PySpark's results.

Example:
    >>> import dagrun
    >>> with dagrun.Context(executor="inline") as ctx:
    ...     ctx.parallelize([1, 2, 3]).map(lambda x: x * 2).collect()
    [2, 4, 6]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagrun.api import actions, more_ops, narrow, wide
from dagrun.graph.nodes import Node

if TYPE_CHECKING:
    from dagrun.api.context import Context


class RDD:
    """A lazy, partitioned collection.  Nothing runs until an action is called."""

    __slots__ = ("_node",)

    def __init__(self, node: Node):
        self._node = node

    def _derive(self, node: Node) -> "RDD":
        """The RDD of a node built from this one (``self`` again when the node is the same)."""
        return self if node is self._node else RDD(node)

    # ---- what the RDD is -------------------------------------------------------------------

    @property
    def ctx(self) -> "Context":
        return self._node.ctx

    @property
    def context(self) -> "Context":
        """The Context this RDD belongs to (PySpark's ``rdd.context``)."""
        return self._node.ctx

    @property
    def partitioner(self) -> Any:
        """How keys map to partitions when known (after a shuffle by key), else None."""
        return self._node.partitioner

    @property
    def is_cached(self) -> bool:
        return self._node._cache_id is not None

    def id(self) -> int:
        """A unique id for this RDD within its Context."""
        return self._node.rdd_id

    def get_num_partitions(self) -> int:
        """The number of partitions, as PySpark's ``getNumPartitions``."""
        return len(self._node.splits)

    def name(self) -> str:
        """The RDD's name: ``set_name``'s, else the operation and where it was called."""
        return self._node.name()

    def set_name(self, name: str) -> "RDD":
        self._node._name = name
        return self

    def persist(self, storage_level: Any = None) -> "RDD":
        """Keep this RDD's partitions in the store after the first job computes them."""
        node = self._node
        if node._cache_id is None:
            node._cache_id = node.ctx._next_id("shuffle")
            node.ctx._cached.add(node._cache_id)
        return self

    def cache(self) -> "RDD":
        return self.persist()

    def unpersist(self, blocking: bool = False) -> "RDD":
        node = self._node
        if node._cache_id is not None:
            node.ctx._drop_cached(node._cache_id)
            node._cache_id = None
        return self

    def explain(self, cost: bool = False, input_size: str | int | None = None) -> str:
        """Print and return the stage plan: stages, partitions, shuffle boundaries."""
        from dagrun.observe.explain import explain  # the planner stays off executors

        text = explain(self._node, cost=cost, input_size=input_size)
        print(text)
        return text

    def to_debug_string(self) -> str:
        lines: list[str] = []

        def walk(node: Node, depth: int) -> None:
            lines.append(f"{'  ' * depth}({node.get_num_partitions()}) {node!r}")
            for parent in node.parents:
                walk(parent, depth + 1 if node.shuffle_dependency else depth)

        walk(self._node, 0)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return repr(self._node)

    def __add__(self, other: "RDD") -> "RDD":
        return self.union(other)

    def __getstate__(self) -> None:
        raise TypeError("an RDD cannot be used inside a function that runs on executors (PySpark's SPARK-5063): "
                        "run the inner action on the driver first, or join the two RDDs")

    # ---- narrow transformations ------------------------------------------------------------
    map = narrow.map
    flat_map = narrow.flat_map
    filter = narrow.filter
    map_partitions = narrow.map_partitions
    map_partitions_with_index = narrow.map_partitions_with_index
    map_values = narrow.map_values
    flat_map_values = narrow.flat_map_values
    key_by = narrow.key_by
    keys = narrow.keys
    values = narrow.values
    glom = narrow.glom
    sample = narrow.sample
    union = narrow.union
    coalesce = narrow.coalesce
    cartesian = narrow.cartesian
    zip_with_index = narrow.zip_with_index
    zip_with_unique_id = narrow.zip_with_unique_id

    # ---- shuffles --------------------------------------------------------------------------
    partition_by = wide.partition_by
    combine_by_key = wide.combine_by_key
    reduce_by_key = wide.reduce_by_key
    aggregate_by_key = wide.aggregate_by_key
    fold_by_key = wide.fold_by_key
    group_by_key = wide.group_by_key
    group_by = wide.group_by
    distinct = wide.distinct
    repartition = wide.repartition
    sort_by_key = wide.sort_by_key
    sort_by = wide.sort_by
    repartition_and_sort_within_partitions = wide.repartition_and_sort_within_partitions
    cogroup = wide.cogroup
    group_with = wide.group_with
    join = wide.join
    left_outer_join = wide.left_outer_join
    right_outer_join = wide.right_outer_join
    full_outer_join = wide.full_outer_join
    subtract_by_key = wide.subtract_by_key
    subtract = wide.subtract
    intersection = wide.intersection

    # ---- actions ---------------------------------------------------------------------------
    collect = actions.collect
    collect_as_map = actions.collect_as_map
    count = actions.count
    count_by_key = actions.count_by_key
    count_by_value = actions.count_by_value
    take = actions.take
    first = actions.first
    is_empty = actions.is_empty
    take_ordered = actions.take_ordered
    top = actions.top
    reduce = actions.reduce
    fold = actions.fold
    aggregate = actions.aggregate
    sum = actions.sum
    max = actions.max
    min = actions.min
    stats = actions.stats
    mean = actions.mean
    variance = actions.variance
    stdev = actions.stdev
    sample_variance = actions.sample_variance
    sample_stdev = actions.sample_stdev
    foreach = actions.foreach
    foreach_partition = actions.foreach_partition
    lookup = actions.lookup
    reduce_by_key_locally = actions.reduce_by_key_locally
    save_as_text_file = actions.save_as_text_file
    save_as_pickle_file = actions.save_as_pickle_file
    save_as_sequence_file = actions.save_as_sequence_file

    # ---- PySpark's less common methods -----------------------------------------------------
    zip = more_ops.zip
    histogram = more_ops.histogram
    tree_aggregate = more_ops.tree_aggregate
    tree_reduce = more_ops.tree_reduce
    to_local_iterator = more_ops.to_local_iterator
    take_sample = more_ops.take_sample
    random_split = more_ops.random_split
    sample_by_key = more_ops.sample_by_key
    pipe = more_ops.pipe
    count_approx = more_ops.count_approx
    sum_approx = more_ops.sum_approx
    mean_approx = more_ops.mean_approx
    count_approx_distinct = more_ops.count_approx_distinct
