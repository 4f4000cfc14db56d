"""Sorting fixed-length binary records by a byte prefix, a block at a time.

``ctx.binary_records(path, n).sort_by(dagrun.key_prefix(k))`` returns what
``sort_by(lambda r: r[:k])`` returns: the records ordered by their first ``k`` bytes, equal
keys in input order, cut into the same range partitions.  It gets there without a
``(key, record)`` tuple or a pickle call per record:

- a map task sorts each chunk of its split and cuts it into one run of raw bytes per
  reduce partition, by binary search for the range bounds;
- a reduce task joins the runs it reads into one buffer and sorts that.

With numpy installed, both sorts are stable argsorts of the key bytes read as big-endian
integers (a lexsort over every key byte when the first 8 tie); without it, ``list.sort`` of
the record slices does the same work more slowly.
A reduce partition too large for its memory budget goes through the general external
sort instead, so it spills rather than fails.

``sort_by(f)`` with any other key function on ``binary_records`` calls ``f`` once per record
(``cut_keyed_runs``), 10,000 records at a time, and checks each piece's keys at once: when
every key is the record's first ``k`` bytes (``lambda r: r[:10]``), the chunk takes the path
above with no more Python per record.  Otherwise the chunk's records travel as (key, record)
pairs (a chunk whose keys stop being prefixes partway has ``f`` called again on the records
before, to make them), and a reduce partition that received any goes through the general
sort, which compares the keys in C.  Either way the order is ``sorted(records, key=f)``'s.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import struct
from dataclasses import dataclass
from typing import Iterator

from dagrun import optional

_YIELD_BATCH = 1 << 16  # records cut from the sorted buffer per list, to bound memory


@dataclass(frozen=True)
class KeyPrefix:
    """The key function ``record[:length]``, in a form the planner can recognise."""

    length: int

    def __call__(self, record):
        return record[: self.length]


def key_prefix(length: int) -> KeyPrefix:
    """A key function for the first ``length`` bytes (or characters) of a record.

    It works wherever a key function does; sorting ``binary_records`` by it takes the
    block-at-a-time fast path.

    >>> ctx.binary_records("data/*.dat", 100).sort_by(key_prefix(10))   # doctest: +SKIP
    """
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise ValueError(f"key_prefix length must be a positive int, not {length!r}")
    return KeyPrefix(length)


def sort_block(buf: bytes, record_length: int, key_length: int, reverse: bool = False) -> bytes:
    """The records of ``buf`` ordered by their first ``key_length`` bytes; a stable sort.

    >>> sort_block(b"b1a2b0", 2, 1)
    b'a2b1b0'
    """
    if not buf:
        return b""
    np = optional.numpy()
    if np is not None:
        records = np.frombuffer(buf, dtype=np.uint8).reshape(-1, record_length)
        return np.take(records, _sort_order(np, records, key_length, reverse), axis=0).tobytes()
    return b"".join(_sorted_list(buf, record_length, key_length, reverse))


def _sorted_list(buf: bytes, record_length: int, key_length: int, reverse: bool) -> list[bytes]:
    records = split_records(buf, record_length)
    # reverse=True keeps equal keys in input order, as the general sort does
    records.sort(key=KeyPrefix(key_length), reverse=reverse)
    return records


# Bytes a record the numpy sort holds beside the records themselves, at its peak: the key
# columns and their padding (about 24) and the order (8), rounded up.
SORT_OVERHEAD_PER_RECORD = 40


def in_memory_limit(memory_budget: int, record_length: int) -> int:
    """Bytes of records ``sorted_records`` may be given within ``memory_budget``."""
    return memory_budget * record_length // (record_length + SORT_OVERHEAD_PER_RECORD)


def sorted_records(runs: list[bytes], record_length: int, key_length: int, reverse: bool = False
                   ) -> "SortedRecords":
    """The records of ``runs``, joined in order, then sorted as ``sort_block`` sorts.

    ``runs`` is emptied, and the sorted records are gathered a batch at a time as they are
    consumed, so that only the joined records, their order and one batch are held:
    ``SORT_OVERHEAD_PER_RECORD`` bytes a record more than the records.
    """
    joined = b"".join(runs)
    runs.clear()
    np = optional.numpy()
    if np is None:
        ordered = _sorted_list(joined, record_length, key_length, reverse)
        return SortedRecords((b"".join(ordered[i : i + _YIELD_BATCH]) for i in range(0, len(ordered), _YIELD_BATCH)),
                             record_length)
    records = np.frombuffer(joined, dtype=np.uint8).reshape(-1, record_length)
    order = _sort_order(np, records, key_length, reverse)
    del joined
    step = _YIELD_BATCH
    blocks = (np.take(records, order[i : i + step], axis=0).tobytes() for i in range(0, len(order), step))
    return SortedRecords(blocks, record_length)


class SortedRecords:
    """Sorted records, gathered a block at a time: iterating gives them one by one (no Python
    frame per record), while ``take_record_blocks()`` gives the blocks of whole records
    themselves, for a consumer that writes them as they are (``save_as_text_file``).  Either
    way is chosen once: after ``take_record_blocks()`` the records cannot be iterated, and once
    iterated it returns None."""

    __slots__ = ("_blocks", "_flat", "record_length")

    def __init__(self, blocks: Iterator[bytes], record_length: int):
        self._blocks: Iterator[bytes] | None = blocks
        self._flat: Iterator[bytes] | None = None
        self.record_length = record_length

    def __iter__(self) -> Iterator[bytes]:
        if self._flat is None:
            if self._blocks is None:
                raise RuntimeError("these records were already taken as blocks")
            length = self.record_length
            self._flat = itertools.chain.from_iterable(split_records(b, length) for b in self._blocks)
            self._blocks = None
        return self._flat

    def __next__(self) -> bytes:
        return next(self.__iter__())

    def take_record_blocks(self) -> Iterator[bytes] | None:
        """The blocks, each ``record_length`` times a whole number of bytes; None once iterated."""
        blocks, self._blocks = self._blocks, None
        return blocks


def _sort_order(np, records, key_length: int, reverse: bool):
    """The stable order of ``records`` (an n x record_length uint8 array) by key prefix."""
    columns = _key_columns(np, records, key_length, reverse)
    order = np.argsort(columns[0], kind="stable")
    if len(columns) > 1:
        first = columns[0][order]
        if np.any(first[1:] == first[:-1]):  # ties in the first 8 bytes: sort on every byte
            order = np.lexsort(columns[::-1])  # lexsort sorts by its last key first
    return order


def _key_columns(np, records, key_length: int, reverse: bool) -> list:
    """The key bytes as big-endian uint64 columns, zero-padded (every key is the same
    length, so padding never ties two different keys); inverted for descending order."""
    columns = []
    for start in range(0, key_length, 8):
        width = min(8, key_length - start)
        padded = np.zeros((len(records), 8), dtype=np.uint8)
        padded[:, :width] = records[:, start : start + width]
        column = padded.view(">u8").ravel().astype(np.uint64)
        columns.append(~column if reverse else column)
    return columns


def prefix_length(keys: list, records: list[bytes], chunk: bytes, record_length: int) -> int | None:
    """``k`` if every key is exactly the first ``k`` bytes of its record, else None.

    >>> prefix_length([b"a", b"b"], [b"a1", b"b2"], b"a1b2", 2), prefix_length([b"1", b"b"], [b"a1", b"b2"], b"a1b2", 2)
    (1, None)
    """
    if not keys or type(keys[0]) is not bytes:
        return None
    k = len(keys[0])
    if not 0 < k <= record_length or set(map(type, keys)) != {bytes}:
        return None
    joined = b"".join(keys)
    if len(joined) != k * len(keys):  # some key of another length
        return None
    np = optional.numpy()
    if np is not None:
        firsts = np.frombuffer(chunk, dtype=np.uint8).reshape(-1, record_length)[:, :k]
        return k if np.array_equal(firsts, np.frombuffer(joined, dtype=np.uint8).reshape(-1, k)) else None
    return k if joined == b"".join(map(KeyPrefix(k), records)) else None


def cut_keyed_runs(chunk: bytes, record_length: int, keyfunc, bounds: tuple, ascending: bool
                   ) -> Iterator[tuple[int, tuple]]:
    """``(reduce partition, payload)`` for the records of ``chunk`` sorted by ``keyfunc``, which
    is called once per record: ``(k, run)`` as ``cut_runs`` makes it when every key is the
    record's ``k``-byte prefix, else ``(None, [(key, record), ...])`` in input order."""
    if isinstance(keyfunc, KeyPrefix):
        k = min(keyfunc.length, record_length)
    else:
        k, keys = _keyed_prefix(chunk, record_length, keyfunc)
        if k is None:
            yield from _keyed_pairs(keys, split_records(chunk, record_length), bounds, ascending)
            return
    for p, run in cut_runs(chunk, record_length, k, bounds, ascending):
        yield p, (k, run)


