"""Credentials in URLs never reach job history, reports or messages (issue 13, Build 9)."""

from __future__ import annotations

import glob
import logging
import os

import pytest

import dagrun
from dagrun.observe import history
from shuffle.layout import redact, redact_all

SECRET = "hunter2/with+slash"  # AWS secret keys may hold "/" and "+"


@pytest.mark.parametrize(("text", "expected"), [
    (f"s3://AKIAX:{SECRET}@bucket/tmp", "s3://bucket/tmp"),
    ("https://user@host/x and s3://a:b@c/d", "https://host/x and s3://c/d"),
    ("s3://bucket/key@v2", "s3://bucket/key@v2"),  # an "@" in a key is not a credential
    ("/plain/path", "/plain/path"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_redact_all_walks_records():
    assert redact_all({"a": [f"s3://u:{SECRET}@b/x", 3], "b": {"c": "x"}}) == {"a": ["s3://b/x", 3], "b": {"c": "x"}}


def test_history_report_and_messages_hold_no_credentials(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DAGRUN_HOME", str(tmp_path / "home"))
    url = f"memory://admin:{SECRET}@bucket/shuffle"
    caplog.set_level(logging.DEBUG, logger="dagrun")
    with dagrun.Context(executor="inline", store=url, conf={"progress": "off", "ledger": "off"}) as ctx:
        assert sorted(ctx.parallelize(range(10), 2).map(lambda x: (x % 2, x)).reduce_by_key(int.__add__).collect()) \
            == [(0, 20), (1, 25)]
        with pytest.raises(FileNotFoundError) as missing:
            ctx.text_file(f"memory://admin:{SECRET}@bucket/nope/*.txt").collect()
        report = ctx.last_job.report(str(tmp_path / "job.html"))
        shown = repr(ctx.store)
    (record,) = glob.glob(os.path.join(history.jobs_dir(), "*.json"))
    for text in (open(record).read(), open(report).read(), shown, str(missing.value), caplog.text):
        assert SECRET not in text and "admin" not in text
    assert "memory://bucket/shuffle" in open(record).read()
