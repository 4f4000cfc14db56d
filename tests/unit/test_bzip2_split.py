"""A ``.bz2`` file split by its compressed blocks: every cut gives the file's lines, Hadoop's
partitions, a chance magic inside a block changes nothing, and a bad file is an error."""

from __future__ import annotations

import bz2
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dagrun
from dagrun.runtime import bzip2_split, inputs
from dagrun.runtime.inputs import TextSplit, plan_text_splits, read_text_split
from dagrun.runtime.line_count import count_text_split_lines


def reference_lines(data: bytes) -> list[str]:
    """The file's lines by Hadoop's endings, computed without the reader."""
    *terminated, last = re.split(rb"\r\n|\r|\n", data)
    text = [line.decode("utf-8", "replace") for line in terminated + ([last] if last else [])]
    if text and text[0].startswith("\ufeff"):
        text[0] = text[0][1:]
    return text


def short_lines(seed: int, n: int) -> bytes:
    """Short lines, so that block edges fall on every kind of ending and inside characters."""
    rnd = random.Random(seed)
    tokens = [b"", b"a", b"bc", b"d e", "é".encode(), "€x".encode(), b"0123456789"]
    endings = [b"\n", b"\r\n", b"\r", b"\n\n", b"\r\r\n"]
    return b"".join(rnd.choice(tokens) + rnd.choice(endings) for _ in range(n))


@pytest.fixture(scope="module")
def many_blocks(tmp_path_factory) -> tuple[Path, bytes, bytes]:
    """Two concatenated level-1 streams (100 kB blocks), a byte-order mark first, no final ending."""
    first, second = b"\xef\xbb\xbf" + short_lines(1, 180_000), short_lines(2, 60_000) + b"last line"
    compressed = bz2.compress(first, 1) + bz2.compress(second, 1)
    path = tmp_path_factory.mktemp("bz2") / "lines.txt.bz2"
    path.write_bytes(compressed)
    return path, first + second, compressed


