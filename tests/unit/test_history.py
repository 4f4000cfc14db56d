"""Job records under $DAGRUN_HOME, the ledger line's setting, and the report of an empty job."""

from __future__ import annotations

import io
import json
import os

import pytest

import dagrun
from dagrun.observe import history
from dagrun.observe.ledger import print_line
from dagrun.observe.report import render


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGRUN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_each_job_is_recorded_and_only_the_newest_are_kept(home):
    with dagrun.Context(executor="inline", conf={"progress": "off", "job_history": 3}) as ctx:
        for n in range(5):
            assert ctx.parallelize(range(10), 2).map(lambda x, n=n: x + n).sum() == 45 + 10 * n
            os.utime(home / "jobs" / f"{ctx.last_job.job_id}.json", (1e9 + n, 1e9 + n))  # mtime order = run order
        ids = [job.job_id for job in ctx.jobs]
    assert sorted(os.listdir(home / "jobs")) == sorted(f"{i}.json" for i in ids[-3:])
    record = history.load()
    assert record["job_id"] == ids[-1] and record["succeeded"]
    assert history.load("j3")["job_id"] == ids[3]
    assert json.loads((home / "jobs" / f"{ids[2]}.json").read_text())["cost"]["total"]["tasks"] == 2


def test_a_failed_job_is_recorded_too(home):
    with dagrun.Context(executor="inline", conf={"progress": "off", "max_attempts": 1}) as ctx:
        with pytest.raises(dagrun.JobFailed):
            ctx.parallelize(range(4), 2).map(lambda x: 1 / 0).collect()
    record = history.load()
    assert not record["succeeded"] and record["attempts"][0]["outcome"] == "failed"
    assert "ZeroDivisionError" in render(record)


def test_recording_never_fails_a_job(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DAGRUN_HOME", str(blocker))  # makedirs under a file fails
    with dagrun.Context(executor="inline", conf={"progress": "off"}) as ctx:
        assert ctx.parallelize(range(3)).count() == 3
    with pytest.raises(FileNotFoundError, match="run a job first"):
        history.load()


def test_history_can_be_turned_off(home):
    with dagrun.Context(executor="inline", conf={"progress": "off", "job_history": 0}) as ctx:
        ctx.parallelize(range(3)).count()
    assert not (home / "jobs").exists()


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("setting, tty, shown", [("on", False, True), ("off", True, False), ("auto", True, True),
                                                 ("auto", False, False)])
def test_ledger_line_setting(home, setting, tty, shown):
    with dagrun.Context(executor="inline", conf={"progress": "off", "ledger": "off"}) as ctx:
        ctx.parallelize(range(3)).count()
        stream = Tty() if tty else io.StringIO()
        print_line(ctx.last_job, setting, stream)
    text = stream.getvalue()
    assert (text.startswith(f"dagrun ledger {ctx.last_job.job_id}: ") and text.count("\n") == 1) == shown
    assert bool(text) == shown


def test_report_of_an_empty_record_renders():
    page = render({"job_id": "j", "stages": [], "attempts": [], "executors": [], "events": []})
    assert "id='dag'" in page and "id='timeline'" in page and "no cost data" in page
