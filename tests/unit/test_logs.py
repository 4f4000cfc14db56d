"""dagrun's INFO events and the one-line JSON formatter."""

from __future__ import annotations

import io
import json
import logging

import pytest

import dagrun
from dagrun.observe.logs import configure


@pytest.fixture
def json_lines():
    stream = io.StringIO()
    handler = configure("json", stream)
    yield stream
    configure("")
    logging.getLogger("dagrun").setLevel(logging.NOTSET)
    assert handler not in logging.getLogger("dagrun").handlers


def test_a_job_with_a_retry_logs_one_json_line_per_event(json_lines, tmp_path, monkeypatch):
    monkeypatch.setenv("DAGRUN_HOME", str(tmp_path))
    faults = [{"kind": "fail", "stage": 0, "partition": 1}]
    with dagrun.Context(executor="inline", conf={"progress": "off", "faults": faults}) as ctx:
        ctx.parallelize(range(8), 2).map(lambda x: (x % 2, x)).reduce_by_key(lambda a, b: a + b, 2).collect()
        job_id = ctx.last_job.job_id
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    # The start may first log the sweep of folders an earlier killed driver left: not an event.
    events = [(line["event"], line.get("stage")) for line in lines if "event" in line]
    assert events[0] == ("job_start", None) and events[-1] == ("job_end", None)
    stages = [e for e in events if e[0] in ("stage_start", "stage_end")]
    assert len(stages) == 4 and {e[0] for e in stages} == {"stage_start", "stage_end"}
    failed = [line for line in lines if line.get("event") == "fail"]
    assert len(failed) == 1 and failed[0]["partition"] == 1 and failed[0]["job"] == job_id
    assert all({"time", "level", "logger", "message"} <= line.keys() and line["level"] == "INFO" for line in lines)


def test_nothing_is_printed_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGRUN_HOME", str(tmp_path))
    with dagrun.Context(executor="inline", conf={"progress": "off", "ledger": "off"}) as ctx:
        ctx.parallelize([1, 2]).count()
    assert capsys.readouterr() == ("", "")


def test_an_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="log_format 'xml'"):
        configure("xml")
