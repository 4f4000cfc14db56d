"""Deterministic benchmark and demo input: Zipf text, gensort records, Amplab uservisits.

State: none between calls except process-wide caches of fixed tables.  The word vocabulary,
the Zipf lookup table and the uservisits value pools are built from constant seeds, so every
seed draws from the same values; ``seed`` only changes which values are drawn.

Policy: file ``i`` of a call draws from its own ``random.Random`` seeded by ``(kind, seed, i)``,
so a file never depends on how its siblings were generated.  Randomness is taken in bulk from
``randbytes`` and turned into output by C-level ``bytes.translate``, strided slice assignment,
``map`` and ``join``: no Python code runs per word, line or record (only ``random()`` per
adRevenue and ``Random.choices`` for the ~8% of words from the Zipf tail), which is what lets
pure Python write 1 GB of any kind in well under a minute.

Promise: the same ``(kind, size, seed, files)`` writes byte-identical files (on any machine with
the same Python minor version: only ``randbytes``, ``random()`` and ``shuffle``/``choice`` on
constant seeds are used, and 16-bit draws are read little-endian explicitly).  Each file is
written under a hidden temporary name and moved into place with ``os.replace``, so a reader
never sees a half-written part.  Sizes: ``records`` writes exactly ``size // 100`` records;
``text`` and ``uservisits`` stop at the first line end at or after the target, so each file
overshoots its share of ``size`` by less than one line.

Record layout (``records``), that of ``gensort -a`` (gensort 1.5, ``gen_ascii_rec``)::

    bytes  0..9    key: 10 printable ASCII chars, uniform over ' '..'~' (0x20..0x7E)
    bytes 10..11   two spaces
    bytes 12..43   record number, 32 uppercase hex digits, zero-padded; numbers run on across
                   files (file 1 starts where file 0 stopped), as ``gensort -b`` would
    bytes 44..45   two spaces
    bytes 46..97   filler: 13 uppercase hex digits, each written 4 times ("7777AAAA0000...")
    bytes 98..99   "\\r\\n"

The layout and alphabets match gensort; the bytes do not, because gensort's 128-bit LCG would
cost a Python-level loop per record.  ``valsort`` checks order and duplicates, not the RNG.

Row layout (``uservisits``), the Amplab big-data benchmark's schema (sourceIP, destURL,
visitDate, adRevenue, userAgent, countryCode, languageCode, searchWord, duration)::

    sourceIP      uniform over all 2**32 IPv4 addresses, dotted decimal ("159.90.193.197")
    destURL       "http://<word>.<com|org|net>/<4 words>", one of 65536 fixed URLs
    visitDate     uniform over 1970-01-01 .. 2014-11-09, ISO format
    adRevenue     uniform in [0, 1), 5 decimals
    userAgent     one of 12 agents; countryCode 3 letters; languageCode "XXX-YY"
    searchWord    Zipf-distributed word; duration 1..100

Why these figures: a uniformly random address has 2,255,536 possible SUBSTR(sourceIP, 1, 8)
values, short octets making some far likelier than others.  At the real data's 943,842
groups in 1 GB (the figure of issue 15, measured on Amplab's uservisits) that distribution
implies 6.89 M rows, 145 bytes a row, which is the row length the URL's word count sets
here (145.8 bytes measured): the expected count at 1 GB is then 942,187 groups (271,674
expected and 272,181 measured at 100 MB, seed 0).  At 126.8 GB it predicts 2.14 M groups;
at ~24 bytes a "prefix,sum" output line that is the reference architecture's 51.6 MiB
result file, so the uniform model fits both published figures.  ``groups=N`` (``--groups``)
instead draws sourceIPs from N fixed "a.b." prefixes with two three-digit octets (at most
24,336), the low-cardinality case where a map-side combine collapses the data.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import random
import string
import sys
import time
from array import array
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import getitem
from typing import Callable, Iterable, Literal, get_args

from dagrun.config import parse_bytes

Kind = Literal["text", "records", "uservisits"]
KINDS: tuple[str, ...] = get_args(Kind)
RECORD_SIZE = 100
_SUFFIX = {"text": "txt", "records": "dat", "uservisits": "csv"}
# Rows per chunk: 6..8 MB of output, big enough to amortise each call, small enough for cache.
_CHUNK_RECORDS = _CHUNK_LINES = _CHUNK_ROWS = 1 << 16

# ----------------------------------------------------------------------------- sizes

def parse_size(text: str | int) -> int:
    """``"1GB"`` -> 10**9, ``"100KiB"`` -> 102400: ``dagrun.config.parse_bytes`` without the bare
    K/M/G/T shorthand, kept for callers of this module; the CLI takes every form ``parse_bytes`` does."""
    return parse_bytes(text, shorthand=False)


# ----------------------------------------------------------------------------- random helpers

@functools.lru_cache(maxsize=None)
def _translation(alphabet: bytes) -> tuple[bytes, bytes]:
    """Table and delete-set mapping random bytes uniformly onto ``alphabet`` (rejection)."""
    usable = 256 - 256 % len(alphabet)
    table = bytes(alphabet[b % len(alphabet)] if b < usable else 0 for b in range(256))
    return table, bytes(range(usable, 256))


def _uniform_bytes(rng: random.Random, count: int, alphabet: bytes) -> bytes:
    """``count`` bytes each drawn uniformly from ``alphabet`` (at most 256 symbols)."""
    table, delete = _translation(alphabet)
    keep = 256 - len(delete)
    out = b""
    while len(out) < count:
        need = count - len(out)
        out += rng.randbytes(need * 256 // keep + 64).translate(table, delete)
    return out[:count]


def _u16(rng: random.Random, count: int) -> array:
    """``count`` uniform 16-bit ints, read little-endian so output does not depend on the host."""
    values = array("H", rng.randbytes(2 * count))
    if sys.byteorder == "big":
        values.byteswap()
    return values


def _draw(rng: random.Random, pool: tuple[str, ...], count: int) -> map:
    """Uniform draws from a pool of at most 256 values or of exactly 65536 values."""
    if len(pool) == 1 << 16:
        return map(pool.__getitem__, _u16(rng, count))
    return map(pool.__getitem__, _uniform_bytes(rng, count, bytes(range(len(pool)))))


# ----------------------------------------------------------------------------- vocabulary

# Words per length 1..20: shaped like English (most words 4..9 letters), at least 20 of every
# length so "top 10 words of each length" always has ten candidates.
_LENGTH_COUNTS = (20, 150, 600, 1000, 1200, 1200, 1100, 1000, 800, 650,
                  500, 380, 280, 200, 140, 100, 70, 50, 30, 20)
ZIPF_EXPONENT = 1.1
_VOWELS, _CONSONANTS = "aeiou", "bcdfghjklmnprstvwz"


@functools.lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """The fixed word list, most frequent first (rank r is drawn with weight r ** -1.1).

    Ranks 1..20 hold one word of each length 1..20, shortest first (as "a", "of", "the" lead
    English), so even a few kilobytes of text use every length; later ranks are shuffled.
    """
    rng = random.Random("dagrun-datagen-vocabulary-v1")
    by_length: list[list[str]] = []
    for length, count in enumerate(_LENGTH_COUNTS, start=1):
        chosen: set[str] = set()
        while len(chosen) < count:
            if length <= 2:  # too few pronounceable ones; any letters will do
                word = "".join(rng.choice(string.ascii_lowercase) for _ in range(length))
            else:  # alternate consonants and vowels so the words look like words
                vowel = rng.random() < 0.3
                letters = []
                for _ in range(length):
                    letters.append(rng.choice(_VOWELS if vowel else _CONSONANTS))
                    vowel = not vowel
                word = "".join(letters)
            chosen.add(word)
        words = sorted(chosen)  # sets iterate in a per-process order; sort before shuffling
        rng.shuffle(words)
        by_length.append(words)
    rest = [word for words in by_length for word in words[1:]]
    rng.shuffle(rest)
    return tuple([words[0] for words in by_length] + rest)


_TAIL = "%s"  # head entry meaning "draw from the tail"; _fill_tail %-formats the draws in


@dataclass(frozen=True)
class _Zipf:
    """A Zipf sampler that costs one C-level tuple lookup for ~92% of words.

    Word r owns s_r = round(2**24 * p_r) of 2**24 slots (the rarest still gets ~100).  ``plain``
    has 2**16 entries: s_r // 256 copies of word r, then _TAIL in the rest; ``tail`` holds
    s_r % 256 copies of word r.  A uniform 16-bit draw from ``plain`` and, for _TAIL, a uniform
    draw from ``tail`` picks word r with probability exactly s_r / 2**24.  (A flat 2**24 table
    would cost 128 MB; a 2-level one is 2.5x slower from cache misses.)
    """

    plain: tuple[str, ...]
    spaced: tuple[str, ...]  # " " + entry, for words inside a line
    newline: tuple[str, ...]  # "\n" + entry, for the first word of a line
    tail: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def _zipf() -> _Zipf:
    words = vocabulary()
    weights = [rank ** -ZIPF_EXPONENT for rank in range(1, len(words) + 1)]
    total, slots = sum(weights), 1 << 24
    ends = [round(c * slots / total) for c in accumulate(weights)]
    ends[-1] = slots
    counts = [end - start for start, end in zip([0] + ends, ends)]
    plain = [word for word, count in zip(words, counts) for _ in range(count >> 8)]
    plain += [_TAIL] * ((1 << 16) - len(plain))
    tail = [word for word, count in zip(words, counts) for _ in range(count & 255)]
    # One string object per distinct entry: 65536 separate copies would thrash the CPU cache.
    spaced = {entry: " " + entry for entry in set(plain)}
    newline = {entry: "\n" + entry for entry in set(plain)}
    return _Zipf(tuple(plain), tuple(map(spaced.__getitem__, plain)),
                 tuple(map(newline.__getitem__, plain)), tuple(tail))


def _fill_tail(rng: random.Random, text: str) -> str:
    """Put a tail word in place of each _TAIL in ``text``, which must hold no other "%"."""
    return text % tuple(rng.choices(_zipf().tail, k=text.count(_TAIL)))


# ----------------------------------------------------------------------------- chunk makers
# Each returns whole lines or records; `_write_file` trims the last chunk of a file.

_LINE_SHAPES = {n: b"\x01" + b"\x00" * (n - 1) for n in range(10, 16)}  # 1: word starts a line


def _text_chunk(rng: random.Random, lines: int) -> bytes:
    zipf = _zipf()
    lengths = _uniform_bytes(rng, lines, bytes(range(10, 16)))  # 10..15 words per line
    shapes = b"".join(map(_LINE_SHAPES.__getitem__, lengths))
    # Each word brings its separator ("\n" before a line's first word, " " before the others)
    # so one "".join builds the chunk, with no per-line Python call.
    tables = (zipf.spaced, zipf.newline)
    text = "".join(map(getitem, map(tables.__getitem__, shapes), _u16(rng, len(shapes))))
    return (_fill_tail(rng, text[1:]) + "\n").encode("ascii")


_RECORD_TEMPLATE = b" " * 10 + b"  " + b"0" * 32 + b"  " + b"0" * 52 + b"\r\n"
_PRINTABLE = bytes(range(0x20, 0x7F))
_HEX = b"0123456789ABCDEF"


def _hex_column(first: int, count: int, digit: int) -> bytes:
    """Hex digit ``digit`` (0 = least significant) of the numbers first .. first+count-1."""
    if digit < 2:  # changes every 1 or 16 numbers: slice a repeating pattern
        pattern = bytes(c for c in _HEX for _ in range(16 ** digit))
        offset = first % len(pattern)
        return (pattern * ((offset + count) // len(pattern) + 1))[offset:offset + count]
    parts, number, end, step = [], first, first + count, 16 ** digit
    while number < end:  # at most count / 256 + 2 runs of one value
        run_end = min((number // step + 1) * step, end)
        parts.append(_HEX[(number // step) % 16:][:1] * (run_end - number))
        number = run_end
    return b"".join(parts)


def _records_chunk(rng: random.Random, first: int, count: int) -> bytearray:
    """``count`` gensort -a records numbered from ``first``, built one byte-column at a time."""
    buf = bytearray(_RECORD_TEMPLATE * count)
    keys = _uniform_bytes(rng, 10 * count, _PRINTABLE)
    for i in range(10):
        buf[i::RECORD_SIZE] = keys[i * count:(i + 1) * count]
    last = first + count - 1
    for digit in range(32):
        if last >> (4 * digit) == 0:
            break  # the template already holds the leading zeros
        buf[43 - digit::RECORD_SIZE] = _hex_column(first, count, digit)
    filler = rng.randbytes(13 * count).translate(_translation(_HEX)[0])
    for j in range(13):
        column = filler[j * count:(j + 1) * count]
        for k in range(4):
            buf[46 + 4 * j + k::RECORD_SIZE] = column
    return buf


# Value pools: none may hold "," (CSV) or "%" (_fill_tail formats the rows).
_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/118.0", "curl/7.88.1", "Wget/1.21.3",
    "Mozilla/5.0 (Windows NT 6.1; WOW64) Chrome/109.0",
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) Chrome/119.0 Mobile",
    "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1)", "Lynx/2.8.9rel.1 libwww-FM/2.14",
    "Opera/9.80 (Windows NT 6.0) Presto/2.12.388 Version/12.14",
    "Googlebot/2.1 (+http://www.google.com/bot.html)")
_COUNTRIES = ("USA", "CAN", "MEX", "BRA", "ARG", "GBR", "IRL", "FRA", "DEU", "NLD", "BEL", "ESP",
              "PRT", "ITA", "CHE", "AUT", "POL", "SWE", "NOR", "FIN", "DNK", "RUS", "TUR", "EGY",
              "ZAF", "NGA", "KEN", "IND", "PAK", "CHN", "JPN", "KOR", "VNM", "THA", "IDN", "AUS")
_LANGUAGES = ("ENG-US", "ENG-GB", "ENG-AU", "ENG-CA", "FRA-FR", "FRA-CA", "DEU-DE", "DEU-AT",
              "SPA-ES", "SPA-MX", "POR-BR", "POR-PT", "ITA-IT", "NLD-NL", "SWE-SE", "RUS-RU",
              "TUR-TR", "ARA-EG", "HIN-IN", "ZHO-CN", "JPN-JP", "KOR-KR", "VIE-VN", "THA-TH")
_DURATIONS = tuple(str(n) for n in range(1, 101))
_OCTETS = tuple(str(n) for n in range(256))
_NETS = tuple(f"{a}.{b}." for a in range(100, 256) for b in range(100, 256))
MAX_GROUPS = len(_NETS)  # 156 * 156 three-digit "a.b." prefixes for the --groups mode
_URL_WORDS = 4  # words in a destURL path: brings rows to ~145 bytes, as in the real data


@functools.lru_cache(maxsize=1)
def _visit_pools() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(destURL, visitDate) pools of 65536 values each, from a constant seed."""
    rng = random.Random("dagrun-datagen-uservisits-v1")
    names = [w for w in vocabulary() if 3 <= len(w) <= 10]
    tlds = ("com", "org", "net")
    urls = tuple(f"http://{rng.choice(names)}.{rng.choice(tlds)}/"
                 + "".join(rng.choice(names) for _ in range(_URL_WORDS)) for _ in range(1 << 16))
    # 2**14 consecutive days (1970-01-01 .. 2014-11-09), each 4 times, so draws stay uniform.
    epoch = datetime.date(1970, 1, 1)
    days = [(epoch + datetime.timedelta(days=d)).isoformat() for d in range(1 << 14)]
    return urls, tuple(days * 4)


