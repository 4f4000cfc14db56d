"""Lines and delimited records with their byte offsets (dagrun/runtime/line_offsets.py): every
split plan gives the records a reader from the file's start gives, each once."""

from __future__ import annotations

import random

import pytest

from dagrun.runtime.inputs import plan_text_splits
from dagrun.runtime.line_offsets import read_delimited, read_offset_lines


def whole_file_records(data: bytes, delimiter: bytes) -> list[tuple[int, str]]:
    out, pos = [], 0
    while pos < len(data):
        end = data.find(delimiter, pos)
        if end < 0:
            out.append((pos, data[pos:].decode()))
            break
        out.append((pos, data[pos:end].decode()))
        pos = end + len(delimiter)
    return out


def read_all(path: str, split_size: int, read) -> list[tuple[int, str]]:
    return [r for s in plan_text_splits(path, split_size=split_size, min_partitions=1) for b in read(s) for r in b]


@pytest.mark.parametrize("delimiter", [b"|", b"\n\n", b"END\n", b"\r\n", b"ab"])
def test_every_split_plan_reads_each_record_once(tmp_path, delimiter):
    rng = random.Random(delimiter)
    pieces = ["x", "yy", "\n", "a", "b", "|", "END", "zz" * 3, "\r"]
    path = str(tmp_path / "records.txt")
    for _ in range(150):
        data = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 60))).encode()
        if len(delimiter) == 2 and delimiter[:1] == delimiter[1:] and delimiter + delimiter[:1] in data:
            continue  # a run of a self-overlapping delimiter may be cut differently at a split boundary
        with open(path, "wb") as f:
            f.write(data)
        want = whole_file_records(data, delimiter)
        for split_size in (1, 2, 3, 7, len(data)):
            assert read_all(path, split_size, lambda s: read_delimited(s, delimiter)) == want, (data, split_size)


def test_line_offsets_count_every_ending_and_the_bom(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_bytes(b"\xef\xbb\xbfab\r\ncd\n\nxyz\rlast")
    for split_size in (1, 3, 100):
        assert read_all(str(path), split_size, read_offset_lines) == [
            (0, "ab"), (7, "cd"), (10, ""), (11, "xyz"), (15, "last")]


def test_an_empty_delimiter_is_refused(tmp_path):
    (tmp_path / "a.txt").write_text("abc")
    with pytest.raises(ValueError, match="delimiter is empty"):
        read_all(str(tmp_path / "a.txt"), 10, lambda s: read_delimited(s, b""))


@pytest.mark.parametrize("suffix, compress", [(".bz2", "bz2"), (".gz", "gzip")])
def test_compressed_files_give_every_record(tmp_path, suffix, compress):
    import bz2
    import gzip

    data = b"".join(b"rec%d|" % i for i in range(100000))
    path = tmp_path / f"records.txt{suffix}"
    path.write_bytes((bz2 if compress == "bz2" else gzip).compress(data))
    got = read_all(str(path), 50000, lambda s: read_delimited(s, b"|"))  # a .bz2 file has several splits
    assert got == whole_file_records(data, b"|")
