"""Hadoop's Writable encodings, the values a sequence file holds, as PySpark turns them into Python.

State: none.

Policy (PySpark's ``WritableToJavaConverter`` on reading, ``JavaToWritableConverter`` on
writing, with Pyrolite between Java and Python):

* Reading: ``Text`` is ``str`` (invalid UTF-8 replaced, as ``Text.toString`` does),
  ``IntWritable``/``LongWritable``/``ShortWritable``/``ByteWritable``/``VIntWritable``/
  ``VLongWritable`` are ``int``, ``DoubleWritable``/``FloatWritable`` ``float``,
  ``BooleanWritable`` ``bool``, ``BytesWritable`` ``bytearray``, ``NullWritable`` ``None``
  and ``MapWritable`` a ``dict`` of those.  Any other class (an ``ArrayWritable`` needs a
  subclass to say its element class, so not even Hadoop can read one generically) is a
  ``ValueError`` that names it.
* Writing: ``bool`` is ``BooleanWritable``; an ``int`` that fits 32 bits ``IntWritable``
  (Pyrolite makes it a Java ``Integer``), a larger one ``LongWritable``; ``float``
  ``DoubleWritable``; ``str`` ``Text``; ``bytes``/``bytearray`` ``BytesWritable``; ``None``
  ``NullWritable``; ``dict`` ``MapWritable``.  Anything else is a ``TypeError``, as PySpark
  refuses it ("Data of type ... cannot be used").

Promise: ``decode(name, encode(v)[1])`` equals ``v`` for every value ``writable_of`` accepts
(bytes come back as ``bytearray``, as in PySpark).
"""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any, Callable

_IO = "org.apache.hadoop.io."
TEXT, INT, LONG, DOUBLE, FLOAT = (_IO + n for n in ("Text", "IntWritable", "LongWritable", "DoubleWritable",
                                                     "FloatWritable"))
BOOLEAN, BYTES, NULL, MAP = (_IO + n for n in ("BooleanWritable", "BytesWritable", "NullWritable", "MapWritable"))

# AbstractMapWritable's ids for the classes every MapWritable knows without naming them
_MAP_IDS = {-127: _IO + "ArrayWritable", -126: BOOLEAN, -125: BYTES, -124: FLOAT, -123: INT, -122: LONG,
            -121: MAP, -120: _IO + "MD5Hash", -119: NULL, -118: _IO + "ObjectWritable",
            -117: _IO + "SortedMapWritable", -116: TEXT, -115: _IO + "TwoDArrayWritable",
            -114: _IO + "VIntWritable", -113: _IO + "VLongWritable"}
_ID_OF = {name: i for i, name in _MAP_IDS.items()}


def read_vlong(buf: bytes, pos: int) -> tuple[int, int]:
    """Hadoop's ``WritableUtils.readVLong`` at ``pos``: (value, position after it).

    >>> read_vlong(bytes([5]), 0), read_vlong(bytes([0x8e, 1, 0]), 0)
    ((5, 1), (256, 3))
    """
    first = buf[pos] - 256 if buf[pos] > 127 else buf[pos]
    if first >= -112:
        return first, pos + 1
    size = vlong_size(buf[pos])
    if pos + size > len(buf):
        raise ValueError("a variable-length integer runs past the end of its buffer")
    value = int.from_bytes(buf[pos + 1:pos + size], "big")
    return (value ^ -1 if first < -120 else value), pos + size


def vlong_size(first: int) -> int:
    """How many bytes a variable-length integer takes, from its first byte (0-255).

    >>> vlong_size(5), vlong_size(0x8e)
    (1, 3)
    """
    b = first - 256 if first > 127 else first
    if b >= -112:
        return 1
    return -119 - b if b < -120 else -111 - b