@functools.lru_cache(maxsize=4)
def _group_ips(groups: int) -> tuple[str, ...]:
    """65536 sourceIPs whose "a.b." prefixes take exactly ``groups`` values (``--groups`` mode)."""
    rng = random.Random(f"dagrun-datagen-uservisits-groups-{groups}")
    nets = rng.sample(_NETS, groups)
    return tuple(f"{nets[i % groups]}{rng.randrange(256)}.{rng.randrange(1, 255)}"
                 for i in range(1 << 16))


def _source_ips(rng: random.Random, rows: int, groups: int | None) -> Iterable[str]:
    if groups is not None:
        return _draw(rng, _group_ips(groups), rows)
    # Uniform over all 2**32 addresses, as the real data: see "uservisits" in the module doc.
    octets = rng.randbytes(4 * rows)
    get = _OCTETS.__getitem__
    return map(".".join, zip(*(map(get, octets[i::4]) for i in range(4))))


def _uservisits_chunk(rng: random.Random, rows: int, groups: int | None = None) -> bytes:
    urls, dates = _visit_pools()
    random_ = rng.random
    revenue = map("{:.5f}".format, [random_() for _ in repeat(None, rows)])
    search_words = map(_zipf().plain.__getitem__, _u16(rng, rows))  # Zipf, like real queries
    columns = (_source_ips(rng, rows, groups), _draw(rng, urls, rows), _draw(rng, dates, rows),
               revenue, _draw(rng, _USER_AGENTS, rows), _draw(rng, _COUNTRIES, rows),
               _draw(rng, _LANGUAGES, rows), search_words, _draw(rng, _DURATIONS, rows))
    text = "\n".join(map(",".join, zip(*columns)))
    return (_fill_tail(rng, text) + "\n").encode("ascii")


