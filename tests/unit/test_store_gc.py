"""``dagrun store gc`` on a local store: age decides, per job, by its newest block."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dagrun.cli.main import main as dagrun_main
from dagrun.cli.store import collect_garbage
from shuffle.layout import block_key, job_dirs, parse_block_key
from shuffle.store import BlockStore

HOUR = 3600.0


def write(store: BlockStore, root: Path, key: str, age: float) -> None:
    store.put(key, b"x" * 10)
    then = time.time() - age
    os.utime(root / key, (then, then))


@pytest.fixture
def store(tmp_path: Path) -> BlockStore:
    s = BlockStore(str(tmp_path))
    write(s, tmp_path, block_key("app-1-j0", 0, 0, 0), 3 * HOUR)  # crashed long ago
    write(s, tmp_path, block_key("app-1-j0", 0, 1, 0), 2 * HOUR)
    write(s, tmp_path, block_key("app-1-j0", 1, 0, 1), 2 * HOUR)
    write(s, tmp_path, block_key("app-2-j3", 0, 0, 0), 60)  # running now
    write(s, tmp_path, block_key("app-3-j1", 0, 0, 0), 5 * HOUR)  # one old block ...
    write(s, tmp_path, block_key("app-3-j1", 0, 1, 0), 10)  # ... but still writing
    write(s, tmp_path, "data/input.txt", 9 * HOUR)  # not ours
    write(s, tmp_path, "0a/readme", 9 * HOUR)  # looks like a prefix, is not a block
    return s


def test_old_jobs_go_young_jobs_and_other_files_stay(store: BlockStore, tmp_path: Path) -> None:
    report = collect_garbage(store, older_than=HOUR)
    assert sorted(report.removed) == ["app-1-j0"] and report.removed["app-1-j0"][:2] == (3, 30)
    assert sorted(report.kept) == ["app-2-j3", "app-3-j1"] and report.other_keys == 2
    left = store.list("")
    assert not [k for k in left if "app-1-j0" in k]
    assert "data/input.txt" in left and "0a/readme" in left and len(left) == 5
    assert not [d for d in job_dirs("app-1-j0") if (tmp_path / d).exists()]  # no empty folders left


def test_dry_run_and_the_command_line(store: BlockStore, capsys: pytest.CaptureFixture) -> None:
    before = store.list("")
    assert dagrun_main(["store", "gc", store.url, "--older-than", "1h", "--dry-run"]) == 0
    assert store.list("") == before
    assert "would remove app-1-j0: 3 blocks" in capsys.readouterr().out
    assert dagrun_main(["store", "gc", store.url, "--older-than", "0s"]) == 0
    assert "removed 3 jobs (6 blocks)" in capsys.readouterr().out
    assert store.list("") == ["0a/readme", "data/input.txt"]


def test_parse_block_key_accepts_only_block_keys() -> None:
    key = block_key("app-1-j0", 3, 17, 2, prefixes=256)
    parts = parse_block_key(key)
    assert parts is not None and parts[1:] == ("app-1-j0", 3, 17, 2) and parts.job_dir == key.rsplit("/", 2)[0]
    for other in ("x/" + key, key + "/more", "0a/job/s1/m2", "0A/job/s1/m2-a0", "0a/job/s1/readme"):
        assert parse_block_key(other) is None