def block_bytes(compressed: bytes) -> list[int]:
    """The byte at which each block and end-of-stream magic starts."""
    magics = bzip2_split._Magics(iter([compressed]), 0)
    while magics.get(len(magics.found)) is not None:
        pass
    return [bit // 8 for bit, _ in magics.found]


def lines_of(splits: list[TextSplit]) -> tuple[list[str], list[int], list[int]]:
    per_split = [list(read_text_split(s)) for s in splits]
    return [line for lines in per_split for line in lines], [len(x) for x in per_split], \
        [count_text_split_lines(s) for s in splits]


def cut(path: Path, size: int, points: list[int]) -> list[TextSplit]:
    edges = sorted({0, size, *(p for p in points if 0 < p < size)})
    return [TextSplit(f"file://{path}", s, e, size, "bz2") for s, e in zip(edges, edges[1:])]


def test_the_file_has_many_blocks_in_two_streams(many_blocks) -> None:
    _, data, compressed = many_blocks
    magics = block_bytes(compressed)
    assert len(magics) > 12 and len(data) > 1_000_000


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_cut_of_a_bz2_file_gives_its_lines_once_in_order(many_blocks, data) -> None:
    path, text, compressed = many_blocks
    near_magics = [b + d for b in block_bytes(compressed) for d in (-1, 0, 1, 2)]
    points = data.draw(st.lists(st.sampled_from(near_magics) | st.integers(0, len(compressed)), max_size=12))
    lines, per_split, counts = lines_of(cut(path, len(compressed), points))
    assert lines == reference_lines(text)
    assert counts == per_split


@pytest.mark.parametrize("min_partitions", [1, 3, 7, 40])
def test_planned_splits_are_hadoops_byte_ranges(many_blocks, min_partitions) -> None:
    path, text, compressed = many_blocks
    splits = plan_text_splits(str(path), split_size=0, min_partitions=min_partitions)
    goal = len(compressed) // min_partitions
    assert [(s.start, s.end) for s in splits] == list(inputs._cut(len(compressed), max(1, goal)))
    lines, per_split, counts = lines_of(splits)
    assert lines == reference_lines(text) and counts == per_split
    # a split holds the lines of the blocks that start in it (the first block: the first
    # split's): none, if no block does
    starts = [0] + block_bytes(compressed)[1:]
    for s, n in zip(splits, per_split):
        if not any(s.start <= b < s.end for b in starts):
            assert n == 0


def test_a_small_file_has_pysparks_partitions(tmp_path: Path) -> None:
    # PySpark 4.3 on this file (403 bytes): 7 partitions, all lines in the first
    path = tmp_path / "small.bz2"
    path.write_bytes(bz2.compress(b"".join(b"line %d\n" % i for i in range(300))))
    with dagrun.Context(executor="inline", conf={"progress": "off", "ledger": "off"}) as ctx:
        rdd = ctx.text_file(str(path), 7)
        assert path.stat().st_size == 403 and rdd.get_num_partitions() == 7
        assert rdd.glom().map(len).collect() == [300] + [0] * 6
        assert rdd.count() == 300 and rdd.collect()[-1] == "line 299"


@pytest.mark.parametrize("min_partitions", [3, 50])
def test_the_first_block_is_the_first_splits_even_when_it_ends_inside_the_header(tmp_path, min_partitions) -> None:
    # PySpark 4.3 on this 43-byte file: [[a, b, c, d], [], ...], however small the splits
    path = tmp_path / "tiny.bz2"
    path.write_bytes(bz2.compress(b"a\nb\r\nc\rd"))
    splits = plan_text_splits(str(path), split_size=0, min_partitions=min_partitions)
    assert splits[0].end < 4 if min_partitions == 50 else splits[0].end > 4
    assert [list(read_text_split(s)) for s in splits] == [["a", "b", "c", "d"]] + [[]] * (len(splits) - 1)


def test_a_chance_magic_inside_a_block_changes_no_line(many_blocks, monkeypatch) -> None:
    path, text, compressed = many_blocks
    real = block_bytes(compressed)
    # Magics of both kinds made up in the middle of three blocks, as chance would put them.
    fakes = sorted({8 * ((a + b) // 2) + 3 for a, b in zip(real[1:4], real[2:5])})
    fake_kinds = [True, False, True]
    search = bzip2_split._Magics._search

    def search_with_chance_magics(self, lo: int, hi: int) -> None:
        search(self, lo, hi)
        extra = [(bit, kind) for bit, kind in zip(fakes, fake_kinds) if lo <= bit // 8 < hi]
        self.found[:] = sorted({*self.found, *extra})

    monkeypatch.setattr(bzip2_split._Magics, "_search", search_with_chance_magics)
    points = [p for f in fakes for p in (f // 8 - 1, f // 8, f // 8 + 1)]
    for split_points in (points, points[::3], [fakes[0] // 8 + 2]):
        lines, per_split, counts = lines_of(cut(path, len(compressed), split_points))
        assert lines == reference_lines(text) and counts == per_split


def test_a_file_that_is_not_bzip2_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.bz2"
    path.write_bytes(b"just text\n" * 100)
    with pytest.raises(ValueError, match="plain.bz2 is not a bzip2 file.*rename it"):
        lines_of(plan_text_splits(str(path), split_size=0, min_partitions=3))


@pytest.mark.parametrize("damage", ["cut short", "corrupt"])
def test_a_damaged_file_is_an_error_not_fewer_lines(many_blocks, tmp_path: Path, damage: str) -> None:
    _, _, compressed = many_blocks
    middle = len(compressed) // 2
    if damage == "cut short":
        bad = compressed[:middle]
    else:
        bad = compressed[:middle] + bytes(b ^ 0x5A for b in compressed[middle:middle + 40]) + compressed[middle + 40:]
    path = tmp_path / "damaged.bz2"
    path.write_bytes(bad)
    for min_partitions in (1, 5):
        with pytest.raises(ValueError, match="damaged.bz2 is not a valid bzip2 file: the block at byte"):
            lines_of(plan_text_splits(str(path), split_size=0, min_partitions=min_partitions))


def test_an_empty_bz2_file_has_no_lines(tmp_path: Path) -> None:
    path = tmp_path / "empty.bz2"
    path.write_bytes(bz2.compress(b""))
    splits = plan_text_splits(str(path), split_size=0, min_partitions=4)
    lines, per_split, counts = lines_of(splits)
    assert len(splits) == 5 and lines == [] and per_split == counts == [0] * 5
