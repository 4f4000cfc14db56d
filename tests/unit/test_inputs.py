"""Input splits: Hadoop's line rule over byte ranges, checked for many split sizes.

Every text case is checked three ways for each split size: the lines of all splits, in split
order, equal the file's lines exactly; the count fast path gives the same number; and that
number is what ``wc -l`` says plus one when a non-empty file does not end with a newline.
"""

from __future__ import annotations

import gzip
import pickle
import re
import subprocess
import uuid
from pathlib import Path
from unittest import mock

import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagrun import optional
from dagrun.runtime import inputs, line_count, lines as line_cutting
from dagrun.runtime.inputs import (
    BinarySplit,
    TextSplit,
    plan_binary_splits,
    plan_text_splits,
    read_binary_split,
    read_text_split,
)
from dagrun.runtime.line_count import count_text_split_lines


@pytest.fixture(autouse=True, params=["numpy-count", "bytes-count"])
def _count_implementation(request, monkeypatch):
    """Every test runs with both ways of counting newlines: numpy's, and bytes.replace."""
    if request.param == "numpy-count":
        pytest.importorskip("numpy")
    else:
        monkeypatch.setattr(optional, "_numpy", None)


def reference_lines(data: bytes) -> list[str]:
    """The file's lines by the rule, independently of the reader: Hadoop's endings, "\\r\\n", "\\r", "\\n"."""
    *terminated, last = re.split(rb"\r\n|\r|\n", data)
    raw = terminated + ([last] if last else [])  # bytes after the final ending are a line only if any
    text = [line.decode("utf-8") for line in raw]
    if text and text[0].startswith("\ufeff"):
        text[0] = text[0][1:]  # Hadoop drops a UTF-8 byte-order mark at offset 0
    return text


def lone_crs(data: bytes) -> int:
    return len(re.findall(rb"\r(?!\n)", data))


def expected_count(data: bytes) -> int:
    """What `wc -l` says, plus the lone "\\r" endings it does not see, plus one for a non-empty
    file that does not end with an ending."""
    return data.count(b"\n") + lone_crs(data) + (1 if data and not data.endswith((b"\n", b"\r")) else 0)


def read_all(path, split_size: int, min_partitions: int = 1, **options) -> tuple[list[TextSplit], list[str], int]:
    splits = plan_text_splits(path, split_size=split_size, min_partitions=min_partitions, **options)
    lines = [line for split in splits for line in read_text_split(split)]
    per_split = [sum(1 for _ in read_text_split(split)) for split in splits]
    counts = [count_text_split_lines(split) for split in splits]
    assert counts == per_split  # the fast path agrees split by split, not only in total
    return splits, lines, sum(counts)


