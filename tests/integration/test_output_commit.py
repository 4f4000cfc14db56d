"""save_as_text_file's commit point is atomic and exclusive (issue 13, Build 8)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import dagrun
from dagrun.runtime.output_marks import IncompleteOutputError

CONF = {"progress": "off", "ledger": "off", "job_history": 0}


def rendezvous(folder: str, me: str, other: str):
    """A map function that holds each task until the other save's tasks have started too, so
    both saves are past their exists-check before either commits."""
    def wait(x):
        open(os.path.join(folder, f"{me}-{x}"), "w").close()
        deadline = time.monotonic() + 30
        while not any(n.startswith(other) for n in os.listdir(folder)):
            if time.monotonic() > deadline:
                raise TimeoutError("the other save never started")
            time.sleep(0.01)
        return f"{me}-{x}"
    return wait


def race(url_a: str, url_b: str, folder: str, store_options: dict | None = None) -> dict:
    outcome: dict[str, BaseException | None] = {}

    def save(me: str, other: str, url: str) -> None:
        with dagrun.Context(executor="inline", max_executors=2, conf={**CONF, "storage_options": store_options or {}}) as c:
            try:
                c.parallelize(range(6), 3).map(rendezvous(folder, me, other)).save_as_text_file(url)
                outcome[me] = None
            except FileExistsError as exc:
                outcome[me] = exc
            finally:  # a save refused at its exists-check has no tasks to meet the other's
                open(os.path.join(folder, f"{me}-done"), "w").close()

    threads = [threading.Thread(target=save, args=("a", "b", url_a)), threading.Thread(target=save, args=("b", "a", url_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a save hung"
    return outcome


def test_two_concurrent_saves_give_one_winner(tmp_path, monkeypatch):
    out, folder = str(tmp_path / "out"), str(tmp_path / "meet")
    os.mkdir(folder)
    from fsspec.implementations.local import LocalFileSystem

    # both saves pass the exists-check before either creates anything: the race the claim decides
    past_check, real_makedirs = threading.Barrier(2, timeout=30), LocalFileSystem.makedirs

    def makedirs(self, path, exist_ok=False):
        if "_temporary" in str(path):
            past_check.wait()
        return real_makedirs(self, path, exist_ok=exist_ok)

    monkeypatch.setattr(LocalFileSystem, "makedirs", makedirs)
    started = time.monotonic()
    outcome = race(out, out, folder)
    assert time.monotonic() - started < 60
    winners = [k for k, v in outcome.items() if v is None]
    assert len(winners) == 1 and len(outcome) == 2, outcome
    loser = outcome["b" if winners == ["a"] else "a"]
    assert "committed by another save" in str(loser)
    assert sorted(os.listdir(out)) == ["_SUCCESS", "part-00000", "part-00001", "part-00002"]
    with dagrun.Context(executor="inline", conf=CONF) as c:
        assert sorted(c.text_file(out).collect()) == sorted(f"{winners[0]}-{i}" for i in range(6))


CRASH = textwrap.dedent("""
    import os, sys
    import fsspec.implementations.local as local
    import dagrun

    real_mv, moved = local.LocalFileSystem.mv, []
    def mv(self, a, b, **kw):  # the driver dies after its first move, mid-commit
        if moved:
            os._exit(9)
        moved.append(b)
        return real_mv(self, a, b, **kw)
    local.LocalFileSystem.mv = mv
    with dagrun.Context(executor="inline", conf={"progress": "off", "ledger": "off", "job_history": 0}) as c:
        c.parallelize(range(6), 3).save_as_text_file(sys.argv[1])
""")


def test_a_crashed_commit_is_recognised_and_the_message_says_how_to_clean(tmp_path):
    out, script = str(tmp_path / "out"), tmp_path / "crash.py"
    script.write_text(CRASH)
    done = subprocess.run([sys.executable, str(script), out], capture_output=True, timeout=120)
    assert done.returncode == 9, done.stderr.decode()[-2000:]
    names = set(os.listdir(out))
    assert "_SUCCESS" not in names and "_COMMIT" in names and "part-00000" in names
    with dagrun.Context(executor="inline", conf=CONF) as c:
        with pytest.raises(IncompleteOutputError, match=r"did not finish.*Delete the folder.*part-\*"):
            c.text_file(out).collect()
        with pytest.raises(FileExistsError, match="did not finish.*delete the folder"):
            c.parallelize([1]).save_as_text_file(out)
        assert c.text_file(os.path.join(out, "part-*")).collect() == ["0", "1"]  # asked for explicitly


def test_a_failed_save_leaves_nothing_and_a_rerun_succeeds(tmp_path):
    out = str(tmp_path / "out")

    def boom(x):
        if x == 4:
            raise ValueError("no")
        return x

    with dagrun.Context(executor="inline", conf={**CONF, "max_attempts": 1}) as c:
        with pytest.raises(Exception, match="no"):
            c.parallelize(range(6), 3).map(boom).save_as_text_file(out)
        assert not os.path.exists(out) or os.listdir(out) == []
        c.parallelize(range(6), 3).save_as_text_file(out)
        assert sorted(os.listdir(out)) == ["_SUCCESS", "part-00000", "part-00001", "part-00002"]


def test_an_empty_output_path_is_refused_and_nothing_is_written_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with dagrun.Context(executor="inline", conf=CONF) as c:
        with pytest.raises(ValueError, match="the output path is empty"):
            c.parallelize([1, 2]).save_as_text_file("")
    assert os.listdir(tmp_path) == []
