"""Splitting a bzip2 file as Hadoop's ``BZip2Codec`` does: by compressed blocks, found by their magic.

State: none between calls; a reader holds the compressed bytes from its current block on.

Policy.  A bzip2 file is one or more streams (``BZh`` and a level digit, then blocks, then an
end-of-stream marker and the stream's CRC), and every block starts with the 48-bit magic
``0x314159265359`` at any bit offset, the end-of-stream marker with ``0x177245385090``.
``text_file`` plans a ``.bz2`` file into byte ranges as it plans plain text, and the range
``[s, e)`` owns the blocks whose magic starts at a bit in ``[8s, 8e)``, except that the
file's first block (at byte 4, after the header) is always the first range's, as in Hadoop's
``BZip2CompressionInputStream``, which skips it in a range starting inside the header.  Each block is
decompressed alone, as the one block of a stream made for it: the block's bits realigned
after ``BZh9``, then an end-of-stream marker whose CRC is the block's own (a one-block
stream's combined CRC).  A block ends where the next magic of either kind starts.  The
magic can occur by chance inside compressed data (once in 2**48 bit positions): a block that
does not decompress up to the next magic is tried up to the one after, and so on, and a
split's first candidate that never decompresses is taken for such a chance match and left to
the split before it, whose block then runs over it.

The line rule over the decompressed text is the plain-text one (``dagrun.runtime.inputs``),
with the split's decompressed data, ``[D_i, D_j)``, in place of its byte range: a split
whose data starts the file owns the line at 0, every other split skips through the first
line ending at or after ``D_i``, and every split reads the blocks after its own only up to
the first line ending at or after ``D_j``.  So the splits' lines, concatenated in order, are
the file's lines, and a split that owns no block owns no line.

Promise: ``owned_text`` gives the decompressed bytes a split reads, lone ``\\r`` endings
already turned into ``\\n``, and whether they start at the file's first byte; a file that is
not bzip2, is cut short or is corrupt raises ``ValueError`` naming the file and the byte.
"""

from __future__ import annotations

import bz2
from collections.abc import Iterator
from itertools import chain

from dagrun.runtime.lines import lone_crs_as_newlines

BLOCK_MAGIC = 0x314159265359
END_MAGIC = 0x177245385090
FIRST_BLOCK_BIT = 32  # after the stream header "BZh1".."BZh9"
MAX_CHANCE_MAGICS = 3  # chance magics a block may run over before it counts as corrupt


def _patterns() -> list[tuple[bool, int, bytes, int, int, int, int, int]]:
    """For each magic and bit shift: (is block, shift, the 5 or 6 whole bytes to search for,
    where they sit after the magic's first byte, and the masks and values of its partial bytes)."""
    out = []
    for is_block, magic in ((True, BLOCK_MAGIC), (False, END_MAGIC)):
        for shift in range(8):
            window = (magic << (8 - shift)).to_bytes(7, "big")  # magic at bit `shift` of 7 bytes
            if shift == 0:
                out.append((is_block, 0, window[:6], 0, 0, 0, 0, 0))
            else:
                first_mask, last_mask = (1 << (8 - shift)) - 1, (0xFF << (8 - shift)) & 0xFF
                out.append((is_block, shift, window[1:6], 1, first_mask, window[0] & first_mask,
                            last_mask, window[6] & last_mask))
    return out


_PATTERNS = _patterns()