@pytest.fixture(params=["default_blocks", "tiny_blocks"])
def blocks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a test with the real read sizes and again with tiny ones, so that block edges fall
    inside lines, inside characters and on newlines even in small files."""
    if request.param == "tiny_blocks":
        monkeypatch.setattr(inputs, "BLOCK_SIZE", 5)
        monkeypatch.setattr(inputs, "TAIL_BLOCK_SIZE", 1)
        monkeypatch.setattr(line_count, "_COUNT_SLICE", 3)  # the count's reads of a local file, and its slices
        monkeypatch.setattr(line_cutting, "LINE_PIECE", 2)  # a run split into lines a few characters at a time


def byte_ranges(splits: list[TextSplit]) -> list[tuple[int, int]]:
    """Hadoop's byte ranges [s, e) behind the splits' ranges of line starts."""
    return [(s.start - 1 if s.start else 0, s.end - 1) for s in splits]


def split_sizes(n: int) -> list[int]:
    return sorted({1, 2, 3, 7, max(n, 1), n + 1, n + 100})


CASES = {
    "empty": b"",
    "one_newline": b"\n",
    "only_newlines": b"\n\n\n",
    "no_trailing_newline": b"alpha\nbeta\ngamma",
    "trailing_newline": b"alpha\nbeta\ngamma\n",
    "single_char": b"x",
    "crlf": b"one\r\ntwo\r\n\r\nthree\r\n",
    "crlf_no_trailing": b"one\r\ntwo\r\nthree",
    "mixed_endings": b"a\r\nb\nc\r\n\nd",
    "lone_cr_inside_and_at_eof": b"a\rb\nc\r",
    "cr_only": b"a\rb\r\rc",
    "cr_cr_lf": b"a\r\r\nb\n\r",
    "crlf_after_lone_cr": b"x\r\ny\rz\r\n",
    "line_longer_than_split": b"s\n" + b"x" * 50 + b"\nend\n" + b"y" * 23,
    "boundary_on_newline": b"ab\ncd\nef\n",  # split_size 3 ends splits right after each "\n"
    "boundary_before_newline": b"abc\ndef\nghi\n",  # split_size 3 ends splits on the "\n" byte
    "multibyte_utf8": "héllo wörld\n日本語テキスト\n🎉🎉🎉\nçà\n€".encode(),
    "bom": "\ufeffhead\nbody\n".encode(),
    "empty_lines_between": b"\n\na\n\n\nb\n\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_text_cases_for_every_split_size(tmp_path: Path, name: str, blocks: None) -> None:
    data = CASES[name]
    path = tmp_path / f"{name}.txt"
    path.write_bytes(data)
    for split_size in split_sizes(len(data)):
        splits, lines, count = read_all(str(path), split_size)
        assert lines == reference_lines(data), split_size
        assert count == len(lines) == expected_count(data), split_size
        if not data:
            assert splits == []  # Spark drops an empty file's split
            continue
        # line starts [s + 1, e + 1) of Hadoop's byte ranges [s, e), which tile the file
        assert splits[0].start == 0 and splits[-1].end == len(data) + 1
        assert all(a.end == b.start for a, b in zip(splits, splits[1:]))


@pytest.mark.parametrize("name", sorted(CASES))
def test_count_matches_real_wc(tmp_path: Path, name: str) -> None:
    data = CASES[name]
    path = tmp_path / "f.txt"
    path.write_bytes(data)
    wc = int(subprocess.run(["wc", "-l", str(path)], capture_output=True, check=True, text=True).stdout.split()[0])
    unterminated = 1 if data and not data.endswith((b"\n", b"\r")) else 0  # wc -l counts only "\n" bytes
    for split_size in split_sizes(len(data)):
        assert read_all(str(path), split_size)[2] == wc + lone_crs(data) + unterminated


def test_all_split_sizes_on_a_mixed_file(tmp_path: Path, blocks: None) -> None:
    data = "ä\r\n\n€€\nlong line " .encode() * 5 + "末尾".encode()
    path = tmp_path / "mixed.txt"
    path.write_bytes(data)
    for split_size in range(1, len(data) + 2):
        _, lines, count = read_all(str(path), split_size)
        assert lines == reference_lines(data) and count == len(lines), split_size
    # the goal-size rule cuts by min_partitions too
    for min_partitions in (1, 2, 3, 5, 50):
        splits, lines, count = read_all(str(path), 1 << 30, min_partitions)
        assert lines == reference_lines(data) and count == len(lines)
        goal = len(data) // min_partitions  # Hadoop's, rounded down
        assert [e - s for s, e in byte_ranges(splits)][:-1] == [goal] * (len(splits) - 1)


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(
        st.tuples(
            st.text(st.characters(exclude_characters="\n\r\ufeff", exclude_categories=("Cs",)), max_size=6),
            st.sampled_from(["\n", "\r\n", "\r"]),
        ),
        max_size=12,
    ),
    unterminated_tail=st.text(st.characters(exclude_characters="\n\r\ufeff", exclude_categories=("Cs",)), max_size=4),
    split_size=st.integers(1, 40),
    min_partitions=st.integers(1, 4),
    block_size=st.sampled_from([1, 2, 3, 5, 16, inputs.BLOCK_SIZE]),
    line_piece=st.sampled_from([1, 2, 7, line_cutting.LINE_PIECE]),
)
def test_property_union_of_splits_is_the_file(lines, unterminated_tail, split_size, min_partitions, block_size,
                                              line_piece) -> None:
    data = "".join(text + ending for text, ending in lines) + unterminated_tail
    expected = reference_lines(data.encode())  # "\r" then "\n" is one ending, so not always the lines drawn
    fs = fsspec.filesystem("memory")
    url = f"memory://prop-{uuid.uuid4().hex}/data.txt"
    fs.pipe(url, data.encode())
    try:
        with mock.patch.object(inputs, "BLOCK_SIZE", block_size), mock.patch.object(inputs, "TAIL_BLOCK_SIZE", 1), \
                mock.patch.object(line_cutting, "LINE_PIECE", line_piece):
            splits, got, count = read_all(url, split_size, min_partitions)
    finally:
        fs.rm(url)
    assert got == expected
    assert count == len(expected)


def test_directory_skips_hidden_names_and_refuses_a_visible_folder(tmp_path: Path) -> None:
    expected: list[str] = []
    for i in range(12):
        content = "".join(f"file{i:02d}-line{j}\n" for j in range(i % 4))
        (tmp_path / f"part-{i:05d}").write_text(content)
        expected += content.splitlines()
    (tmp_path / "_SUCCESS").write_text("not data\n")
    (tmp_path / ".part-00000.crc").write_text("not data\n")
    (tmp_path / "_temporary").mkdir()
    (tmp_path / "_temporary" / "nested.txt").write_text("not read: a hidden folder, as in Hadoop\n")
    for split_size in (1, 7, 20, 1000):
        splits, lines, count = read_all(str(tmp_path), split_size)
        assert lines == expected and count == len(expected)
        assert {s.url.rsplit("/", 1)[-1] for s in splits} == {f"part-{i:05d}" for i in range(12) if i % 4}
        assert all(s.url.startswith("file:///") for s in splits)
    # an empty file gets no split (Spark drops empty splits), so partition counts match Spark's
    assert sum(1 for s in plan_text_splits(str(tmp_path), split_size=1000, min_partitions=1)) == 9
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "nested.txt").write_text("Spark's text reader refuses this folder\n")
    with pytest.raises(IsADirectoryError, match=r"holds the folder .*sub'.*not read recursively.*folder/\*/\*"):
        plan_text_splits(str(tmp_path), split_size=1000, min_partitions=1)
    with pytest.raises(IsADirectoryError, match="holds the folder"):
        plan_binary_splits(str(tmp_path), record_length=1, split_size=1000, min_partitions=1)
    assert len(plan_text_splits(str(tmp_path / "*"), split_size=1000, min_partitions=1)) == 10  # a glob reaches it


def test_glob_list_and_file_url(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a1\na2\n")
    (tmp_path / "b.txt").write_text("b1")
    (tmp_path / "c.log").write_text("c1\n")
    (tmp_path / "_hidden.txt").write_text("h\n")
    _, lines, count = read_all(str(tmp_path / "*.txt"), 2)
    assert lines == ["a1", "a2", "b1"] and count == 3
    _, lines, _ = read_all([str(tmp_path / "c.log"), f"file://{tmp_path}/a.txt"], 3)
    assert lines == ["c1", "a1", "a2"]
    _, lines, _ = read_all(tmp_path / "b.txt", 1)  # os.PathLike works too
    assert lines == ["b1"]


def test_a_gzip_file_is_one_split(tmp_path: Path, blocks: None) -> None:
    data = "".join(f"línea {i}\r\n" if i % 3 else f"line {i}\n" for i in range(2000)).encode() + b"tail"
    path = tmp_path / "data.txt.gz"
    with gzip.open(path, "wb") as f:
        f.write(data)
    for split_size, min_partitions in ((1, 1), (10, 8), (1 << 30, 1)):
        splits, lines, count = read_all(str(path), split_size, min_partitions)
        assert len(splits) == 1 and splits[0].compression == "gzip"
        assert lines == reference_lines(data)
        assert count == expected_count(data) == 2001


def test_compressed_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.gz"
    with gzip.open(path, "wb"):
        pass
    assert read_all(str(path), 4)[1:] == ([], 0)


def test_memory_filesystem_and_storage_options() -> None:
    fs = fsspec.filesystem("memory")
    root = f"memory://mem-{uuid.uuid4().hex}"
    fs.pipe(f"{root}/x/part-0", b"1\n2\n3\n")
    fs.pipe(f"{root}/x/part-1", b"4\n5")
    fs.pipe(f"{root}/x/_SUCCESS", b"")
    try:
        splits, lines, count = read_all(f"{root}/x", 2, storage_options={})
        assert lines == ["1", "2", "3", "4", "5"] and count == 5
        assert all(s.url.startswith("memory://") for s in splits)
    finally:
        fs.rm(f"{root}", recursive=True)


def test_missing_path_and_empty_glob_say_what_to_check(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="does not exist") as err:
        plan_text_splits(missing, split_size=10, min_partitions=1)
    assert missing in str(err.value) and "check" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    with pytest.raises(FileNotFoundError, match="matched no files") as err:
        plan_text_splits(str(tmp_path / "*.csv"), split_size=10, min_partitions=1)
    assert "*.csv" in str(err.value)
    with pytest.raises(FileNotFoundError):
        plan_binary_splits(missing, record_length=4, split_size=10, min_partitions=1)


def test_split_size_0_is_the_file_systems_block_size(tmp_path: Path) -> None:
    # PySpark cuts a local file by Hadoop's fs.local.block.size, 32 MiB: sc.textFile of a
    # 100 MiB file has 4 partitions, of a 1 GB folder of four files 32 (PySpark 4.3)
    path = tmp_path / "big.txt"
    with open(path, "wb") as f:
        f.truncate(100 << 20)  # sparse: nothing is written
    mib = [(e - s) >> 20 for s, e in byte_ranges(plan_text_splits(str(path), split_size=0, min_partitions=2))]
    assert mib == [32, 32, 32, 4]
    records = plan_binary_splits(str(path), record_length=100, split_size=0, min_partitions=1)
    assert len(records) == 4 and records[0].end == (32 << 20) // 100 * 100
    assert inputs.block_size("file:///x") == 32 << 20 and inputs.block_size("s3://b/x") == 128 << 20
    assert len(plan_text_splits(str(path), split_size=1 << 27, min_partitions=2)) == 2  # set: as given


def test_split_planning_rules(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * 100)
    sizes = lambda **kw: [e - s for s, e in byte_ranges(plan_text_splits(str(path), **kw))]  # noqa: E731
    assert sizes(split_size=1000, min_partitions=4) == [25] * 4  # goal size 100 // 4
    assert sizes(split_size=1000, min_partitions=3) == [33, 33, 34]  # 100 // 3, and a tail within 10%
    assert sizes(split_size=1000, min_partitions=7) == [14] * 7 + [2]  # 2 / 14 > 1.1 - 1: a tail split
    assert sizes(split_size=33, min_partitions=1) == [33, 33, 34]  # the last split takes up to 10% more
    assert sizes(split_size=32, min_partitions=1) == [32, 32, 32, 4]
    assert sizes(split_size=95, min_partitions=1) == [100]  # 100 / 95 <= 1.1: no 5-byte tail split
    assert sizes(split_size=1, min_partitions=1000) == [1] * 100
    (tmp_path / "empty.txt").write_bytes(b"")
    assert plan_text_splits(str(tmp_path / "empty.txt"), split_size=8, min_partitions=2) == []
    with pytest.raises(ValueError, match="split_size"):
        plan_text_splits(str(path), split_size=-1, min_partitions=1)
    split = plan_text_splits(str(path), split_size=10, min_partitions=1)[3]
    assert pickle.loads(pickle.dumps(split)) == split


def test_real_block_size_with_a_file_bigger_than_one_block(tmp_path: Path) -> None:
    # the real read sizes: the first split ends inside a character of a line it finishes with a
    # tail read, and the second holds a line longer than a tail block
    line = "数据-data-ü\n".encode()
    data = b"ab\n" + line * ((inputs.BLOCK_SIZE + 100) // len(line)) + b"z" * (1 << 20) + b"\r\nend"
    path = tmp_path / "big.txt"
    path.write_bytes(data)
    splits, lines, count = read_all(str(path), inputs.BLOCK_SIZE - 1)
    assert len(splits) == 2 and data[byte_ranges(splits)[0][1]] & 0xC0 == 0x80  # a UTF-8 continuation byte
    assert count == len(lines) == expected_count(data)
    assert lines[:2] == ["ab", "数据-data-ü"] and lines[-3] == "数据-data-ü" and lines[-2] == "z" * (1 << 20) and lines[-1] == "end"


def test_binary_records_split_on_record_boundaries(tmp_path: Path, blocks: None) -> None:
    record_length = 7
    records = [bytes([i]) * record_length for i in range(23)]
    path = tmp_path / "r.bin"
    path.write_bytes(b"".join(records))
    for split_size in (1, 6, 7, 8, 20, 50, 161, 10_000):
        for min_partitions in (1, 3):
            splits = plan_binary_splits(
                str(path), record_length=record_length, split_size=split_size, min_partitions=min_partitions
            )
            assert all(s.start % record_length == 0 and s.end % record_length == 0 for s in splits)
            assert all(a.end == b.start for a, b in zip(splits, splits[1:]))
            got = [r for s in splits for r in read_binary_split(s, record_length)]
            assert got == records, (split_size, min_partitions)
    assert plan_binary_splits(str(path), record_length=7, split_size=14, min_partitions=1)[0] == BinarySplit(
        f"file://{path}", 0, 14
    )


def test_binary_records_refuses_a_partial_record(tmp_path: Path) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(b"x" * 10)
    with pytest.raises(ValueError) as err:
        plan_binary_splits(str(path), record_length=4, split_size=100, min_partitions=1)
    message = str(err.value)
    assert "bad.bin" in message and "10 bytes" in message and "record_length=4" in message
    (tmp_path / "empty.bin").write_bytes(b"")
    (splits,) = [plan_binary_splits(str(tmp_path / "empty.bin"), record_length=4, split_size=8, min_partitions=1)]
    assert [r for s in splits for r in read_binary_split(s, 4)] == []
    with pytest.raises(ValueError, match="record_length"):
        plan_binary_splits(str(path), record_length=0, split_size=100, min_partitions=1)


def test_reader_works_from_another_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a split's URL is absolute, so an executor started elsewhere reads the same bytes
    (tmp_path / "here").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "here" / "rel.txt").write_text("r1\nr2\n")
    monkeypatch.chdir(tmp_path / "here")
    splits = plan_text_splits("rel.txt", split_size=3, min_partitions=1)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert [line for s in splits for line in read_text_split(s)] == ["r1", "r2"]
