"""The file sources of a ``Context``: ``text_file``, ``binary_records``, ``whole_text_files``,
``binary_files``, ``pickle_file`` and ``sequence_file``.

State: none of its own; each method makes an RDD whose source node plans its splits from the
Context's config.  Policy: PySpark's partitions and values, as each node's module says
(``dagrun.runtime.inputs``, ``dagrun.graph.file_sources``, ``dagrun.graph.sequence_source``).
"""

from __future__ import annotations

from dagrun.api.rdd import RDD
from dagrun.graph.file_sources import WholeFilesNode, input_paths, split_paths
from dagrun.graph.nodes import BinaryRecordsNode, TextFileNode
from dagrun.graph.sequence_source import SequenceFileNode


class FileInputs:
    """RDDs read from files; mixed into ``dagrun.Context``, whose ``config`` and
    ``default_min_partitions`` they use."""

    def text_file(self, path: str | list[str], min_partitions: int | None = None, split_size: int | str | None = None,
                  storage_options: dict | None = None, use_unicode: bool = True) -> RDD:
        """Lines of a file, glob or directory (local, s3://, ...), split by byte ranges.

        As in Hadoop (and so PySpark), a string may name several inputs separated by commas
        (commas inside ``{...}`` glob alternatives do not separate); a list names them too.
        The RDD is named by ``path``, as in PySpark.  ``use_unicode=False`` gives each line as
        UTF-8 bytes (bytes that were not valid UTF-8 come back as U+FFFD's encoding).
        """
        from dagrun.config import parse_bytes

        path = input_paths(path)
        name = path if isinstance(path, str) else ",".join(path)
        path = split_paths(path)
        size = parse_bytes(split_size) if split_size is not None else self.config.split_size
        minimum = min_partitions or self.default_min_partitions  # 0 too, as in PySpark
        rdd = RDD(TextFileNode(self, path, size, minimum, storage_options or dict(self.config.storage_options) or None))
        rdd.set_name(name)
        return rdd if use_unicode else rdd.map(str.encode)

    def binary_records(self, path: str, record_length: int, min_partitions: int | None = None,
                       split_size: int | str | None = None, storage_options: dict | None = None) -> RDD:
        """Fixed-length byte records, split on record boundaries, by ``split_size`` alone unless
        ``min_partitions`` is given (PySpark's ``binaryRecords`` takes no minimum)."""
        from dagrun.config import parse_bytes

        path = split_paths(path)
        size = parse_bytes(split_size) if split_size is not None else self.config.split_size
        minimum = min_partitions or 1
        return RDD(BinaryRecordsNode(self, path, record_length, size, minimum,
                                     storage_options or dict(self.config.storage_options) or None))

    def whole_text_files(self, path: str, min_partitions: int | None = None, use_unicode: bool = True,
                         storage_options: dict | None = None) -> RDD:
        """``(file name, contents)`` for every file of ``path``, each read whole.

        >>> sorted(ctx.whole_text_files("logs/").collect())          # doctest: +SKIP
        [('file:/.../logs/1.txt', '123'), ('file:/.../logs/2.txt', 'xyz')]
        """
        return self._whole_files(path, "text", min_partitions, storage_options, use_unicode)

    def binary_files(self, path: str, min_partitions: int | None = None, storage_options: dict | None = None) -> RDD:
        """``(file name, bytes)`` for every file of ``path``, each read whole."""
        return self._whole_files(path, "binary", min_partitions, storage_options)

    def pickle_file(self, name: str, min_partitions: int | None = None, storage_options: dict | None = None) -> RDD:
        """The elements ``rdd.save_as_pickle_file(name)`` wrote, in dagrun or in PySpark.

        >>> ctx.parallelize(range(5)).save_as_pickle_file("/tmp/five")           # doctest: +SKIP
        >>> sorted(ctx.pickle_file("/tmp/five").collect())                        # doctest: +SKIP
        [0, 1, 2, 3, 4]
        """
        return self._sequence_files(name, "pickle", min_partitions, storage_options)

    def sequence_file(self, path: str, key_class: str | None = None, value_class: str | None = None,
                      key_converter: str | None = None, value_converter: str | None = None,
                      min_splits: int | None = None, batch_size: int = 0,
                      storage_options: dict | None = None) -> RDD:
        """``(key, value)`` for every record of Hadoop sequence files, their Writables turned into
        Python values as PySpark does (``dagrun.runtime.writables``).

        The key and value classes are the files' own, so ``key_class`` and ``value_class`` are
        not needed (a name that is no Writable is refused, as PySpark fails to load it);
        converters are Java classes, which dagrun cannot run.  ``batch_size`` is accepted for
        PySpark's signature and changes nothing.

        >>> ctx.sequence_file("s3://bucket/counts/").take(1)                     # doctest: +SKIP
        [('apple', 3)]
        """
        from dagrun.runtime.writables import check_class

        check_class(key_class, "key_class")
        check_class(value_class, "value_class")
        for name, given in (("key_converter", key_converter), ("value_converter", value_converter)):
            if given is not None:
                raise ValueError(f"{name}={given!r} names a Java converter class, which needs Spark's JVM; "
                                 "read with sequence_file and convert the values with map()")
        return self._sequence_files(path, "pairs", min_splits, storage_options)

    def _sequence_files(self, path: str, kind: str, min_partitions: int | None,
                        storage_options: dict | None) -> RDD:
        minimum = min_partitions or self.default_min_partitions  # 0 too, as in PySpark
        return RDD(SequenceFileNode(self, split_paths(path), kind, self.config.split_size, minimum,
                                    storage_options or dict(self.config.storage_options) or None))

    def _whole_files(self, path: str, kind: str, min_partitions: int | None, storage_options: dict | None,
                     use_unicode: bool = True) -> RDD:
        minimum = min_partitions or self.default_min_partitions  # 0 too, as in PySpark
        return RDD(WholeFilesNode(self, split_paths(path), kind, minimum,
                                  storage_options or dict(self.config.storage_options) or None, use_unicode))
