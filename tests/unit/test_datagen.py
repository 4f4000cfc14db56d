"""dagrun.cli.gen: sizes, determinism and the format of each kind, on tiny outputs."""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import random
import re
import subprocess
import sys

import pytest

from dagrun.cli import gen as datagen
from dagrun.cli.gen import KINDS, add_gen_parser, generate, parse_size, run_gen, vocabulary


@pytest.mark.parametrize(("text", "expected"), [
    ("123", 123), ("0", 0), ("1GB", 10**9), ("64MB", 64 * 10**6), ("100KiB", 102400),
    ("4 GB", 4 * 10**9), ("1gb", 10**9), ("2MiB", 2 << 20), ("1GiB", 1 << 30), ("1TiB", 1 << 40),
    ("3TB", 3 * 10**12), ("7kb", 7000), ("12B", 12), ("1.5MB", 1_500_000), (" 8 KiB ", 8192),
    (42, 42),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "1 G", "1K", "12 bytes", "1.2.3MB", "-5MB", "1e", "nan",
                                  "inf", "MB64", "1 GB extra", -1, None, 1.5, True])
def test_parse_size_rejects_with_a_hint(text):
    with pytest.raises(ValueError, match="KiB|>= 0"):
        parse_size(text)


def _read_all(paths: list[str]) -> bytes:
    out = b""
    for path in paths:
        with open(path, "rb") as f:
            out += f.read()
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_same_arguments_give_identical_bytes(kind, tmp_path):
    first = generate(kind, str(tmp_path / "a"), size=30_000, seed=7, files=2)
    second = generate(kind, str(tmp_path / "b"), size=30_000, seed=7, files=2)
    other_seed = generate(kind, str(tmp_path / "c"), size=30_000, seed=8, files=2)
    assert [os.path.basename(p) for p in first] == [os.path.basename(p) for p in second]
    assert _read_all(first) == _read_all(second)
    assert _read_all(first) != _read_all(other_seed)


def test_identical_across_processes_with_different_hash_seeds(tmp_path):
    """str hashing is salted per process; nothing generated may depend on set/dict order."""
    script = (
        "import hashlib, sys\n"
        "from dagrun.cli.gen import KINDS, generate\n"
        "for kind in KINDS:\n"
        "    for path in generate(kind, sys.argv[1] + '/' + kind, size=20_000, seed=3, files=2):\n"
        "        print(hashlib.sha256(open(path, 'rb').read()).hexdigest())\n")
    other_seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    env = {**os.environ, "PYTHONHASHSEED": other_seed}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "child")],
                            env=env, capture_output=True, text=True, check=True)
    here = [hashlib.sha256(open(p, "rb").read()).hexdigest()
            for kind in KINDS for p in generate(kind, str(tmp_path / kind), size=20_000, seed=3,
                                                files=2)]
    assert result.stdout.split() == here and len(here) == 6


@pytest.mark.parametrize(("kind", "suffix"),
                         [("text", "txt"), ("records", "dat"), ("uservisits", "csv")])
def test_names_sizes_and_no_leftover_temp_files(kind, suffix, tmp_path):
    out = tmp_path / "new" / "dir"  # created on demand
    paths = generate(kind, str(out), size=50_000, files=3)
    assert paths == [str(out / f"part-{i:05d}.{suffix}") for i in range(3)]
    assert sorted(os.listdir(out)) == [f"part-{i:05d}.{suffix}" for i in range(3)]
    sizes = [os.path.getsize(p) for p in paths]
    if kind == "records":
        assert sizes == [16_700, 16_700, 16_600]  # 500 records split 167/167/166
    else:  # each file ends at the first line end at or after its share (16_667/16_667/16_666)
        for path, size, share in zip(paths, sizes, [16_667, 16_667, 16_666]):
            longest = max(map(len, _read_all([path]).splitlines(keepends=True)))
            assert share <= size < share + longest
            assert _read_all([path]).endswith(b"\n")


@pytest.mark.parametrize("kind", KINDS)
def test_zero_size_writes_empty_files(kind, tmp_path):
    paths = generate(kind, str(tmp_path), size=0, files=2)
    assert [os.path.getsize(p) for p in paths] == [0, 0]


