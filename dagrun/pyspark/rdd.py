"""``dagrun.pyspark.RDD``: a dagrun RDD under PySpark's names, and ``StorageLevel``.

State: the wrapped dagrun RDD and the ``SparkContext`` it belongs to; nothing else lives
here (a storage level or checkpoint mark is kept on the wrapped RDD, so every wrapper of
the same RDD agrees).

Policy: every public dagrun RDD method is reachable under its PySpark camelCase name, with
PySpark's camelCase keywords (``names.generate``).  Arguments that are wrappers are
unwrapped and results that are dagrun RDDs are wrapped, so a script sees only this class.
Methods whose PySpark meaning differs from dagrun's (``persist`` with a storage level,
``toDebugString`` returning bytes, the checkpoints, ``collectWithJobGroup``) are written
here; what needs the JVM raises ``NotImplementedError`` naming the nearest dagrun way.

Promise: an unmodified PySpark RDD script, with its imports changed to ``dagrun.pyspark``,
calls the same dagrun code a snake_case dagrun script calls, with the same results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagrun
from dagrun.pyspark import hadoop
from dagrun.pyspark.names import generate, not_in_dagrun
from dagrun.pyspark.resultiterable import ResultIterable, each_group
if TYPE_CHECKING:
    from dagrun.pyspark.context import SparkContext


class Partitioner:
    """PySpark's ``rdd.partitioner``: ``numPartitions`` and ``partitionFunc``, called on a key for
    its partition, and equal to another when they place every key alike."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Any):
        self._inner = inner

    @property
    def numPartitions(self) -> int:  # noqa: N802 - PySpark's name
        return self._inner.num_partitions

    @property
    def partitionFunc(self) -> Any:  # noqa: N802 - PySpark's name
        return getattr(self._inner, "partition_func", self._inner)

    def __call__(self, key: Any) -> int:
        return self._inner(key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Partitioner) and self._inner == other._inner

    def __hash__(self) -> int:
        return hash(self._inner)

    def __repr__(self) -> str:
        return f"Partitioner({self._inner!r})"


class StorageLevel:
    """Where a persisted RDD would be kept.  dagrun keeps every persisted RDD in its block
    store, whatever the level; the level is recorded and reported as PySpark reports it."""

    def __init__(self, useDisk: bool, useMemory: bool, useOffHeap: bool, deserialized: bool, replication: int = 1):
        self.useDisk, self.useMemory, self.useOffHeap = useDisk, useMemory, useOffHeap
        self.deserialized, self.replication = deserialized, replication

    def _fields(self) -> tuple:
        return _level_fields(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorageLevel) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return "StorageLevel({}, {}, {}, {}, {})".format(*self._fields())

    def __str__(self) -> str:
        words = [w for w, on in (("Disk", self.useDisk), ("Memory", self.useMemory), ("OffHeap", self.useOffHeap)) if on]
        words.append("Deserialized" if self.deserialized else "Serialized")
        return " ".join(words) + f" {self.replication}x Replicated"


for _name, _args in {
    "NONE": (False, False, False, False), "DISK_ONLY": (True, False, False, False),
    "DISK_ONLY_2": (True, False, False, False, 2), "DISK_ONLY_3": (True, False, False, False, 3),
    "MEMORY_ONLY": (False, True, False, False), "MEMORY_ONLY_2": (False, True, False, False, 2),
    "MEMORY_AND_DISK": (True, True, False, False), "MEMORY_AND_DISK_2": (True, True, False, False, 2),
    "OFF_HEAP": (True, True, True, False, 1), "MEMORY_AND_DISK_DESER": (True, True, False, True),
}.items():
    setattr(StorageLevel, _name, StorageLevel(*_args))


def _level_fields(level: Any) -> tuple:
    """A storage level's five fields; PySpark's own ``StorageLevel`` is accepted too."""
    return level.useDisk, level.useMemory, level.useOffHeap, level.deserialized, level.replication


def wrap(value: Any, sc: "SparkContext") -> Any:
    """A dagrun RDD (or a list of them, as ``random_split`` returns) as PySpark RDDs."""
    if isinstance(value, dagrun.RDD):
        return RDD(value, sc)
    if type(value) is list and value and isinstance(value[0], dagrun.RDD):
        return [RDD(v, sc) for v in value]
    return value


def unwrap(value: Any) -> Any:
    return value._rdd if isinstance(value, RDD) else value


