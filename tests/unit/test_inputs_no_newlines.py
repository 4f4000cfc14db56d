"""A split reads at most up to the next newline after its end (issue 13, Build 6): a file
without newlines costs one read of each split's own bytes, plus the first split's one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagrun.runtime import inputs
from dagrun.runtime.inputs import plan_text_splits, read_text_split
from dagrun.runtime.line_count import count_text_split_lines


class CountingFile:
    """A real file whose reads are added up, as the requests of an object store would be."""

    def __init__(self, f, tally: dict):
        self._f, self._tally = f, tally

    def read(self, n=-1):
        data = self._f.read(n)
        self._tally["bytes"] += len(data)
        self._tally["reads"] += 1
        return data

    def readinto(self, buf):
        n = self._f.readinto(buf)
        self._tally["bytes"] += n or 0
        self._tally["reads"] += 1
        return n

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def tally(monkeypatch) -> dict:
    counts = {"bytes": 0, "reads": 0}
    real_open = inputs._open
    monkeypatch.setattr(inputs, "_open", lambda *a, **k: CountingFile(real_open(*a, **k), counts))
    return counts


@pytest.mark.parametrize("tail", [b"", b"\n"])
def test_a_file_without_newlines_costs_one_pass(tmp_path: Path, tally: dict, tail: bytes) -> None:
    size = 4 << 20
    path = tmp_path / "one-line.txt"
    path.write_bytes(b"x" * size + tail)
    splits = plan_text_splits(str(path), split_size=64 << 10, min_partitions=1)
    assert len(splits) == 64
    lines = [line for split in splits for line in read_text_split(split)]
    assert lines == ["x" * size]
    # the first split reads its one line to the end; every other split reads only [start - 1, end)
    assert tally["bytes"] <= size + len(tail) + sum(s.end - s.start + 1 for s in splits[1:])
    assert tally["bytes"] < 2.1 * size  # was 33 times the file: each split scanned to the end
    tally["bytes"] = 0
    assert sum(count_text_split_lines(s) for s in splits) == 1
    assert tally["bytes"] <= size + len(tail) + len(splits)


def test_a_split_stops_at_the_first_newline_after_its_end(tmp_path: Path, tally: dict) -> None:
    data = b"a" * 1000 + b"\n" + b"b" * 300_000 + b"\n" + b"c" * 10
    path = tmp_path / "f.txt"
    path.write_bytes(data)
    (split,) = [s for s in plan_text_splits(str(path), split_size=500, min_partitions=1) if s.start == 0]
    assert list(read_text_split(split)) == ["a" * 1000]
    assert tally["bytes"] <= inputs.TAIL_BLOCK_SIZE + split.end  # read to the newline, not to the end
