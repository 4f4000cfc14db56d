"""Spark's ``XORShiftRandom``, for results that PySpark draws from the JVM's random numbers.

State: none beyond each generator's 64-bit seed.

Policy: bit for bit what Spark computes: the seed is hashed with Scala's
``MurmurHash3.bytesHash`` of its 8 big-endian bytes (low word with the array seed, high word
seeded by the low one), each step is the xorshift ``x ^= x << 21; x ^= x >>> 35; x ^= x << 4``
on 64 bits, and ``next_int(bound)`` is ``java.util.Random.nextInt(bound)`` over those bits.
``repartition`` uses it for where each map task starts dealing (Spark's
``distributePartition``).

Promise: ``XORShiftRandom(seed).next_int(n)`` equals Spark's
``new XORShiftRandom(seed).nextInt(n)`` for every long ``seed`` and ``n >= 1``.
"""

from __future__ import annotations

__all__ = ["XORShiftRandom"]

_M32, _M64 = (1 << 32) - 1, (1 << 64) - 1
_ARRAY_SEED = 0x3C074A61  # scala.util.hashing.MurmurHash3.arraySeed


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def _mix_last(h: int, k: int) -> int:
    k = (k * 0xCC9E2D51) & _M32
    k = _rotl32(k, 15)
    return h ^ ((k * 0x1B873593) & _M32)


def _bytes_hash(data: bytes, seed: int) -> int:
    # MurmurHash3.bytesHash for a length that is a multiple of 4 (8 here): no tail
    h = seed
    for i in range(0, len(data), 4):
        h = _rotl32(_mix_last(h, int.from_bytes(data[i:i + 4], "little")), 13)
        h = (h * 5 + 0xE6546B64) & _M32
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


class XORShiftRandom:
    """>>> XORShiftRandom(0).next_int(3) in range(3)
    True"""

    def __init__(self, seed: int) -> None:
        data = (seed & _M64).to_bytes(8, "big")
        low = _bytes_hash(data, _ARRAY_SEED)
        high = _bytes_hash(data, low)
        self._seed = (high << 32) | low

    def _next(self, bits: int) -> int:
        x = self._seed
        x ^= (x << 21) & _M64
        x ^= x >> 35
        x ^= (x << 4) & _M64
        self._seed = x
        r = x & ((1 << bits) - 1)
        return r - (1 << 32) if r >= 1 << 31 else r  # Java's (int) of the low bits

    def next_int(self, bound: int) -> int:
        """``java.util.Random.nextInt(bound)``: uniform in ``[0, bound)``."""
        if bound < 1:
            raise ValueError(f"bound must be positive, got {bound}")
        r = self._next(31)
        m = bound - 1
        if bound & m == 0:  # a power of two: the high bits
            return (bound * r) >> 31
        u = r
        while True:
            r = u % bound
            if u - r + m < 1 << 31:  # Java's int overflow test: u - r + m < 0 as a 32-bit int
                return r
            u = self._next(31)
