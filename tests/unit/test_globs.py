"""Hadoop's {a,b} glob alternatives in input paths, as PySpark 4.3 reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagrun.runtime.globs import expand_braces
from dagrun.runtime.inputs import plan_text_splits, read_text_split


@pytest.mark.parametrize("pattern, expected", [
    ("plain/*.txt", ["plain/*.txt"]),
    ("{a,b}", ["a", "b"]),
    ("x{y}z", ["xyz"]),
    ("{a1,{uni-é,q?}}.txt", ["a1.txt", "uni-é.txt", "q?.txt"]),
    ("{a,b}-{1,2}", ["a-1", "a-2", "b-1", "b-2"]),
    ("{a,a}.txt", ["a.txt"]),
    ("{,x}y", ["y", "xy"]),
    ("close}only", ["close}only"]),
])
def test_braces_expand_to_their_alternatives(pattern, expected) -> None:
    assert expand_braces(pattern) == expected


def test_an_unclosed_brace_is_an_error_naming_the_pattern() -> None:
    with pytest.raises(ValueError, match=r"illegal file pattern 'logs/\{a1.txt'.*no '\}'"):
        expand_braces("logs/{a1.txt")


def lines(path: str) -> list[str]:
    return sorted(line for s in plan_text_splits(path, split_size=0, min_partitions=1) for line in read_text_split(s))


def test_text_file_reads_what_the_alternatives_match_once(tmp_path: Path) -> None:
    for day in ("2024-01-01", "2024-01-02", "2024-02-01"):
        (tmp_path / day).mkdir()
        (tmp_path / day / "part-0.txt").write_text(f"{day}\n")
        (tmp_path / day / "_SUCCESS").write_text("")
    assert lines(f"{tmp_path}/2024-01-{{01,02}}/part-*") == ["2024-01-01", "2024-01-02"]
    assert lines(f"{tmp_path}/{{2024-01-01,2024-0*}}/part-0.txt") == ["2024-01-01", "2024-01-02", "2024-02-01"]
    assert lines(f"{tmp_path}/{{2024-01-01,missing}}/part-0.txt") == ["2024-01-01"]  # as in Hadoop
    with pytest.raises(FileNotFoundError, match="matched no files"):
        lines(f"{tmp_path}/{{missing,gone}}/part-0.txt")


@pytest.mark.parametrize("path", ["", ["a.txt", ""]])
def test_an_empty_input_path_is_an_error_not_the_current_folder(path) -> None:
    with pytest.raises(ValueError, match="an input path is empty"):
        plan_text_splits(path, split_size=0, min_partitions=1)
