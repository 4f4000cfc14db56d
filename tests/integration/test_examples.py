"""The examples run with one command on generated data, and their answers are right.

Each runs as ``python examples/X.py --size 200KB`` in a subprocess (local executors); the
test regenerates the same deterministic data (``dagrun.cli.gen``: same kind, size, seed and
file count) and computes the answer in plain Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter, defaultdict

import pytest

from dagrun.cli.gen import generate, parse_size

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE = "200KB"
FILES = 2  # examples/_example.py's FILES


def run_example(name: str, *args: str) -> list[str]:
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), "--size", SIZE, "--executors", "2",
                           *args], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert any(line.startswith("dagrun ledger ") and "GB-s" in line and "$" in line for line in lines), \
        "each example prints its job's cost line"
    return lines


def data(kind: str, tmp_path) -> list[str]:
    return generate(kind, str(tmp_path / kind), size=parse_size(SIZE), seed=0, files=FILES)


def lines_of(paths: list[str]) -> list[str]:
    out = []
    for path in paths:
        with open(path, encoding="utf-8", newline="") as f:
            out += [line.rstrip("\r\n") for line in f]
    return out


def test_uservisits_revenue(tmp_path):
    totals: dict[str, float] = defaultdict(float)
    for line in lines_of(data("uservisits", tmp_path)):
        fields = line.split(",")
        totals[fields[0][:8]] += float(fields[3])
    out = run_example("uservisits_revenue.py")
    assert f"groups: {len(totals)}" in out
    start = out.index(f"groups: {len(totals)}") + 1
    printed = [line.split() for line in out[start:start + 10]]
    expected = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert [p[0] for p in printed] == [k for k, _ in expected]
    assert [float(p[1]) for p in printed] == pytest.approx([v for _, v in expected], abs=1e-4)


def test_word_length_top10(tmp_path):
    counts = Counter(w for line in lines_of(data("text", tmp_path)) for w in line.split())
    by_length: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for word, n in counts.items():
        by_length[len(word)].append((word, n))
    out = run_example("word_length_top10.py")
    for length in range(1, 21):
        top = sorted(by_length[length], key=lambda wc: (-wc[1], wc[0]))[:10]
        assert f"len {length}: " + " ".join(f"{w}={n}" for w, n in top) in out
    assert all(by_length[n] for n in range(1, 21))  # the vocabulary has words of every length 1..20


def test_line_count(tmp_path):
    expected = len(lines_of(data("text", tmp_path)))
    assert f"lines: {expected}" in run_example("line_count.py")


def test_sort_records(tmp_path):
    records = lines_of(data("records", tmp_path))
    output = tmp_path / "sorted"
    out = run_example("sort_records.py", "--output", str(output), "--check")
    parts = sorted(p for p in os.listdir(output) if p.startswith("part-"))
    assert (output / "_SUCCESS").exists() and len(parts) >= 2
    written = [line for p in parts for line in (output / p).read_text(encoding="utf-8").splitlines()]
    assert written == sorted(records, key=lambda r: r[:10])
    assert all(len(r) == 98 for r in written)  # 100-byte records without their CR LF
    assert any(f"sorted the records into {len(parts)} part files" in line for line in out)
    assert f"check: {len(records)} records, in order" in out  # the example's own valsort job agrees
