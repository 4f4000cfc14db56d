"""The four benchmark jobs, their data, and how each checks its own answer.

Each job's user functions are written once, as source text, so that dagrun and the
PySpark peer run the very same lambdas.  Every job validates its output: a reference
answer for ``aggregate`` and ``wordlen``, valsort's checks (order, count, checksum) for
``sort``, and the newline count for ``scan``.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Any, Callable

from dagrun.cli.gen import generate

# The user functions, shared verbatim with the PySpark peer.
AGG_PARSE = "lambda line: (line.split(',', 4)[0][:8], float(line.split(',', 4)[3]))"
SORT_KEY = "lambda r: r[:10]"
RECORD_LENGTH, KEY_LENGTH = 100, 10  # gensort: 100-byte records (with their \r\n), 10-byte keys
WORD_PAIR = "lambda w: (w, 1)"
BY_LENGTH = "lambda wc: (len(wc[0]), wc)"
IN_RANGE = "lambda kv: 1 <= kv[0] <= 20"
TOP10 = "lambda wcs: sorted(wcs, key=lambda wc: (-wc[1], wc[0]))[:10]"

DATA_KIND = {"scan": "text", "aggregate": "uservisits", "sort": "records", "sort-lambda": "records",
             "wordlen": "text"}


@dataclass
class Outcome:
    """What a job returned, and whether it was right."""

    value: Any
    valid: bool
    detail: str


def data_dir(root: str, bench: str, size: int, seed: int, files: int, groups: int | None = None) -> str:
    """Generate (once) and return the input directory for ``bench`` at ``size`` bytes.

    ``groups`` (aggregate only) asks for low-cardinality uservisits; the directory name says
    which shape it holds, so data made by an older generator is never reused by mistake.
    """
    kind = DATA_KIND[bench]
    if groups is not None and kind != "uservisits":
        raise ValueError(f"--groups applies to the aggregate benchmark only, not {bench!r}")
    shape = "" if kind != "uservisits" else ("-ipv4" if groups is None else f"-g{groups}")
    path = os.path.join(root, f"{kind}{shape}-{size}-s{seed}-f{files}")
    done = os.path.join(path, "_COMPLETE")
    if not os.path.exists(done):
        generate(kind, path, size=size, seed=seed, files=files, groups=groups)
        open(done, "w").close()
    return path


def input_files(path: str) -> list[str]:
    return sorted(os.path.join(path, f) for f in os.listdir(path) if not f.startswith(("_", ".")))


def run_scan(ctx, path: str, out: str) -> Any:
    return ctx.text_file(path).count()


def run_aggregate(ctx, path: str, out: str) -> Any:
    import operator

    return dict(ctx.text_file(path).map(eval(AGG_PARSE)).reduce_by_key(operator.add).collect())


def run_sort(ctx, path: str, out: str) -> Any:
    """The records sorted by their key prefix: the block-at-a-time fast path."""
    from dagrun.runtime.prefix_sort import key_prefix

    ctx.binary_records(path, RECORD_LENGTH).sort_by(key_prefix(KEY_LENGTH)).save_as_text_file(out)
    return out


def run_sort_lambda(ctx, path: str, out: str) -> Any:
    """The same sort by a user's lambda: one call of it per record, the rest a block at a time."""
    ctx.binary_records(path, RECORD_LENGTH).sort_by(eval(SORT_KEY)).save_as_text_file(out)
    return out


def run_wordlen(ctx, path: str, out: str) -> Any:
    import operator

    counts = ctx.text_file(path).flat_map(str.split).map(eval(WORD_PAIR)).reduce_by_key(operator.add)
    return dict(counts.map(eval(BY_LENGTH)).filter(eval(IN_RANGE)).group_by_key().map_values(eval(TOP10)).collect())


JOBS: dict[str, Callable] = {"scan": run_scan, "aggregate": run_aggregate, "sort": run_sort,
                             "sort-lambda": run_sort_lambda, "wordlen": run_wordlen}


# ---- validation ------------------------------------------------------------------------------

def _lines(files: list[str]):
    for name in files:
        with open(name, "rb") as f:
            for raw in f:
                yield raw.rstrip(b"\n").rstrip(b"\r")


def validate(bench: str, value: Any, path: str) -> Outcome:
    files = input_files(path)
    if bench == "scan":
        expected = 0
        for name in files:
            with open(name, "rb") as f:
                while chunk := f.read(8 << 20):
                    expected += chunk.count(b"\n")
        return Outcome(value, value == expected, f"{value:,} lines (newline count {expected:,})")
    if bench == "aggregate":
        expected: dict = {}
        for line in _lines(files):
            fields = line.decode().split(",", 4)
            expected[fields[0][:8]] = expected.get(fields[0][:8], 0.0) + float(fields[3])
        ok = expected.keys() == value.keys() and all(abs(value[k] - v) <= 1e-6 * max(1.0, abs(v))
                                                     for k, v in expected.items())
        return Outcome(len(value), ok, f"{len(value):,} groups, sum {sum(value.values()):,.2f}")
    if bench == "wordlen":
        counts: dict = {}
        for line in _lines(files):
            for w in line.decode().split():
                counts[w] = counts.get(w, 0) + 1
        expected = {}
        for w, c in counts.items():
            if 1 <= len(w) <= 20:
                expected.setdefault(len(w), []).append((w, c))
        expected = {n: sorted(wcs, key=lambda wc: (-wc[1], wc[0]))[:10] for n, wcs in expected.items()}
        return Outcome(len(value), value == expected, f"top 10 for {len(value)} word lengths")
    return valsort(value, files, RECORD_LENGTH)


def _saved_records(parts: list[str], record_length: int):
    """Records that were saved as text whole, line ending included, each followed by ``\\n``."""
    unit = record_length + 1
    for name in parts:
        with open(name, "rb") as f:
            while block := f.read(unit * 65536):
                if len(block) % unit:
                    raise ValueError(f"{name}: {len(block) % unit} stray bytes after the last record")
                for i in range(0, len(block), unit):
                    if block[i + record_length] != 0x0A:
                        raise ValueError(f"{name}: a record at byte {i} is not followed by a newline")
                    yield block[i : i + record_length].rstrip(b"\n").rstrip(b"\r")


def valsort(out_dir: str, input_paths: list[str], record_length: int | None = None) -> Outcome:
    """valsort's checks: keys in order across part files, same record count and checksum.

    ``record_length`` reads output written from ``binary_records``: each record whole, then ``\\n``.
    """
    parts = sorted(os.path.join(out_dir, p) for p in os.listdir(out_dir) if p.startswith("part-"))
    count, checksum, previous, ordered = 0, 0, b"", True
    saved = _lines(parts) if record_length is None else _saved_records(parts, record_length)
    for record in saved:
        key = record[:10]
        if key < previous:
            ordered = False
        previous = key
        count += 1
        checksum = (checksum + zlib.crc32(record)) & 0xFFFFFFFFFFFF
    in_count, in_checksum = 0, 0
    for record in _lines(input_paths):
        in_count += 1
        in_checksum = (in_checksum + zlib.crc32(record)) & 0xFFFFFFFFFFFF
    ok = ordered and count == in_count and checksum == in_checksum
    return Outcome(count, ok, f"{count:,} records, {'ordered' if ordered else 'NOT ORDERED'}, "
                              f"checksum {'matches' if checksum == in_checksum else 'DIFFERS'}")
