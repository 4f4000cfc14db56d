"""Hadoop sequence files: the format of PySpark's ``saveAsSequenceFile`` and ``saveAsPickleFile``.

State: none.  A ``SequenceSplit`` is a frozen byte range that ships with a task.

Policy (Hadoop's ``SequenceFile`` and ``SequenceFileRecordReader``):

* A file is a header (``SEQ``, version 6, key and value class names, whether values are
  compressed, whether in blocks, the codec's class, metadata, and a random 16-byte sync
  marker), then records, with a sync entry (the int -1 and the marker) every 100 KiB or so.
  A record is its length, its key's length, the key and the value (compressed alone, if
  record-compressed).  A block-compressed file holds blocks instead, each after a sync entry:
  a count and four compressed buffers (key lengths, keys, value lengths, values).
* Splits are ``text_file``'s byte ranges (Hadoop's FileInputFormat sizes), but never under
  100 KiB (SequenceFileInputFormat's minimum); sequence files are always splittable.  A
  split starting past the header begins at the first sync entry at or after its start, and
  reads records until a sync entry at or after its end, so records that follow its end
  before any sync are still its own, and every record is read exactly once.
* Codecs by class name: ``DefaultCodec`` (zlib), ``GzipCodec``, ``BZip2Codec`` and
  ``ZStandardCodec``.  A file in another codec, one that is not a sequence file, or one cut
  short or corrupt, is a ``ValueError`` that names the file and the byte.

Promise: the records of a file's splits, in split order, are the file's records in order.
"""

from __future__ import annotations

import bz2
import gzip
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

import zstandard

from dagrun.runtime import writables
from dagrun.runtime.inputs import BLOCK_SIZE, TAIL_BLOCK_SIZE, _cut, _goal_size, _list_files, _open, _split_size

MAGIC = b"SEQ"
VERSION = 6
SYNC_SIZE = 16
SYNC_INTERVAL = 5 * 1024 * (4 + SYNC_SIZE)  # Hadoop's: bytes of records between sync entries
BLOCK_BYTES = 1_000_000  # Hadoop's io.seqfile.compress.blocksize: keys and values per compressed block
_CODECS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    "org.apache.hadoop.io.compress.DefaultCodec": (zlib.compress, zlib.decompress),
    "org.apache.hadoop.io.compress.GzipCodec": (gzip.compress, gzip.decompress),
    "org.apache.hadoop.io.compress.BZip2Codec": (bz2.compress, bz2.decompress),
    "org.apache.hadoop.io.compress.ZStandardCodec": (
        lambda data: zstandard.ZstdCompressor().compress(data),
        lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data)),
}
CODEC_NAMES = {name.rsplit(".", 1)[1]: name for name in _CODECS}


class NotASequenceFile(ValueError):
    """The file does not start with ``SEQ``."""


@dataclass(frozen=True)
class SequenceSplit:
    """The records of ``url`` that a reader starting at byte ``start`` and ending at ``end`` owns."""

    url: str
    start: int
    end: int
    file_size: int


@dataclass(frozen=True)
class Header:
    key_class: str
    value_class: str
    codec: str | None  # the class name, when values are compressed
    blocks: bool  # block-compressed
    sync: bytes
    end: int  # where the first record (or block) starts


def plan_sequence_splits(path: Any, *, split_size: int, min_partitions: int,
                         storage_options: dict[str, Any] | None = None) -> list[SequenceSplit]:
    """Every input file cut into Hadoop's splits, none under ``SYNC_INTERVAL`` bytes (the
    minimum split size of Hadoop's SequenceFileInputFormat); an empty file gives none, as in Spark."""
    files = _list_files(path, storage_options)
    goal = _goal_size(files, split_size, min_partitions)
    return [SequenceSplit(f.url, s, e, f.size) for f in files if f.size
            for s, e in _cut(f.size, max(SYNC_INTERVAL, _split_size(f, split_size, goal)))]