class _Magics:
    """The magics of a bzip2 file from byte ``base`` on, in order, found as chunks are read.

    ``found`` holds ``(bit, is_block)`` for each magic not yet dropped; ``buf`` the file's
    bytes from ``base`` on, kept from the first pending magic (or the search front)."""

    def __init__(self, chunks: Iterator[bytes], base: int) -> None:
        self._chunks = chunks
        self.buf, self.base, self._searched, self._eof = b"", base, base, False
        self.found: list[tuple[int, bool]] = []

    def get(self, i: int) -> tuple[int, bool] | None:
        """The ``i``-th pending magic, reading on until it is found; None at end of file."""
        while len(self.found) <= i and self._read():
            pass
        return self.found[i] if i < len(self.found) else None

    def head(self, n: int) -> bytes:
        """The first ``n`` bytes from ``base`` (fewer at end of file); call before any ``drop``."""
        while len(self.buf) < n and self._read():
            pass
        return self.buf[:n]

    def drop(self, n: int) -> None:
        """Forget the first ``n`` pending magics, and the bytes before the next."""
        del self.found[:n]
        keep = min(self.found[0][0] // 8 if self.found else self._searched, self._searched)
        if keep - self.base > (1 << 20):  # trimmed in large steps: each trim copies the rest
            self.buf, self.base = self.buf[keep - self.base :], keep

    def bits(self, start: int, end: int) -> int:
        """The file's bits ``[start, end)`` as an integer."""
        lo, hi = start // 8 - self.base, (end + 7) // 8 - self.base
        whole = int.from_bytes(self.buf[lo:hi], "big")
        return (whole >> ((hi - lo) * 8 - start % 8 - (end - start))) & ((1 << (end - start)) - 1)

    def _read(self) -> bool:
        if self._eof:
            return False
        chunk = next(self._chunks, None)
        if chunk is None:
            self._eof = True
        else:
            self.buf += chunk
        # A magic is whole once the 7 bytes from its first one are here (6 for shift 0).
        limit = self.base + len(self.buf) - (0 if self._eof else 6)
        self._search(self._searched, limit)
        self._searched = max(self._searched, limit)
        return chunk is not None

    def _search(self, lo: int, hi: int) -> None:
        """Find the magics whose first byte is in ``[lo, hi)``."""
        if hi <= lo:
            return
        buf, base, hits = self.buf, self.base, []
        for is_block, shift, needle, off, first_mask, first, last_mask, last in _PATTERNS:
            j = buf.find(needle, lo - base + off, hi - base + off + len(needle) - 1)
            while j >= 0:
                b = j - off
                if shift == 0 or (b >= lo - base and b + 6 < len(buf) and buf[b] & first_mask == first
                                  and buf[b + 6] & last_mask == last):
                    hits.append((8 * (base + b) + shift, is_block))
                j = buf.find(needle, j + 1, hi - base + off + len(needle) - 1)
        self.found.extend(sorted(hits))


def _decompress_block(magics: _Magics, start: int, end: int) -> bytes:
    """Bits ``[start, end)`` (one block, magic first) decompressed as a one-block stream."""
    length = end - start
    block = magics.bits(start, end)
    crc = (block >> (length - 80)) & 0xFFFFFFFF  # the 32 bits after the 48-bit magic
    stream = (((block << 48) | END_MAGIC) << 32) | crc
    pad = -(length + 80) % 8
    return bz2.decompress(b"BZh9" + (stream << pad).to_bytes((length + 80 + pad) // 8, "big"))


def _decoded_blocks(magics: _Magics, url: str) -> Iterator[tuple[int, bytes]]:
    """``(bit where the block starts, its data)`` for each block from ``magics.base`` on."""
    first = True
    while (magic := magics.get(0)) is not None:
        start, is_block = magic
        if not is_block:
            magics.drop(1)
            continue
        data, ends_tried = None, 0
        for j in range(1, 2 + MAX_CHANCE_MAGICS):
            end = magics.get(j)
            if end is None:
                break
            ends_tried = j
            if end[0] - start < 80:
                continue
            try:
                data = _decompress_block(magics, start, end[0])
                break
            except (OSError, ValueError, EOFError):
                continue
        if data is None:
            if first and start != FIRST_BLOCK_BIT and ends_tried:
                magics.drop(1)  # a chance match inside the block the split before owns
                first = False
                continue
            what = "ends without an end-of-stream marker" if not ends_tried else "does not decompress"
            raise ValueError(f"{url} is not a valid bzip2 file: the block at byte {start // 8} {what}; "
                             "the file may be cut short or corrupt (rename it if it is not compressed)")
        first = False
        yield start, data
        magics.drop(j)


def owned_text(chunks: Iterator[bytes], start: int, end: int, url: str) -> tuple[bool, Iterator[bytes]]:
    """Whether a split's text starts the file, and the decompressed bytes it reads (see above).

    ``chunks`` are the file's bytes from ``start`` on, through its end if need be; ``[start,
    end)`` is the split's byte range.

    >>> import bz2
    >>> data = bz2.compress(b"a\\nb\\n")
    >>> at_start, text = owned_text(iter([data]), 0, len(data), "x.bz2")
    >>> at_start, b"".join(text)
    (True, b'a\\nb\\n')
    """
    magics = _Magics(chunks, start)
    end_bit = 8 * end
    if start == 0:
        header = magics.head(4)
        if len(header) < 4 or header[:3] != b"BZh" or header[3:] not in b"123456789":
            raise ValueError(f"{url} is not a bzip2 file (it does not start with 'BZh' and a level "
                             "digit); rename it if it is not compressed")
        end_bit = max(end_bit, FIRST_BLOCK_BIT + 1)  # the first split owns the first block, however short
    elif start <= FIRST_BLOCK_BIT // 8 and (magic := magics.get(0)) is not None and magic[0] == FIRST_BLOCK_BIT:
        magics.drop(1)  # so no split but the first does, as in Hadoop
    if not _starts_a_block_before(magics, end_bit):
        return False, iter(())  # and no block is decompressed only to be left to the next split
    blocks = _decoded_blocks(magics, url)
    first = next(blocks, None)
    if first is None or first[0] >= end_bit:
        return False, iter(())
    return first[0] == FIRST_BLOCK_BIT, _through_line_after_own(chain((first,), blocks), end_bit)


def _starts_a_block_before(magics: _Magics, end_bit: int) -> bool:
    i = 0
    while (magic := magics.get(i)) is not None and magic[0] < end_bit:
        if magic[1]:
            return True
        i += 1
    return False


def _through_line_after_own(blocks: Iterator[tuple[int, bytes]], end_bit: int) -> Iterator[bytes]:
    """The data of the split's blocks, then of later blocks through the first ``\\n`` at or
    after the split's data ends (lone ``\\r`` endings turned into ``\\n`` first)."""
    own_length: int | None = None  # known once the first later block is reached

    def data() -> Iterator[bytes]:
        nonlocal own_length
        length = 0
        for bit, block in blocks:
            if bit >= end_bit and own_length is None:
                own_length = length
            length += len(block)
            yield block

    pos = 0
    for block in lone_crs_as_newlines(data()):
        if own_length is not None and pos + len(block) > own_length:
            nl = block.find(b"\n", max(0, own_length - pos))
            if nl >= 0:
                yield block[: nl + 1]
                return
        yield block
        pos += len(block)
