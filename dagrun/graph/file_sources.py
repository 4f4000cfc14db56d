"""Sources that read files whole: ``whole_text_files`` and ``binary_files``.

Files are listed as ``text_file`` lists them (a file, a directory, a glob, or a list or
comma-separated string of those; names starting with ``_`` or ``.`` are skipped), in name
order.  Keys name a file as Hadoop does: a local file as ``file:/abs/path``, anything else by
its URL.

Partitions are PySpark's:
- ``whole_text_files`` and ``binary_files`` group whole files as Hadoop's
  CombineFileInputFormat does on one host (:func:`combine_files`): files are taken in order
  into a partition until it holds at least the largest partition size, and what is left
  (empty files among it) is one last partition.  That size is ``ceil(total bytes /
  min_partitions)`` for text (Spark's WholeTextFileInputFormat) and, for binary (Spark's
  StreamFileInputFormat), ``min(split_size or 128 MiB, max(4 MiB, sum(size + 4 MiB) //
  max(default_parallelism, min_partitions)))``, 4 MiB being Spark's cost of opening a file.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

from dagrun.runtime.file_codecs import compression_of, decompress
from dagrun.runtime.inputs import _list_files, _open
from dagrun.graph.nodes import Node, Split


class WholeFilesNode(Node):
    """Each file of ``path`` read whole, as ``kind`` (``"text"`` or ``"binary"``) says, as
    ``(name, contents)`` pairs."""

    def __init__(self, ctx, path: Any, kind: str, min_partitions: int, storage_options: dict | None,
                 use_unicode: bool = True):
        self.op_name = {"text": "whole_text_files", "binary": "binary_files"}[kind]
        super().__init__(ctx)
        self.path, self.kind, self.min_partitions = path, kind, min_partitions
        self.storage_options, self.use_unicode = storage_options, use_unicode

    def _make_splits(self) -> list[Split]:
        files = _list_files(self.path, self.storage_options, skip_folders=True)
        if self.kind == "text":
            groups = combine_files(files, -(-sum(f.size for f in files) // self.min_partitions))
        else:
            per_core = sum(f.size + _OPEN_COST for f in files) // max(self.ctx.default_parallelism,
                                                                        self.min_partitions)
            groups = combine_files(files, min(self.ctx.config.split_size or _MAX_PARTITION_BYTES, max(_OPEN_COST, per_core)))
        return [Split(i, tuple((f.url, f.size) for f in group)) for i, group in enumerate(groups)]

    def compute(self, split: Split, tc) -> Iterator:
        for url, size in split.data:
            with _open(url, self.storage_options, size=size, cache_type="readahead") as f:
                data = f.read()
            compression = compression_of(url) if self.kind == "text" else None
            if compression is not None:  # Hadoop's WholeTextFileRecordReader decompresses by suffix
                data = decompress(data, compression, url)
            if self.kind == "text":
                # as Hadoop's Text gives it: invalid UTF-8 replaced; use_unicode=False encodes
                # name and text again (PySpark's UTF8Deserializer on both)
                name, text = hadoop_name(url), data.decode("utf-8", "replace")
                yield (name, text) if self.use_unicode else (name.encode(), text.encode())
            else:
                yield hadoop_name(url), data

    def describe_input(self) -> str:
        return f"{self.op_name} of {self.path!r}: {len(self.splits)} partitions of whole files"


_OPEN_COST = 4 << 20  # Spark's spark.files.openCostInBytes
_MAX_PARTITION_BYTES = 128 << 20  # Spark's spark.files.maxPartitionBytes, used when split_size is 0


def combine_files(files: Sequence[Any], max_size: int) -> list[list[Any]]:
    """Hadoop's CombineFileInputFormat on one host, for files that are never split.

    Non-empty files (each has the host) fill a group in order until it holds ``max_size``
    bytes or more (0: no limit); the rest, with the empty files (they have no host, so only
    the rack-wide pass sees them), is one last group, in listing order.

    >>> from types import SimpleNamespace as F
    >>> [[f.size for f in g] for g in combine_files([F(size=6), F(size=3), F(size=0), F(size=5)], 9)]
    [[6, 3], [0, 5]]
    """
    groups: list[list[Any]] = []
    group: list[Any] = []
    size = 0
    for f in files:
        if f.size:
            group.append(f)
            size += f.size
            if max_size and size >= max_size:
                groups.append(group)
                group, size = [], 0
    placed = {id(f) for g in groups for f in g}
    rest = [f for f in files if id(f) not in placed]
    return groups + [rest] if rest else groups


def hadoop_name(url: str) -> str:
    """``file:///tmp/a.txt`` -> ``file:/tmp/a.txt``, as Hadoop's Path prints it."""
    return "file:/" + url[len("file:///"):] if url.startswith("file:///") else url


def input_paths(path: Any) -> str | list[str]:
    """An input argument as text: a str, or a list of them (``os.PathLike`` taken as its path).

    >>> input_paths(pathlib.Path("/data/logs"))
    '/data/logs'
    """
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if isinstance(path, str):
        return path
    if isinstance(path, (list, tuple)):
        items = [os.fspath(p) if isinstance(p, os.PathLike) else p for p in path]
        if all(isinstance(p, str) for p in items):
            return items
        path = next(p for p in items if not isinstance(p, str))
    raise TypeError(f"an input is named by a path or URL (str), or a list of them; got {type(path).__name__} "
                    f"{path!r}")


def split_paths(path: Any) -> Any:
    """Hadoop's ``FileInputFormat.getPathStrings``: split on commas outside ``{...}``."""
    path = input_paths(path)
    if not isinstance(path, str) or "," not in path:
        return path
    parts, depth, start = [], 0, 0
    for i, c in enumerate(path):
        if c == "{":
            depth += 1
        elif c == "}" and depth:
            depth -= 1
        elif c == "," and not depth:
            parts.append(path[start:i])
            start = i + 1
    parts.append(path[start:])
    parts = [p for p in parts if p]
    return parts[0] if len(parts) == 1 else parts
