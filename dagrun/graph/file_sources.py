"""Sources that read files whole: ``whole_text_files``, ``binary_files`` and ``pickle_file``
(what ``save_as_pickle_file`` wrote).

Files are listed as ``text_file`` lists them (a file, a directory, a glob, or a list or
comma-separated string of those; names starting with ``_`` or ``.`` are skipped) and grouped
into partitions of whole files, in name order.  Keys name a file as Hadoop does: a local
file as ``file:/abs/path``, anything else by its URL.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Iterator

from dagrun.runtime.inputs import _list_files, _open
from dagrun.graph.nodes import Node, Split


class WholeFilesNode(Node):
    """Each file of ``path`` read whole, as ``kind`` says: ``"text"`` and ``"binary"`` give
    ``(name, contents)`` pairs, ``"pickle"`` the elements of pickled batches."""

    def __init__(self, ctx, path: Any, kind: str, min_partitions: int, storage_options: dict | None,
                 use_unicode: bool = True):
        self.op_name = {"text": "whole_text_files", "binary": "binary_files", "pickle": "pickle_file"}[kind]
        super().__init__(ctx)
        self.path, self.kind, self.min_partitions = path, kind, min_partitions
        self.storage_options, self.use_unicode = storage_options, use_unicode

    def _make_splits(self) -> list[Split]:
        files = _list_files(self.path, self.storage_options)
        total = sum(f.size for f in files)
        wanted = max(self.min_partitions, -(-total // self.ctx.config.split_size))
        n = max(1, min(len(files), wanted))
        return [Split(i, tuple((f.url, f.size) for f in files[i * len(files) // n:(i + 1) * len(files) // n]))
                for i in range(n)]

    def compute(self, split: Split, tc) -> Iterator:
        for url, size in split.data:
            with _open(url, self.storage_options, size=size, cache_type="readahead") as f:
                data = f.read()
            if self.kind == "pickle":
                yield from _unpickle_batches(data, url)
            elif self.kind == "text":
                yield hadoop_name(url), data.decode("utf-8") if self.use_unicode else data
            else:
                yield hadoop_name(url), data

    def describe_input(self) -> str:
        return f"{self.op_name} of {self.path!r}: {len(self.splits)} partitions of whole files"


def hadoop_name(url: str) -> str:
    """``file:///tmp/a.txt`` -> ``file:/tmp/a.txt``, as Hadoop's Path prints it."""
    return "file:/" + url[len("file:///"):] if url.startswith("file:///") else url


def _unpickle_batches(data: bytes, url: str) -> Iterator:
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        offset = stream.tell()
        try:
            batch = pickle.load(stream)
        except Exception as e:
            raise ValueError(f"{url} is not a file written by save_as_pickle_file (at byte {offset}): {e}") from e
        yield from batch


def write_pickle_batches(f, it: Iterator, batch_size: int) -> None:
    """Elements as pickled lists of ``batch_size`` (what ``_unpickle_batches`` reads)."""
    batch: list = []
    for x in it:
        batch.append(x)
        if len(batch) >= batch_size:
            pickle.dump(batch, f, protocol=pickle.HIGHEST_PROTOCOL)
            batch = []
    if batch:
        pickle.dump(batch, f, protocol=pickle.HIGHEST_PROTOCOL)