class _Cursor:
    """Bytes of a file from a position on, read in large blocks up to ``end`` and in growing
    small ones after it (a split reads past its end only to finish a record)."""

    def __init__(self, f: BinaryIO, url: str, pos: int, end: int):
        self.f, self.url, self.end = f, url, end
        self.buf, self.base, self.pos = b"", pos, pos
        self._tail = TAIL_BLOCK_SIZE
        f.seek(pos)

    def has(self, n: int) -> bool:
        """Whether ``n`` more bytes can be read; reads them in if needed."""
        while self.base + len(self.buf) < self.pos + n:
            top = self.base + len(self.buf)
            want = max(n, min(BLOCK_SIZE, self.end - top) if top < self.end else self._tail)
            if top >= self.end:
                self._tail = min(2 * self._tail, BLOCK_SIZE)
            block = self.f.read(want)
            if not block:
                return False
            self.buf = self.buf[self.pos - self.base:] + block
            self.base = self.pos
        return True

    def take(self, n: int) -> bytes:
        if not self.has(n):
            raise ValueError(f"{self.url} ends inside a record at byte {self.pos} (cut short?)")
        i = self.pos - self.base
        self.pos += n
        return self.buf[i:i + n]

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def vlong(self) -> int:
        first = self.take(1)
        rest = writables.vlong_size(first[0]) - 1
        return writables.read_vlong(first + self.take(rest) if rest else first, 0)[0]


def read_header(f: BinaryIO, url: str, file_size: int) -> Header:
    """The header of the sequence file open as ``f``."""
    return _header(_Cursor(f, url, 0, min(file_size, 1 << 16)), url)


def _header(cur: _Cursor, url: str) -> Header:
    try:
        if not cur.has(4) or cur.take(3) != MAGIC:
            raise NotASequenceFile(f"{url} is not a sequence file (it does not start with {MAGIC!r})")
        version = cur.take(1)[0]
        if version < 5 or version > VERSION:
            raise ValueError(f"{url} is a version {version} sequence file; dagrun reads versions 5 and 6")
        key_class, value_class = _text(cur), _text(cur)
        compressed, blocks = cur.take(1) != b"\x00", cur.take(1) != b"\x00"
        codec = _text(cur) if compressed else None
        if version >= 6:
            for _ in range(2 * cur.int()):  # metadata: pairs of Text
                _text(cur)
        sync = cur.take(SYNC_SIZE)
    except (ValueError, struct.error, IndexError) as e:
        if isinstance(e, ValueError) and str(e).startswith(url):
            raise
        raise ValueError(f"{url} has a damaged sequence file header: {e}") from e
    if codec is not None and codec not in _CODECS:
        raise ValueError(f"{url} is compressed with {codec}, which dagrun cannot decompress; it reads "
                         f"{', '.join(CODEC_NAMES)}")
    return Header(key_class, value_class, codec, blocks, sync, cur.pos)


def _text(cur: _Cursor) -> str:
    n = cur.vlong()
    if n < 0:
        raise ValueError(f"a class name of {n} bytes at byte {cur.pos}")
    return cur.take(n).decode("utf-8", "replace")


@contextmanager
def open_split(split: SequenceSplit, storage_options: dict[str, Any] | None) -> Iterator[tuple[Header, Iterator]]:
    """``(header, batches)`` of the split: lists of records, each a (key bytes, value bytes),
    its value decompressed; the file is open until the block ends."""
    with _open(split.url, storage_options, size=split.file_size, cache_type="none") as f:
        if split.start == 0:  # the header's read goes on into the records: one ranged GET, not two
            cur = _Cursor(f, split.url, 0, max(split.end, min(split.file_size, 1 << 16)))
            header = _header(cur, split.url)
            yield header, _records(cur, header, split) if header.end < split.end else iter(())
            return
        header = read_header(f, split.url, split.file_size)
        begin = header.end if split.start <= header.end else _find_sync(f, split, header.sync)
        if begin >= split.end:
            yield header, iter(())
            return
        yield header, _records(_Cursor(f, split.url, begin, split.end), header, split)


def _find_sync(f: BinaryIO, split: SequenceSplit, sync: bytes) -> int:
    # Hadoop's Reader.sync(start): the first marker whose entry starts at or after ``start``;
    # only one that starts before ``end`` gives the split anything to read
    pos, stop = split.start + 4, min(split.end + 4 + SYNC_SIZE, split.file_size)
    f.seek(pos)
    carry = b""
    while pos < stop:
        block = f.read(min(BLOCK_SIZE, stop - pos))
        if not block:
            break
        window = carry + block
        at = window.find(sync)
        if at >= 0:
            return pos - len(carry) + at - 4
        carry = window[-(SYNC_SIZE - 1):]
        pos += len(block)
    return split.file_size


