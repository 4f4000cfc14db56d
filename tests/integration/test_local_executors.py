"""End-to-end jobs on real executor subprocesses."""

from __future__ import annotations

import operator
import os
from collections import Counter

import pytest

import dagrun


def _word_file(tmp_path, lines=2000):
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    text = "\n".join(" ".join(words[(i * j) % 5] for j in range(i % 7 + 1)) for i in range(lines)) + "\n"
    path = tmp_path / "words.txt"
    path.write_text(text)
    return path, text


def test_word_count_matches_python(local_ctx, tmp_path):
    path, text = _word_file(tmp_path)
    got = (local_ctx.text_file(str(path), split_size=997)
           .flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(operator.add).collect())
    assert dict(got) == Counter(text.split())
    assert local_ctx.last_job.succeeded
    assert local_ctx.text_file(str(path), split_size=997).get_num_partitions() > 10


def test_three_stage_job(local_ctx):
    pairs = local_ctx.parallelize([(i % 13, i) for i in range(5000)], 7)
    result = (pairs.reduce_by_key(operator.add, 5)
              .map(lambda kv: (kv[1] % 3, kv[0]))
              .group_by_key(4)
              .map_values(sorted)
              .sort_by_key()
              .collect())
    expected: dict = {}
    for k in range(13):
        total = sum(i for i in range(5000) if i % 13 == k)
        expected.setdefault(total % 3, []).append(k)
    assert result == sorted((k, sorted(v)) for k, v in expected.items())
    assert len(local_ctx.last_job.stages) >= 3


def test_task_error_keeps_traceback_and_context_usable(local_ctx):
    def explode(x):
        if x == 3:
            raise ValueError(f"malformed record {x!r}")
        return x

    with pytest.raises(dagrun.JobFailed) as info:
        local_ctx.parallelize(range(8), 4).map(explode).collect()
    err = info.value
    assert "malformed record 3" in str(err)
    assert "Traceback" in err.remote_traceback and "explode" in err.remote_traceback
    assert err.partition == 1
    assert isinstance(err.__cause__, ValueError)
    assert len([a for a in local_ctx.last_job.attempts if a.partition == 1]) == 4
    assert local_ctx.parallelize(range(8), 4).sum() == 28


def test_killed_executor_task_reruns_elsewhere(tmp_path):
    marker = tmp_path / "killed-once"

    def kill_first_time(x):
        if x == 500 and not marker.exists():
            marker.write_text("x")
            os.kill(os.getpid(), 9)
        return (x % 10, x)

    with dagrun.Context(executor="local", max_executors=2, conf={"progress": "off"}) as ctx:
        got = ctx.parallelize(range(1000), 4).map(kill_first_time).reduce_by_key(operator.add).collect()
        lost = [a for a in ctx.last_job.attempts if a.outcome == "lost"]
    assert marker.exists()
    assert dict(got) == {k: sum(range(k, 1000, 10)) for k in range(10)}
    assert len(lost) == 1 and lost[0].partition == 2


def test_save_as_text_file_commits_parts(local_ctx, tmp_path):
    out = tmp_path / "out"
    local_ctx.parallelize(range(100), 3).map(lambda x: x * 2).save_as_text_file(str(out))
    names = sorted(os.listdir(out))
    assert names == ["_SUCCESS", "part-00000", "part-00001", "part-00002"]
    back = local_ctx.text_file(str(out)).map(int).collect()
    assert sorted(back) == [x * 2 for x in range(100)]
    with pytest.raises(FileExistsError):
        local_ctx.parallelize([1]).save_as_text_file(str(out))


def test_failed_save_leaves_no_parts(local_ctx, tmp_path):
    out = tmp_path / "out"

    def fail_on_last(x):
        if x == 99:
            raise RuntimeError("boom")
        return x

    with pytest.raises(dagrun.JobFailed):
        local_ctx.parallelize(range(100), 3).map(fail_on_last).save_as_text_file(str(out))
    assert not out.exists() or os.listdir(out) == []


def test_persist_reuses_store_output(tmp_path):
    marker_dir = tmp_path / "calls"
    marker_dir.mkdir()

    def record(x):
        (marker_dir / f"{x}-{os.getpid()}-{len(os.listdir(marker_dir))}").write_text("")
        return x * x

    # no speculation: on a loaded machine a backup of the first job's slowest task computes
    # its records again, even after that job has returned
    with dagrun.Context(executor="local", max_executors=2, conf={"progress": "off", "speculation": False}) as ctx:
        squares = ctx.parallelize(range(20), 4).map(record).persist()
        assert squares.sum() == sum(x * x for x in range(20))
        assert squares.count() == 20
        assert sorted(squares.collect()) == sorted(x * x for x in range(20))
        assert len(os.listdir(marker_dir)) == 20  # computed once, then read from the store
        squares.unpersist()


def test_shuffle_blocks_are_deleted_after_the_job(tmp_path):
    store = tmp_path / "store"
    with dagrun.Context(executor="local", max_executors=2, store=str(store), conf={"progress": "off"}) as ctx:
        ctx.parallelize(range(100), 4).map(lambda x: (x % 3, x)).reduce_by_key(operator.add).collect()
        leftovers = [os.path.join(d, f) for d, _, files in os.walk(store) for f in files]
    assert leftovers == []


def test_executors_of_another_build_get_no_task_and_the_job_says_why(tmp_path, monkeypatch):
    import time

    import scheduler.driver
    from scheduler.errors import IncompatibleExecutor

    monkeypatch.setattr(scheduler.driver, "build_id", lambda: "0123456789abcdef")  # the driver's code "changed"
    ran = tmp_path / "ran"
    with dagrun.Context(executor="local", max_executors=2, conf={"progress": "off"}) as ctx:
        started = time.monotonic()
        with pytest.raises(IncompatibleExecutor, match="another dagrun than this driver.*dagrun lambda deploy"):
            ctx.parallelize(range(4), 2).map(lambda x: ran.touch()).collect()
        assert time.monotonic() - started < 30
        assert not ran.exists()  # no task reached an executor of the other build
        refused = [e for e in ctx.last_job.executors if str(e.get("reason", "")).startswith("refused")]
        assert refused, ctx.last_job.executors