def vlong_bytes(n: int) -> bytes:
    """Hadoop's ``WritableUtils.writeVLong``.

    >>> vlong_bytes(5), vlong_bytes(256), vlong_bytes(-1000)
    (b'\\x05', b'\\x8e\\x01\\x00', b'\\x86\\x03\\xe7')
    """
    if -112 <= n <= 127:
        return struct.pack(">b", n)
    prefix = -112
    if n < 0:
        n ^= -1
        prefix = -120
    size = (n.bit_length() + 7) // 8
    return struct.pack(">b", prefix - size) + n.to_bytes(size, "big")


def read_text(buf: bytes, pos: int) -> tuple[str, int]:
    """A ``Text`` at ``pos``: (string, position after it)."""
    n, pos = read_vlong(buf, pos)
    if n < 0 or pos + n > len(buf):
        raise ValueError("a Text runs past the end of its buffer")
    return bytes(buf[pos:pos + n]).decode("utf-8", "replace"), pos + n


def text_bytes(s: str) -> bytes:
    data = s.encode("utf-8", "replace")  # a lone surrogate becomes '?', as Java's encoder makes it
    return vlong_bytes(len(data)) + data


def _fixed(fmt: str, convert: Callable[[Any], Any] = lambda v: v) -> Callable[[bytes, int], tuple[Any, int]]:
    size = struct.calcsize(fmt)

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        if pos + size > len(buf):
            raise ValueError(f"a {size}-byte value runs past the end of its buffer")
        return convert(struct.unpack_from(fmt, buf, pos)[0]), pos + size
    return read


def _bytes(buf: bytes, pos: int) -> tuple[bytearray, int]:
    (n,) = struct.unpack_from(">i", buf, pos)
    if n < 0 or pos + 4 + n > len(buf):
        raise ValueError("a BytesWritable runs past the end of its buffer")
    return bytearray(buf[pos + 4:pos + 4 + n]), pos + 4 + n


def _map(buf: bytes, pos: int) -> tuple[dict, int]:
    # AbstractMapWritable: the classes it names (id, Java UTF name), then MapWritable's entries
    ids = dict(_MAP_IDS)
    count, pos = buf[pos], pos + 1
    for _ in range(count):
        class_id = struct.unpack_from(">b", buf, pos)[0]
        (n,) = struct.unpack_from(">H", buf, pos + 1)
        ids[class_id] = bytes(buf[pos + 3:pos + 3 + n]).decode("utf-8", "replace")
        pos += 3 + n
    (entries,) = struct.unpack_from(">i", buf, pos)
    pos += 4
    out: dict = {}
    for _ in range(entries):
        key, pos = reader(ids.get(struct.unpack_from(">b", buf, pos)[0], "?"))(buf, pos + 1)
        value, pos = reader(ids.get(struct.unpack_from(">b", buf, pos)[0], "?"))(buf, pos + 1)
        out[key] = value
    return out, pos


_READERS: dict[str, Callable[[bytes, int], tuple[Any, int]]] = {
    TEXT: read_text, INT: _fixed(">i"), LONG: _fixed(">q"), DOUBLE: _fixed(">d"), FLOAT: _fixed(">f"),
    BOOLEAN: _fixed(">?"), BYTES: _bytes, NULL: lambda buf, pos: (None, pos), MAP: _map,
    _IO + "ShortWritable": _fixed(">h"), _IO + "ByteWritable": _fixed(">b"),
    _IO + "VIntWritable": read_vlong, _IO + "VLongWritable": read_vlong,
}


def reader(class_name: str) -> Callable[[bytes, int], tuple[Any, int]]:
    """``read(buf, pos) -> (value, position after it)`` for a Writable class; ValueError for one
    dagrun cannot decode."""
    try:
        return _READERS[class_name]
    except KeyError:
        known = ", ".join(sorted(n.rsplit(".", 1)[-1] for n in _READERS))
        raise ValueError(f"values of class {class_name} cannot be decoded; dagrun reads the Writables PySpark "
                         f"converts: {known}") from None