# records cut and keyed at a time: their bytes objects stay in cache (a whole 8 MB chunk took 1.35x as long)
_KEY_PASS = 10_000


def _keyed_prefix(chunk: bytes, record_length: int, keyfunc) -> tuple[int | None, list]:
    """``(k, [])`` when every key of ``chunk`` is its record's first ``k`` bytes, else ``(None,
    keys)``, keying ``_KEY_PASS`` records at a time.  ``keyfunc`` runs once per record, and once
    more on the records before the first piece whose keys are not prefixes (PySpark's sort calls
    it on every record twice: once to sample, once to sort)."""
    step = _KEY_PASS * record_length
    k: int | None = None
    for start in range(0, len(chunk), step):
        piece = chunk[start:start + step]
        records = split_records(piece, record_length)
        keys = list(map(keyfunc, records))
        found = prefix_length(keys, records, piece, record_length)
        if found is None or (k is not None and found != k):
            before = split_records(chunk[:start], record_length) if start else []
            rest = split_records(chunk[start + step:], record_length)
            return None, list(map(keyfunc, before)) + keys + list(map(keyfunc, rest))
        k = found
    return k, []


def _keyed_pairs(keys: list, records: list[bytes], bounds: tuple, ascending: bool) -> Iterator[tuple[int, tuple]]:
    # RangePartitioner's placement: partition p holds keys in (bounds[p-1], bounds[p]]
    last = len(bounds)
    by_partition: dict[int, list] = {}
    for p, pair in zip(map(functools.partial(bisect.bisect_left, bounds), keys), zip(keys, records)):
        by_partition.setdefault(p, []).append(pair)
    for p in sorted(by_partition):
        yield (p if ascending else last - p), (None, by_partition[p])