_RECORD_HEAD = struct.Struct(">ii")


def _records(cur: _Cursor, header: Header, split: SequenceSplit) -> Iterator[list[tuple[bytes, bytes]]]:
    # Lists of records, one per buffer of the file (a block-compressed file: one per block), so
    # that the loop over a buffer's records runs with no call but the unpack per record.
    decompress = _CODECS[header.codec][1] if header.codec else None
    head = _RECORD_HEAD.unpack_from
    while cur.pos < split.file_size and cur.has(4):
        buf, i = cur.buf, cur.pos - cur.base
        batch = []
        while i + 8 <= len(buf):
            length, key_length = head(buf, i)
            if length == -1 or length < 0 or not 0 <= key_length <= length or i + 8 + length > len(buf):
                break
            batch.append((buf[i + 8:i + 8 + key_length], buf[i + 8 + key_length:i + 8 + length]))
            i += 8 + length
        cur.pos = cur.base + i
        if batch:
            if decompress is not None:
                batch = [(k, _inflate(decompress, v, split.url, cur.pos)) for k, v in batch]
            yield batch
            continue
        at = cur.pos  # the next entry is a sync, a record past the buffer, or damage
        length = cur.int()
        if length == -1:  # a sync entry: past the end, the next split's records start here
            if at >= split.end:
                return
            if cur.take(SYNC_SIZE) != header.sync:
                raise ValueError(f"{split.url} is corrupt at byte {at}: a sync entry with the wrong marker")
            if header.blocks:
                yield _block(cur, decompress, split.url)
            continue
        if header.blocks or length < 0:
            raise ValueError(f"{split.url} is corrupt at byte {at}: a record length of {length}")
        key_length = cur.int()
        if not 0 <= key_length <= length:
            raise ValueError(f"{split.url} is corrupt at byte {at}: a key of {key_length} bytes in a "
                             f"{length}-byte record")
        data = cur.take(length)
        value = data[key_length:]
        yield [(data[:key_length], _inflate(decompress, value, split.url, at) if decompress else value)]


def _block(cur: _Cursor, decompress: Any, url: str) -> list[tuple[bytes, bytes]]:
    at = cur.pos
    count = cur.vlong()
    key_lengths, keys, value_lengths, values = (_inflate(decompress, cur.take(cur.vlong()), url, at)
                                                for _ in range(4))
    out = []
    k = v = kp = vp = 0
    read = writables.read_vlong
    for _ in range(count):
        kn, kp = read(key_lengths, kp)
        vn, vp = read(value_lengths, vp)
        out.append((keys[k:k + kn], values[v:v + vn]))
        k += kn
        v += vn
    if k != len(keys) or v != len(values):
        raise ValueError(f"{url} is corrupt at byte {at}: a block's lengths do not add up to its data")
    return out


def _inflate(decompress: Callable[[bytes], bytes], data: bytes, url: str, at: int) -> bytes:
    try:
        return decompress(data)
    except Exception as e:
        raise ValueError(f"{url} is corrupt at byte {at}: compressed data that does not decompress ({e})") from e