class RDD:
    """A PySpark-shaped handle on a dagrun RDD: ``rdd.flatMap(f).reduceByKey(add)``."""

    def __init__(self, rdd: Any, sc: "SparkContext"):
        self._rdd = rdd
        self.ctx = sc

    @property
    def context(self) -> "SparkContext":
        return self.ctx

    @property
    def partitioner(self) -> "Partitioner | None":
        inner = self._rdd.partitioner
        return None if inner is None else Partitioner(inner)

    @property
    def is_cached(self) -> bool:
        return self._rdd.is_cached

    def __repr__(self) -> str:
        kind = getattr(self._rdd._node, "_pyspark_kind", None)
        return f"{kind}[{self._rdd.id()}] at {self._rdd.name()}" if kind else repr(self._rdd)

    def __add__(self, other: Any) -> "RDD":
        if not isinstance(other, RDD):
            raise TypeError(f"unsupported operand type(s) for +: 'RDD' and '{type(other).__name__}'")
        return self.union(other)

    def __reduce__(self):
        raise RuntimeError("It appears that you are attempting to reference an RDD from inside a "
                           "transformation or action; RDD operations run only on the driver. Collect "
                           "or broadcast the values the function needs instead.")

    def _call(self, name: str, args: tuple, kwargs: dict) -> Any:
        args = tuple(unwrap(a) for a in args)
        kwargs = {k: unwrap(v) for k, v in kwargs.items()}
        result = self.ctx._run(getattr(self._rdd, name), args, kwargs)
        return self if result is self._rdd else wrap(result, self.ctx)  # PySpark's ``partitionBy`` may return self

    # ---- PySpark's meaning differs from dagrun's ------------------------------------------

    def persist(self, storageLevel: StorageLevel = StorageLevel.MEMORY_ONLY) -> "RDD":
        if self._rdd.is_cached and self.getStorageLevel()._fields() != _level_fields(storageLevel):
            raise ValueError(f"Cannot change the storage level of an RDD after it was already assigned "
                             f"({self.getStorageLevel()}); unpersist() it first")
        self._rdd.persist()
        self._rdd._node._pyspark_level = _level_fields(storageLevel)  # plain data: nodes travel to executors
        return self

    def cache(self) -> "RDD":
        return self.persist(StorageLevel.MEMORY_ONLY)

    def unpersist(self, blocking: bool = False) -> "RDD":
        self._rdd.unpersist(blocking)
        self._rdd._node._pyspark_level = StorageLevel.NONE._fields()
        return self

    def getStorageLevel(self) -> StorageLevel:
        if not self._rdd.is_cached:
            return StorageLevel.NONE
        return StorageLevel(*getattr(self._rdd._node, "_pyspark_level", StorageLevel.MEMORY_ONLY._fields()))

    def checkpoint(self) -> None:
        """Kept in the block store as ``persist`` keeps it, so no later job recomputes it (the
        lineage is not truncated); after the first job that computes it, its partitions are
        also written as ``rdd-N`` (a pickle file) in the checkpoint directory, as Spark writes
        them.  As in Spark, ``setCheckpointDir`` must come first."""
        if self.ctx.getCheckpointDir() is None:
            raise RuntimeError("Checkpoint directory has not been set in the SparkContext: call "
                               "sc.setCheckpointDir(path) before rdd.checkpoint()")
        self._rdd.persist()
        self._rdd._node._pyspark_checkpoint = ("reliable", len(self.ctx._ctx.jobs))
        self.ctx._unwritten_checkpoints.append(self)

    def localCheckpoint(self) -> None:
        self._rdd.persist()
        self._rdd._node._pyspark_checkpoint = ("local", len(self.ctx._ctx.jobs))

    def _checkpointed(self, kind: str) -> bool:
        mark = getattr(self._rdd._node, "_pyspark_checkpoint", None)
        return mark is not None and mark[0] == kind

    def _materialized(self) -> bool:
        mark = getattr(self._rdd._node, "_pyspark_checkpoint", None)
        return mark is not None and len(self.ctx._ctx.jobs) > mark[1]

    def isCheckpointed(self) -> bool:
        """Whether a job has computed this RDD since it was marked, reliably or locally (Spark's rule)."""
        return self._materialized()

    def isLocallyCheckpointed(self) -> bool:
        """Whether this RDD is marked for local checkpointing (computed or not, as in Spark)."""
        return self._checkpointed("local")

    def getCheckpointFile(self) -> str | None:
        """The folder ``rdd-N`` in the checkpoint directory that holds the partitions (as a
        pickle file), once a job computed the RDD; later jobs read its persisted blocks."""
        return getattr(self._rdd._node, "_pyspark_checkpoint_file", None)

    def name(self) -> str | None:
        """The name ``setName`` gave (a file source is named by its path), else None."""
        return getattr(self._rdd._node, "_pyspark_name", None)

    def setName(self, name: str) -> "RDD":
        self._rdd.set_name(name)
        self._rdd._node._pyspark_name = name
        return self

    @property
    def is_checkpointed(self) -> bool:
        """PySpark's attribute: True once ``checkpoint()`` marked the RDD (``isCheckpointed()``
        waits for a job to compute it)."""
        return self._checkpointed("reliable")

    def toDebugString(self) -> bytes:
        return self._rdd.to_debug_string().encode("utf-8")

    def collectWithJobGroup(self, groupId: str, description: str, interruptOnCancel: bool = False) -> list:
        with self.ctx._job_group(groupId, description, interruptOnCancel):
            return self.collect()

    def mapPartitionsWithSplit(self, f: Any, preservesPartitioning: bool = False) -> "RDD":
        """Deprecated in PySpark: use ``mapPartitionsWithIndex``."""
        return self.mapPartitionsWithIndex(f, preservesPartitioning)

    def groupByKey(self, numPartitions: int | None = None, partitionFunc: Any = dagrun.portable_hash) -> "RDD":
        """``(key, ResultIterable of its values)``, as PySpark groups them."""
        return RDD(self._rdd.group_by_key(numPartitions, partitionFunc).map_values(ResultIterable), self.ctx)

    def groupBy(self, f: Any, numPartitions: int | None = None, partitionFunc: Any = dagrun.portable_hash) -> "RDD":
        return RDD(self._rdd.group_by(f, numPartitions, partitionFunc).map_values(ResultIterable), self.ctx)

    def cogroup(self, other: "RDD", numPartitions: int | None = None) -> "RDD":
        """``(key, (ResultIterable, ResultIterable))`` for every key of either RDD."""
        return RDD(self._rdd.cogroup(unwrap(other), numPartitions).map_values(each_group), self.ctx)

    def groupWith(self, other: "RDD", *others: "RDD", numPartitions: int | None = None) -> "RDD":
        grouped = self._rdd.group_with(unwrap(other), *map(unwrap, others), num_partitions=numPartitions)
        return RDD(grouped.map_values(each_group), self.ctx)

    def getResourceProfile(self) -> None:
        return None

    def cleanShuffleDependencies(self, blocking: bool = False) -> None:
        """Nothing to do: dagrun deletes a job's shuffle blocks when the job ends."""

    def saveAsHadoopFile(self, path: str, outputFormatClass: str, keyClass: str | None = None,
                         valueClass: str | None = None, keyConverter: str | None = None,
                         valueConverter: str | None = None, conf: dict | None = None,
                         compressionCodecClass: str | None = None) -> None:
        """``org.apache.hadoop.mapred``'s SequenceFileOutputFormat or TextOutputFormat (``dagrun.pyspark.hadoop``)."""
        hadoop.save(self._rdd, "RDD.saveAsHadoopFile", path, outputFormatClass, keyClass, valueClass,
                    keyConverter, valueConverter, conf, compressionCodecClass)

    def saveAsNewAPIHadoopFile(self, path: str, outputFormatClass: str, keyClass: str | None = None,
                               valueClass: str | None = None, keyConverter: str | None = None,
                               valueConverter: str | None = None, conf: dict | None = None) -> None:
        """``org.apache.hadoop.mapreduce.lib.output``'s SequenceFileOutputFormat or TextOutputFormat."""
        hadoop.save(self._rdd, "RDD.saveAsNewAPIHadoopFile", path, outputFormatClass, keyClass, valueClass,
                    keyConverter, valueConverter, conf)

    def saveAsHadoopDataset(self, conf: dict, keyConverter: str | None = None,
                            valueConverter: str | None = None) -> None:
        """``saveAsHadoopFile`` with the format, path and classes in ``conf``."""
        hadoop.save(self._rdd, "RDD.saveAsHadoopDataset", None, None, None, None, keyConverter,
                    valueConverter, conf)

    def saveAsNewAPIHadoopDataset(self, conf: dict, keyConverter: str | None = None,
                                  valueConverter: str | None = None) -> None:
        """``saveAsNewAPIHadoopFile`` with the format, path and classes in ``conf``."""
        hadoop.save(self._rdd, "RDD.saveAsNewAPIHadoopDataset", None, None, None, None, keyConverter,
                    valueConverter, conf)

    toDF = not_in_dagrun("RDD.toDF", "dagrun has no DataFrames; collect() into pandas, or query files with duckdb")
    barrier = not_in_dagrun("RDD.barrier", "dagrun's tasks run independently; use mapPartitions")
    withResources = not_in_dagrun("RDD.withResources", "size executors with the lambda.memory_mb setting")


generate(RDD, dagrun.RDD, RDD._call)