def check_class(class_name: str | None, role: str) -> None:
    """ValueError for a Writable class name that is not one of Hadoop's (PySpark fails to load it);
    None (not given) passes."""
    if class_name is not None and class_name not in _READERS and class_name not in _ID_OF:
        raise ValueError(f"{role}={class_name!r} is not a Writable class dagrun knows; sequence files here hold "
                         f"{', '.join(sorted(n.rsplit('.', 1)[1] for n in _READERS))} (org.apache.hadoop.io.*)")


def decode(class_name: str, data: bytes) -> Any:
    """The Python value of one serialized Writable that fills ``data``."""
    return decoder(class_name)(data)


def decoder(class_name: str) -> Callable[[bytes], Any]:
    """``decode`` for one class, made once: the common classes take one C call per value."""
    fast = _WHOLE.get(class_name)
    if fast is not None:
        return fast
    read, short = reader(class_name), class_name.rsplit(".", 1)[-1]

    def whole(data: bytes) -> Any:
        value, end = read(data, 0)
        if end != len(data):
            raise ValueError(f"a {short} of {len(data)} bytes held {len(data) - end} bytes more than its value")
        return value
    return whole


def _sized(size: int, convert: Callable[[bytes], Any], short: str) -> Callable[[bytes], Any]:
    def whole(data: bytes) -> Any:
        if len(data) != size:
            raise ValueError(f"a {short} of {len(data)} bytes, where it takes {size}")
        return convert(data)
    return whole


def _whole_text(data: bytes) -> str:
    if data and data[0] < 128 and data[0] + 1 == len(data):  # a length under 128: one byte
        return data[1:].decode("utf-8", "replace")
    text, end = read_text(data, 0)
    if end != len(data):
        raise ValueError(f"a Text of {len(data)} bytes held {len(data) - end} bytes more than its value")
    return text


_WHOLE: dict[str, Callable[[bytes], Any]] = {
    TEXT: _whole_text,
    INT: _sized(4, lambda b: int.from_bytes(b, "big", signed=True), "IntWritable"),
    LONG: _sized(8, lambda b: int.from_bytes(b, "big", signed=True), "LongWritable"),
    DOUBLE: _sized(8, lambda b: struct.unpack(">d", b)[0], "DoubleWritable"),
    NULL: _sized(0, lambda b: None, "NullWritable"),
}


_CLASS_OF: dict[type, str] = {float: DOUBLE, str: TEXT, bytes: BYTES, bytearray: BYTES, type(None): NULL, dict: MAP}


def writable_of(value: Any, role: str = "value") -> str:
    """The Writable class PySpark stores ``value`` as; TypeError for a value it cannot store.

    >>> writable_of(7).rsplit(".", 1)[1], writable_of(2 ** 40).rsplit(".", 1)[1]
    ('IntWritable', 'LongWritable')
    """
    kind = type(value)
    if kind is bool:
        return BOOLEAN
    if kind is int:
        if -2 ** 31 <= value < 2 ** 31:
            return INT
        if -2 ** 63 <= value < 2 ** 63:
            return LONG
        raise TypeError(f"the {role} {value} does not fit a LongWritable (64 bits); store it as a str")
    found = _CLASS_OF.get(kind)
    if found is None:
        raise TypeError(f"a {kind.__name__} {role} cannot be stored in a sequence file: it holds str, int, float, "
                        "bool, bytes, bytearray, None and dicts of these (as PySpark's saveAsSequenceFile); "
                        "convert it first, or use saveAsPickleFile")
    return found


def encode(value: Any, role: str = "value") -> tuple[str, bytes]:
    """(Writable class, serialized bytes) of ``value``."""
    name = writable_of(value, role)
    if name == MAP:
        return name, _map_bytes(value, role)
    return name, _WRITERS[name](value)