class SequenceWriter:
    """Records appended to ``f`` as a sequence file: uncompressed, or block-compressed with
    ``codec`` (Spark block-compresses whenever a codec is given); ``close`` writes the last block.

    >>> import io; out = io.BytesIO()
    >>> w = SequenceWriter(out, writables.TEXT, writables.INT)
    >>> w.append(writables.encode("a")[1], writables.encode(1)[1]); w.close()
    >>> out.getvalue()[:4]
    b'SEQ\\x06'
    """

    def __init__(self, f: BinaryIO, key_class: str, value_class: str, codec: str | None = None,
                 block_size: int = BLOCK_BYTES):
        if codec is not None and codec not in _CODECS:
            raise ValueError(f"unknown sequence file codec {codec!r}; use one of {', '.join(_CODECS)}")
        self.f, self.key_class, self.value_class = f, key_class, value_class
        self._compress = _CODECS[codec][0] if codec else None
        self._block_size = block_size
        self._block: list[list[bytes]] = [[], [], [], []]  # key lengths, keys, value lengths, values
        self._block_bytes = 0
        self.sync = os.urandom(SYNC_SIZE)
        head = [MAGIC, bytes([VERSION]), writables.text_bytes(key_class), writables.text_bytes(value_class),
                b"\x01\x01" if codec else b"\x00\x00"]
        if codec:
            head.append(writables.text_bytes(codec))
        head += [struct.pack(">i", 0), self.sync]  # no metadata
        self.pos = 0
        self._out: list[bytes] = []  # written to ``f`` a megabyte at a time
        self._out_bytes = 0
        self._write(b"".join(head))
        self._last_sync = 0  # as Hadoop's writer: the first entry comes after SYNC_INTERVAL bytes

    def _write(self, data: bytes) -> None:
        self._out.append(data)
        self.pos += len(data)
        self._out_bytes += len(data)
        if self._out_bytes >= 1 << 20:
            self._drain()

    def _drain(self) -> None:
        self.f.write(b"".join(self._out))
        self._out, self._out_bytes = [], 0

    def append(self, key: bytes, value: bytes) -> None:
        if self._compress is not None:
            lengths, keys, value_lengths, values = self._block
            lengths.append(writables.vlong_bytes(len(key)))
            keys.append(key)
            value_lengths.append(writables.vlong_bytes(len(value)))
            values.append(value)
            self._block_bytes += len(key) + len(value)
            if self._block_bytes >= self._block_size:
                self._flush_block()
            return
        if self.pos >= self._last_sync + SYNC_INTERVAL:
            self._write(b"\xff\xff\xff\xff" + self.sync)
            self._last_sync = self.pos
        self._write(struct.pack(">ii", len(key) + len(value), len(key)) + key + value)

    def _flush_block(self) -> None:
        count = len(self._block[0])
        if not count:
            return
        parts = [b"\xff\xff\xff\xff", self.sync, writables.vlong_bytes(count)]
        for buffer in self._block:
            data = self._compress(b"".join(buffer))
            parts += [writables.vlong_bytes(len(data)), data]
        self._write(b"".join(parts))
        self._block, self._block_bytes = [[], [], [], []], 0

    def close(self) -> None:
        """Write what is still buffered (and a block-compressed file's last block); ``f`` stays open."""
        if self._compress is not None:
            self._flush_block()
        self._drain()


# Java's serialization of a ``byte[][]``: Spark's ``saveAsObjectFile`` stores each group of
# (up to 10) pickled batches as one, in a BytesWritable.
_STREAM = b"\xac\xed\x00\x05"
_OUTER = b"\x75\x72\x00\x03[[B\x4b\xfd\x19\x15\x67\x67\xdb\x37\x02\x00\x00\x78\x70"
_INNER = b"\x75\x72\x00\x02[B\xac\xf3\x17\xf8\x06\x08\x54\xe0\x02\x00\x00\x78\x70"
_INNER_AGAIN = b"\x75\x71\x00\x7e\x00\x02"  # the inner class by its handle


def java_byte_arrays(arrays: list[bytes]) -> bytes:
    """``arrays`` as Java's ObjectOutputStream writes a ``byte[][]``."""
    out = [_STREAM, _OUTER, struct.pack(">i", len(arrays))]
    for i, data in enumerate(arrays):
        out += [_INNER_AGAIN if i else _INNER, struct.pack(">i", len(data)), data]
    return b"".join(out)


def read_java_byte_arrays(data: bytes) -> list[bytes]:
    """The ``byte[]`` elements of a Java-serialized ``byte[][]`` (what ``java_byte_arrays`` writes)."""
    if not data.startswith(_STREAM + _OUTER):
        raise ValueError("a value that is not a Java-serialized byte[][] (Spark's object file format)")
    pos = len(_STREAM) + len(_OUTER)
    (count,) = struct.unpack_from(">i", data, pos)
    pos += 4
    arrays = []
    for i in range(count):
        head = _INNER if i == 0 else _INNER_AGAIN
        if data[pos:pos + len(head)] != head:
            raise ValueError(f"element {i} of a serialized byte[][] is not a byte[]")
        pos += len(head)
        (n,) = struct.unpack_from(">i", data, pos)
        arrays.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    if pos != len(data):
        raise ValueError("a serialized byte[][] with bytes left after its last element")
    return arrays