# ----------------------------------------------------------------------------- files

def _file_rng(kind: str, seed: int, index: int) -> random.Random:
    return random.Random(f"dagrun-datagen:{kind}:{seed}:{index}")  # str seeds hash with sha512


Chunks = Callable[[int], bytes | bytearray]  # remaining bytes of the file -> next chunk


def _chunk_maker(kind: str, rng: random.Random, first_record: int, groups: int | None = None) -> Chunks:
    """``remaining bytes -> next chunk`` for one file; chunks shrink for tiny files."""
    if kind == "text":  # ~91 bytes a line: ask for a little more than remains
        return lambda remaining: _text_chunk(rng, min(_CHUNK_LINES, remaining // 90 + 1))
    if kind == "uservisits":  # ~145 bytes a row
        return lambda remaining: _uservisits_chunk(rng, min(_CHUNK_ROWS, remaining // 135 + 1), groups)
    next_record = first_record

    def records(remaining: int) -> bytearray:
        nonlocal next_record
        count = min(_CHUNK_RECORDS, remaining // RECORD_SIZE)
        next_record += count
        return _records_chunk(rng, next_record - count, count)
    return records


def _write_file(path: str, chunks: Chunks, target: int) -> None:
    """Write ``chunks(remaining)`` until ``target`` bytes; for line kinds, end at a line end."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:
            written = 0
            while written < target:
                chunk = chunks(target - written)
                if written + len(chunk) > target:  # keep lines up to the first end past target
                    end = chunk.find(b"\n", target - written - 1)
                    chunk = chunk[:end + 1] if end >= 0 else chunk
                out.write(chunk)
                written += len(chunk)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def generate(kind: Kind, out: str, *, size: int, seed: int = 0, files: int = 1,
             groups: int | None = None) -> list[str]:
    """Write ``files`` parts of about ``size`` bytes in total under directory ``out``.

    Returns the paths written, ``out/part-00000.<txt|dat|csv>`` and on.  See the module
    docstring for what each kind holds and how exact the size is.  ``groups`` (uservisits
    only) draws sourceIPs from that many "a.b." prefixes instead of all addresses.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"size must be an int >= 0 (bytes), got {size!r}; see parse_size()")
    if isinstance(files, bool) or not isinstance(files, int) or files < 1:
        raise ValueError(f"files must be an int >= 1, got {files!r}")
    if groups is not None:
        if kind != "uservisits":
            raise ValueError(f"groups applies to uservisits only, not {kind!r}; leave it out")
        if isinstance(groups, bool) or not isinstance(groups, int) or not 1 <= groups <= MAX_GROUPS:
            raise ValueError(f"groups must be an int in [1, {MAX_GROUPS}] (distinct three-digit "
                             f"'a.b.' prefixes), got {groups!r}; leave it out for the real data's shape")
    os.makedirs(out, exist_ok=True)
    unit = RECORD_SIZE if kind == "records" else 1  # records split by whole records
    total_units = size // unit
    paths, first = [], 0
    for index in range(files):
        units = total_units // files + (1 if index < total_units % files else 0)
        path = os.path.join(out, f"part-{index:05d}.{_SUFFIX[kind]}")
        _write_file(path, _chunk_maker(kind, _file_rng(kind, seed, index), first, groups), units * unit)
        first += units
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- CLI

def _size_arg(text: str) -> int:
    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_gen_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``dagrun gen KIND OUT [--size 64MB] [--seed 0] [--files 1]``."""
    parser = subparsers.add_parser(
        "gen", help="write deterministic benchmark input (text, records, uservisits)",
        description="Write deterministic benchmark input: Zipf text, gensort -a records, "
                    "or Amplab uservisits CSV.")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("out", help="directory to write part-NNNNN files into (created if needed)")
    parser.add_argument("--size", type=_size_arg, default="64MB",
                        help="total size, e.g. 64MB, 1GB, 100KiB (default: 64MB)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--files", type=int, default=1, help="number of part files (default: 1)")
    parser.add_argument("--groups", type=int, default=None,
                        help="uservisits only: draw sourceIPs from this many 'a.b.' prefixes, for a "
                             f"low-cardinality SUBSTR(sourceIP, 1, 8) (1..{MAX_GROUPS}; default: "
                             "uniform over all addresses, ~944k groups per GB like the real data)")
    parser.set_defaults(func=run_gen)
    return parser


def run_gen(args: argparse.Namespace) -> int:
    """Entry point of ``dagrun gen``: one line per file, then the total size and time."""
    started = time.perf_counter()
    paths = generate(args.kind, args.out, size=parse_bytes(args.size), seed=args.seed,
                     files=args.files, groups=getattr(args, "groups", None))
    total = 0
    for path in paths:
        nbytes = os.path.getsize(path)
        total += nbytes
        print(f"{path}\t{nbytes} bytes")
    elapsed = time.perf_counter() - started
    rate = total / 1e6 / elapsed if elapsed > 0 else 0.0
    print(f"wrote {len(paths)} file(s), {total} bytes in {elapsed:.2f}s ({rate:.0f} MB/s)")
    return 0
