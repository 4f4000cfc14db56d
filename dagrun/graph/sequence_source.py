"""Sequence-file sources: ``sequence_file`` (PySpark's ``sequenceFile``) and ``pickle_file``
(what PySpark's and dagrun's ``save_as_pickle_file`` write).

Splits, records and codecs are Hadoop's (``dagrun.runtime.sequence_files``); the records'
Writables become Python values as in PySpark (``dagrun.runtime.writables``).  A pickle file
is a sequence file of ``NullWritable`` keys and ``BytesWritable`` values, each value a
Java-serialized ``byte[][]`` of up to 10 pickled lists (Spark's ``saveAsObjectFile``).  A file
that earlier dagrun releases wrote (bare pickled lists, no ``SEQ`` header) is still read,
whole, by the split that starts at byte 0.
"""

from __future__ import annotations

import io
import itertools
import pickle
import struct
from typing import Any, Iterator

from dagrun.graph.nodes import Batched, Node, Split
from dagrun.runtime import sequence_files, writables
from dagrun.runtime.inputs import _open


class SequenceFileNode(Node):
    """``kind`` ``"pairs"``: (key, value) per record; ``"pickle"``: the pickled elements."""

    def __init__(self, ctx, path: Any, kind: str, split_size: int, min_partitions: int,
                 storage_options: dict | None):
        self.op_name = "pickle_file" if kind == "pickle" else "sequence_file"
        super().__init__(ctx)
        self.path, self.kind, self.split_size = path, kind, split_size
        self.min_partitions, self.storage_options = min_partitions, storage_options

    def _make_splits(self) -> list[Split]:
        splits = sequence_files.plan_sequence_splits(self.path, split_size=self.split_size,
                                                     min_partitions=self.min_partitions,
                                                     storage_options=self.storage_options)
        return [Split(i, s) for i, s in enumerate(splits)]

    def compute(self, split: Split, tc) -> Iterator:
        batches = self._pairs(split.data) if self.kind == "pairs" else self._batches(split.data)
        return Batched(lambda: batches, lambda: itertools.chain.from_iterable(batches))

    def _pairs(self, s: sequence_files.SequenceSplit) -> Iterator[list[tuple]]:
        with sequence_files.open_split(s, self.storage_options) as (header, batches):
            key, value = writables.decoder(header.key_class), writables.decoder(header.value_class)
            for batch in batches:
                try:
                    yield [(key(k), value(v)) for k, v in batch]
                except (ValueError, struct.error) as e:
                    raise ValueError(f"{s.url} holds a record that does not decode: {e}") from e

    def _batches(self, s: sequence_files.SequenceSplit) -> Iterator[list]:
        try:
            with sequence_files.open_split(s, self.storage_options) as (header, batches):
                if (header.key_class, header.value_class) != (writables.NULL, writables.BYTES):
                    raise ValueError(f"{s.url} is a sequence file of {header.key_class} and {header.value_class}, "
                                     "not a pickle file (NullWritable and BytesWritable); read it with sequence_file")
                for batch in batches:
                    for _, value in batch:
                        for blob in _pickled_batches(value, s.url):
                            yield _unpickled(blob, s.url)
        except sequence_files.NotASequenceFile:
            if s.start == 0:
                yield from _legacy_batches(s, self.storage_options)

    def describe_input(self) -> str:
        return f"{self.op_name} of {self.path!r}: {len(self.splits)} byte-range splits (sequence files)"


def _pickled_batches(value: bytes, url: str) -> list[bytes]:
    try:
        return sequence_files.read_java_byte_arrays(bytes(writables.decode(writables.BYTES, value)))
    except (ValueError, struct.error) as e:
        raise ValueError(f"{url} is not a pickle file as saveAsPickleFile writes it: {e}") from e


def _unpickled(blob: bytes, url: str) -> list:
    try:
        batch = pickle.loads(blob)
    except Exception as e:
        raise ValueError(f"{url} holds a batch that does not unpickle ({type(e).__name__}: {e}); "
                         "was it written by save_as_pickle_file?") from e
    if type(batch) is not list:
        raise ValueError(f"{url} holds a pickled {type(batch).__name__} where save_as_pickle_file writes a list")
    return batch


def _legacy_batches(s: sequence_files.SequenceSplit, storage_options: dict | None) -> Iterator[list]:
    with _open(s.url, storage_options, size=s.file_size, cache_type="readahead") as f:
        data = f.read()
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        offset = stream.tell()
        try:
            yield pickle.load(stream)
        except Exception as e:
            raise ValueError(f"{s.url} is neither a sequence file nor a file written by an earlier dagrun's "
                             f"save_as_pickle_file (at byte {offset}: {e})") from e


def write_pickle_file(f, it: Iterator, batch_size: int) -> None:
    """Elements as PySpark's ``saveAsPickleFile`` writes them: pickled lists of ``batch_size``
    (0: lists that double until a pickle is 64 KiB, as PySpark's AutoBatchedSerializer), 10
    lists to a record."""
    writer = sequence_files.SequenceWriter(f, writables.NULL, writables.BYTES)
    group: list[bytes] = []
    for blob in _pickles(it, batch_size):
        group.append(blob)
        if len(group) == 10:
            writer.append(b"", writables.encode(sequence_files.java_byte_arrays(group))[1])
            group = []
    if group:
        writer.append(b"", writables.encode(sequence_files.java_byte_arrays(group))[1])
    writer.close()


def _pickles(it: Iterator, batch_size: int) -> Iterator[bytes]:
    batch: list = []
    size = batch_size or 1
    for x in it:
        batch.append(x)
        if len(batch) >= size:
            blob = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
            yield blob
            if not batch_size and len(blob) < 1 << 16:
                size *= 2
            batch = []
    if batch:
        yield pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)


def write_sequence_file(f, it: Iterator, key_class: str, value_class: str, codec: str | None) -> None:
    """(key, value) pairs as Writables of the given classes (those of the RDD's first pair),
    block-compressed when ``codec`` is a codec's class name."""
    writer = sequence_files.SequenceWriter(f, key_class, value_class, codec)
    key, value = writables.encoder(key_class, "key"), writables.encoder(value_class, "value")
    for pair in it:
        if type(pair) is not tuple or len(pair) != 2:
            pair = pair_of(pair)
        writer.append(key(pair[0]), value(pair[1]))
    writer.close()


def pair_of(element: Any) -> tuple[Any, Any]:
    if not isinstance(element, tuple) or len(element) != 2:  # a list is a Java ArrayList to PySpark: refused
        raise TypeError(f"sequence files and Hadoop's output formats hold (key, value) pairs, and an element "
                        f"is the {type(element).__name__} {element!r:.80}")
    return element[0], element[1]
