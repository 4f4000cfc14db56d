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


# ---- dagrun's layout exactly, temporaries, leases, the dry run (issue 13, Build 2) ----------

from shuffle.gc import LEASE_TTL, Lease  # noqa: E402
from shuffle.layout import lease_key, result_key  # noqa: E402

FOREIGN = ["ab/foo/notes.txt", "0f/my-data/s3/m4-a1", "0a/app-1-j0/s1/m2-a0/readme.txt",
           "abc/app-1-j0/s0/m0-a0", "0a/app-1-j0/s0/m0-a0.bak", "0a/app-x-j0/s0/m0-a0", "0a/job-1/s0/m0-a0",
           "_dagrun/leases/notes.txt"]


def test_foreign_objects_shaped_like_blocks_are_never_deleted(tmp_path: Path) -> None:
    s = BlockStore(str(tmp_path))
    for key in FOREIGN:
        write(s, tmp_path, key, 9 * HOUR)
    ours = block_key("app-20260101000000-abcdef-j4", 0, 1, 0)
    write(s, tmp_path, ours, 9 * HOUR)
    report = collect_garbage(s, older_than=0)
    assert report.deleted == [ours] and report.other_keys == len(FOREIGN)
    assert s.list("") == sorted(FOREIGN)


def test_prefix_width_as_configured(tmp_path: Path) -> None:
    s = BlockStore(str(tmp_path))
    wide = block_key("app-9-j0", 0, 0, 0, prefixes=4096)  # three hex digits
    write(s, tmp_path, wide, 9 * HOUR)
    assert collect_garbage(s, older_than=0).deleted == []  # not the width of 16 prefixes
    assert collect_garbage(s, older_than=0, prefixes=4096).deleted == [wide]
    assert s.list("") == []


def test_a_job_that_left_only_temporaries_and_results_goes(tmp_path: Path) -> None:
    s = BlockStore(str(tmp_path))
    key = block_key("app-5-j0", 2, 3, 1)
    folder = tmp_path / key.rsplit("/", 1)[0]
    folder.mkdir(parents=True)
    tmp = folder / ".m3-a1.tmp-4242-0badcafe"
    tmp.write_bytes(b"half a block")
    then = time.time() - 3 * HOUR
    os.utime(tmp, (then, then))
    write(s, tmp_path, result_key("app-5-j0", 7, 0), 3 * HOUR)
    report = collect_garbage(s, older_than=HOUR)
    assert list(report.removed) == ["app-5-j0"] and report.temporaries == 1
    assert not tmp.exists() and s.list("") == []
    assert not (tmp_path / key.split("/")[0] / "app-5-j0").exists()


def test_a_live_lease_keeps_every_job_of_its_context(tmp_path: Path) -> None:
    s = BlockStore(str(tmp_path))
    cached = block_key("app-7-cache", 0, 0, 0)
    running = block_key("app-7-j2", 1, 0, 0)
    for key in (cached, running):
        write(s, tmp_path, key, 9 * HOUR)
    lease = Lease(s, "app-7")
    lease.hold()
    try:
        report = collect_garbage(s, older_than=0)
        assert report.removed == {} and report.live == {"app-7-cache", "app-7-j2"}
        assert s.exists(cached) and s.exists(running) and s.exists(lease_key("app-7"))
    finally:
        lease.release()
    assert not s.exists(lease_key("app-7"))
    assert sorted(collect_garbage(s, older_than=0).removed) == ["app-7-cache", "app-7-j2"]


def test_a_lease_not_refreshed_within_its_ttl_is_dead(tmp_path: Path) -> None:
    s = BlockStore(str(tmp_path))
    write(s, tmp_path, block_key("app-8-cache", 0, 0, 0), 9 * HOUR)
    write(s, tmp_path, lease_key("app-8"), LEASE_TTL + 5)  # its driver died a while ago
    report = collect_garbage(s, older_than=HOUR)
    assert list(report.removed) == ["app-8-cache"] and lease_key("app-8") in report.deleted
    assert s.list("") == []


def test_dry_run_lists_exactly_what_goes(store: BlockStore, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for key in FOREIGN:
        write(store, tmp_path, key, 9 * HOUR)
    before = set(store.list(""))
    assert dagrun_main(["store", "gc", store.url, "--older-than", "1h", "--dry-run"]) == 0
    listed = {line.split("would delete ", 1)[1] for line in capsys.readouterr().out.splitlines()
              if "would delete " in line}
    assert set(store.list("")) == before
    assert dagrun_main(["store", "gc", store.url, "--older-than", "1h"]) == 0
    assert before - set(store.list("")) == listed and len(listed) == 3


def test_gc_keeps_a_running_contexts_persisted_blocks(tmp_path: Path) -> None:
    import dagrun

    url = str(tmp_path / "store")
    with dagrun.Context(executor="inline", store=url, progress="off", ledger="off", job_history=0) as ctx:
        rdd = ctx.parallelize(range(100), 4).map(lambda x: x * 2).persist()
        assert rdd.sum() == 9900
        s = BlockStore(url)
        assert s.exists(lease_key(ctx.app_id))
        cache_blocks = [k for k in s.list("") if "-cache/" in k]
        assert cache_blocks
        report = collect_garbage(s, older_than=0)
        assert report.deleted == [] and report.live == {f"{ctx.app_id}-cache"}
        assert rdd.count() == 100 and [k for k in s.list("") if "-cache/" in k] == cache_blocks
    assert s.list("") == []  # the cache and the lease went with the Context