def split_records(buf: bytes, record_length: int) -> list[bytes]:
    """``buf`` cut into records (the last one short if ``buf`` is); one C call for a whole chunk.

    >>> split_records(b"a1b2c", 2)
    [b'a1', b'b2', b'c']
    """
    count, rest = divmod(len(buf), record_length)
    if rest or count < 64:
        return [buf[i : i + record_length] for i in range(0, len(buf), record_length)]
    return list(_records_format(record_length, count).unpack(buf))


@functools.lru_cache(maxsize=4)
def _records_format(record_length: int, count: int) -> struct.Struct:
    # a chunk's records as one struct format: 3-5x faster than slicing them in a loop
    return struct.Struct(f"{record_length}s" * count)


class _Keys:
    """The keys of a sorted buffer as a sequence, for ``bisect`` without copying them out."""

    def __init__(self, buf: bytes, record_length: int, key_length: int):
        self.buf, self.record_length, self.key_length = buf, record_length, key_length

    def __len__(self) -> int:
        return len(self.buf) // self.record_length

    def __getitem__(self, i: int) -> bytes:
        start = i * self.record_length
        return self.buf[start : start + self.key_length]


def cut_runs(chunk: bytes, record_length: int, key_length: int, bounds: tuple, ascending: bool
             ) -> Iterator[tuple[int, bytes]]:
    """``(reduce partition, run)`` for the records of ``chunk``, as ``RangePartitioner`` would
    place them: partition ``p`` holds keys in ``(bounds[p-1], bounds[p]]``, numbered from the
    other end when descending.  Each run is sorted ascending; empty runs are left out."""
    ordered = sort_block(chunk, record_length, key_length)
    keys = _Keys(ordered, record_length, key_length)
    last = len(bounds)
    start = 0
    for p in range(last + 1):
        end = bisect.bisect_right(keys, bounds[p], lo=start) if p < last else len(keys)
        if end > start:
            yield (p if ascending else last - p), ordered[start * record_length : end * record_length]
        start = end