def test_failure_leaves_neither_part_nor_temp_file(tmp_path, monkeypatch):
    real_chunk = datagen._text_chunk
    calls = []

    def failing_chunk(rng, lines):
        calls.append(lines)
        if len(calls) > 1:
            raise OSError("disk full")
        return real_chunk(rng, lines)

    monkeypatch.setattr(datagen, "_CHUNK_LINES", 100)  # force several chunks
    monkeypatch.setattr(datagen, "_text_chunk", failing_chunk)
    with pytest.raises(OSError, match="disk full"):
        generate("text", str(tmp_path), size=50_000)
    assert os.listdir(tmp_path) == []


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown kind"):
        generate("parquet", str(tmp_path), size=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        generate("text", str(tmp_path), size=-1)
    with pytest.raises(ValueError, match="files"):
        generate("text", str(tmp_path), size=10, files=0)


def test_records_follow_gensort_ascii_layout(tmp_path):
    paths = generate("records", str(tmp_path), size=123_456, seed=3, files=2)
    data = _read_all(paths)
    assert len(data) == 123_400  # whole records only
    records = [data[i:i + 100] for i in range(0, len(data), 100)]
    layout = re.compile(rb"[ -~]{10}  [0-9A-F]{32}  ([0-9A-F]{4}){13}\r\n", re.DOTALL)
    for number, record in enumerate(records):  # numbers run on across the two files
        assert len(record) == 100 and layout.fullmatch(record), record
        assert record[12:44] == b"%032X" % number
        filler = record[46:98]
        assert all(filler[j:j + 4] == filler[j:j + 1] * 4 for j in range(0, 52, 4))
    keys = [r[:10] for r in records]
    assert len(set(keys)) == len(keys)
    assert len(set(b"".join(keys))) > 90  # keys use (nearly) all 95 printable characters


def test_records_numbers_cross_hex_digit_boundaries(tmp_path):
    """Record numbers near 16**k carry correctly (the column builder's edge cases)."""
    for first in (0, 15, 250, 4090, 65530, 16**5 - 3, 16**7 - 100, 2**64 - 2):
        chunk = datagen._records_chunk(random.Random(0), first, 300)
        numbers = [int(chunk[i + 12:i + 44], 16) for i in range(0, len(chunk), 100)]
        assert numbers == list(range(first, first + 300))


def test_uservisits_rows_parse(tmp_path):
    (path,) = generate("uservisits", str(tmp_path), size=60_000, seed=1)
    lines = open(path, encoding="ascii").read().splitlines()
    assert len(lines) > 300
    date = re.compile(r"\d{4}-\d{2}-\d{2}")
    for line in lines:
        fields = line.split(",")
        assert len(fields) == 9, line
        ip, url, visit, revenue, agent, country, language, word, duration = fields
        assert len(ip.split(".")) == 4 and all(0 <= int(o) <= 255 for o in ip.split("."))
        assert re.fullmatch(r"http://[a-z]+\.(com|org|net)/[a-z]+", url)
        assert date.fullmatch(visit)
        assert re.fullmatch(r"\d+\.\d{5}", revenue) and 0 <= float(revenue) < 1
        assert agent and "%" not in agent
        assert re.fullmatch(r"[A-Z]{3}", country)
        assert re.fullmatch(r"[A-Z]{3}-[A-Z]{2}", language)
        assert re.fullmatch(r"[a-z]+", word)
        assert 1 <= int(duration) <= 100
    assert len({line[:8] for line in lines}) > 100  # many IP prefixes, not a handful


def test_vocabulary_has_ten_words_of_every_length():
    words = vocabulary()
    assert len(set(words)) == len(words)
    per_length = collections.Counter(map(len, words))
    assert sorted(per_length) == list(range(1, 21))
    assert min(per_length.values()) >= 10
    assert all(re.fullmatch(r"[a-z]+", w) for w in words)


def test_text_lines_cover_every_word_length(tmp_path):
    (path,) = generate("text", str(tmp_path), size=40_000, seed=5)
    lines = open(path, encoding="ascii").read().split("\n")
    assert lines[-1] == ""  # ends with "\n"
    lines = lines[:-1]
    assert all(10 <= len(line.split(" ")) <= 15 for line in lines)
    counts = collections.Counter(word for line in lines for word in line.split(" "))
    assert set(counts) <= set(vocabulary())
    assert {len(w) for w in counts} == set(range(1, 21))
    # Zipf: the most frequent word is about 1 / H(9490, 1.1) ~ 15% of all words.
    top, top_count = counts.most_common(1)[0]
    assert top == vocabulary()[0] and 0.12 < top_count / sum(counts.values()) < 0.18


def test_gen_subcommand(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="dagrun")
    add_gen_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["gen", "records", str(tmp_path), "--size", "2 KB", "--files", "2"])
    assert (args.size, args.seed, args.files) == (2000, 0, 2)
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[0].endswith("1000 bytes") and "2000 bytes" in out[-1]
    defaults = parser.parse_args(["gen", "text", str(tmp_path)])
    assert defaults.size == 64 * 10**6 and defaults.func is run_gen
    with pytest.raises(SystemExit):
        parser.parse_args(["gen", "text", str(tmp_path), "--size", "lots"])
    assert "KiB" in capsys.readouterr().err


def test_uservisits_sourceip_groups_follow_the_real_data(tmp_path):
    # Uniform addresses: 145.8-byte rows; ~2,000 rows in 300 kB hit ~1,990 distinct prefixes
    # (the prefix space has 2.26 M values), and short octets appear ("1.2.", "10.200.3").
    (path,) = generate("uservisits", str(tmp_path), size=300_000, seed=3)
    lines = open(path, encoding="ascii").read().splitlines()
    assert 140 < 300_000 / len(lines) < 152
    prefixes = {line[:8] for line in lines}
    assert len(prefixes) > 0.97 * len(lines)
    assert any(line.split(",")[0].split(".")[0] in {str(n) for n in range(100)} for line in lines)
    first_octets = [int(line.split(".")[0]) for line in lines]
    assert min(first_octets) < 10 and max(first_octets) > 245


def test_uservisits_groups_knob(tmp_path):
    (path,) = generate("uservisits", str(tmp_path), size=200_000, seed=1, groups=50)
    lines = open(path, encoding="ascii").read().splitlines()
    assert len({line[:8] for line in lines}) == 50
    assert all(line[7] == "." for line in lines)  # "a.b." with three-digit octets
    again = generate("uservisits", str(tmp_path / "b"), size=200_000, seed=1, groups=50)
    assert open(again[0], "rb").read() == open(path, "rb").read()


@pytest.mark.parametrize("kind, groups", [("uservisits", 0), ("uservisits", 24_337), ("text", 10),
                                          ("uservisits", True)])
def test_groups_refused_clearly(tmp_path, kind, groups):
    with pytest.raises(ValueError, match="groups"):
        generate(kind, str(tmp_path / "x"), size=1000, groups=groups)
    assert not (tmp_path / "x").exists()