_WRITERS: dict[str, Callable[[Any], bytes]] = {
    TEXT: text_bytes, INT: lambda v: struct.pack(">i", v), LONG: lambda v: struct.pack(">q", v),
    DOUBLE: lambda v: struct.pack(">d", v), BOOLEAN: lambda v: b"\x01" if v else b"\x00",
    BYTES: lambda v: struct.pack(">i", len(v)) + bytes(v), NULL: lambda v: b"",
}


_TYPES_OF: dict[str, tuple[type, ...]] = {
    **{name: tuple(t for t, n in _CLASS_OF.items() if n == name) for name in _CLASS_OF.values()},
    INT: (int,), LONG: (int,), BOOLEAN: (bool,)}


def encoder(class_name: str, role: str) -> Callable[[Any], bytes]:
    """``value -> bytes`` for values that are stored as ``class_name``, made once; a value
    that PySpark would store as another class is a TypeError saying which (Hadoop refuses a
    second class in one file: "wrong key class")."""
    write, types = _WRITERS.get(class_name), _TYPES_OF.get(class_name, ())

    def mismatch(value: Any) -> bytes:
        name, data = encode(value, role)
        if name != class_name:
            raise TypeError(f"a sequence file holds one class of key and one of value, taken from the RDD's first "
                            f"pair: this {role} {value!r:.80} is a {name.rsplit('.', 1)[1]}, not a "
                            f"{class_name.rsplit('.', 1)[1]} (Hadoop's 'wrong {role} class'); map the elements "
                            "to one type first")
        return data

    def fast(value: Any) -> bytes:
        if type(value) in types and (class_name != INT or -2 ** 31 <= value < 2 ** 31):
            return write(value)
        return mismatch(value)
    return fast if write is not None else mismatch


def _map_bytes(mapping: dict, role: str) -> bytes:
    entries = [(encode(k, f"{role}'s key"), encode(v, f"{role}'s value")) for k, v in mapping.items()]
    named = [n for n in dict.fromkeys(n for pair in entries for n, _ in pair) if n not in _ID_OF]
    ids = {**_ID_OF, **{n: i + 1 for i, n in enumerate(named)}}  # new classes are 1, 2, ... in order
    out = [bytes([len(named)])]
    for name in named:
        utf = name.encode()
        out.append(struct.pack(">bH", ids[name], len(utf)) + utf)
    out.append(struct.pack(">i", len(entries)))
    for (kn, kb), (vn, vb) in entries:
        out.append(struct.pack(">b", ids[kn]) + kb + struct.pack(">b", ids[vn]) + vb)
    return b"".join(out)


def java_string(value: Any) -> str:
    """``toString()`` of the Writable PySpark makes of ``value``: what Hadoop's TextOutputFormat
    writes (``True`` -> ``true``, ``1e-05`` -> ``1.0E-5``, bytes as hex pairs, a dict as
    ``{k=v, ...}``).

    >>> [java_string(v) for v in (True, 7, 0.5, 1e7, 1e-5, b"ab", {"a": 1})]
    ['true', '7', '0.5', '1.0E7', '1.0E-5', '61 62', '{a=1}']
    """
    name = writable_of(value)
    if name == BOOLEAN:
        return "true" if value else "false"
    if name == DOUBLE:
        return _java_double(value)
    if name == BYTES:
        return " ".join(f"{b:02x}" for b in bytes(value))
    if name == NULL:
        return "(null)"
    if name == MAP:
        return "{" + ", ".join(f"{java_string(k)}={java_string(v)}" for k, v in value.items()) + "}"
    return str(value)


def _java_double(x: float) -> str:
    # Java's Double.toString: plain from 10^-3 up to 10^7, else d.dddE<n>, with the shortest
    # digits that read back (which Python's repr gives too)
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0 or 1e-3 <= abs(x) < 1e7:
        return repr(x)
    sign, digits, exponent = Decimal(repr(x)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    power = len(digits) + int(exponent) - 1
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{power}"
