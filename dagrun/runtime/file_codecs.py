"""The compression of text input and output files, chosen by suffix as Hadoop's codecs are.

State: none (importing this module registers ``deflate`` with fsspec, for writing).

Policy: ``.gz`` is gzip, ``.bz2`` bzip2, ``.deflate`` a zlib stream (Hadoop's
``DefaultCodec``, which PySpark reads and writes), ``.zst`` Zstandard (Hadoop's
``ZStandardCodec``, which needs Hadoop's native library in PySpark; dagrun has the
``zstandard`` package).  A file of several concatenated streams reads as their data in turn,
as Hadoop's readers give it.  Any other suffix is not compressed: ``.xz``, for one, reads as
its bytes, as in PySpark.

Promise: ``open_decompressed`` and ``decompress`` give the decompressed bytes or raise
``ValueError`` naming the file; a writer from ``open_compressed`` closes the file it wraps.
"""

from __future__ import annotations

import bz2
import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import fsspec.compression
import zstandard

COMPRESSION_BY_SUFFIX = {".gz": "gzip", ".bz2": "bz2", ".deflate": "deflate", ".zst": "zstd"}
_READ = 1 << 20


def compression_of(url: str) -> str | None:
    """The compression a file's name says, or None.

    >>> compression_of("s3://b/part-00000.deflate"), compression_of("notes.txt")
    ('deflate', None)
    """
    lowered = url.lower()
    return next((c for suffix, c in COMPRESSION_BY_SUFFIX.items() if lowered.endswith(suffix)), None)


class _StreamsReader(io.RawIOBase):
    """Compressed streams, one after another, decompressed as they are read: ``new()`` makes
    a decompressor for each (zlib's, or zstandard's, which both tell ``eof``)."""

    def __init__(self, raw: BinaryIO, new: Callable[[], Any], bounded: bool) -> None:
        self._raw, self._new, self._bounded = raw, new, bounded
        self._z, self._out, self._started = new(), b"", False

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        while not self._out:
            if self._z.eof:  # a stream ended: another may follow
                data = self._z.unused_data or self._raw.read(_READ)
                if not data:
                    return 0
                self._z = self._new()
            else:
                data = self._z.unconsumed_tail or self._raw.read(_READ)
                if not data:
                    if self._started:
                        raise EOFError("the file ends inside a compressed stream (cut short?)")
                    return 0  # an empty file
            self._started = True
            # zlib's output is bounded (the rest of the input waits in unconsumed_tail)
            self._out = self._z.decompress(data, _READ) if self._bounded else self._z.decompress(data)
        n = min(len(buf), len(self._out))
        buf[:n], self._out = self._out[:n], self._out[n:]
        return n


class _ZlibWriter(io.RawIOBase):
    def __init__(self, raw: BinaryIO) -> None:
        self._raw, self._z = raw, zlib.compressobj()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._raw.write(self._z.compress(data))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.write(self._z.flush())
        super().close()


def _streams(new: Callable[[], Any], bounded: bool) -> Callable[[BinaryIO], BinaryIO]:
    return lambda raw: io.BufferedReader(_StreamsReader(raw, new, bounded), _READ)


_READERS: dict[str, Callable[[BinaryIO], BinaryIO]] = {
    "gzip": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
    "bz2": lambda raw: bz2.BZ2File(raw, mode="rb"),
    "deflate": _streams(zlib.decompressobj, True),
    "zstd": _streams(lambda: zstandard.ZstdDecompressor().decompressobj(), False),
}
_ERRORS = (OSError, EOFError, zlib.error, ValueError, zstandard.ZstdError)


def _deflate_for_fsspec(f: BinaryIO, mode: str = "rb", **kwargs: Any) -> BinaryIO:
    return _READERS["deflate"](f) if "r" in mode else _ZlibWriter(f)


if "deflate" not in fsspec.compression.compr:
    fsspec.compression.register_compression("deflate", _deflate_for_fsspec, "deflate")


@contextmanager
def open_decompressed(raw: BinaryIO, compression: str, url: str) -> Iterator[BinaryIO]:
    """``raw``'s bytes decompressed as a file; read errors become ``ValueError``s naming ``url``."""
    if compression not in _READERS:
        raise ValueError(f"unsupported compression {compression!r} for {url}")
    stream = _READERS[compression](raw)
    try:
        yield _Checked(stream, compression, url)
    finally:
        stream.close()  # none of them closes ``raw``


class _Checked:
    __slots__ = ("_stream", "_what", "_url")

    def __init__(self, stream: BinaryIO, what: str, url: str) -> None:
        self._stream, self._what, self._url = stream, what, url

    def read(self, n: int = -1) -> bytes:
        try:
            return self._stream.read(n)
        except _ERRORS as e:
            raise _invalid(self._url, self._what, e) from e


def _invalid(url: str, compression: str, e: Exception) -> ValueError:
    return ValueError(f"{url} is not a valid {compression} file ({e}); it may be cut short or corrupt "
                      "(rename it if it is not compressed)")


def decompress(data: bytes, compression: str, url: str) -> bytes:
    """A whole compressed file's bytes, decompressed (``compression`` as ``compression_of`` names it)."""
    with open_decompressed(io.BytesIO(data), compression, url) as stream:
        return stream.read()


@contextmanager
def open_compressed(f: BinaryIO, compression: str | None) -> Iterator[BinaryIO]:
    """A writer that compresses into ``f`` (``f`` itself when ``compression`` is None); closed
    on exit, so that its last bytes reach ``f`` before ``f`` is closed."""
    if compression is None:
        yield f
        return
    writer = fsspec.compression.compr[compression](f, mode="wb")
    try:
        yield writer
    finally:
        writer.close()
