"""``history_dir`` on an S3 bucket (moto): each finished job is written there, per user, and
``dagrun report`` lists and renders it from there."""

from __future__ import annotations

import json

import pytest

import dagrun
from dagrun.cli.main import main
from dagrun.observe import history


@pytest.mark.timeout(120)
def test_job_history_on_s3_is_written_and_rendered_by_dagrun_report(s3, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGRUN_HOME", str(tmp_path / "home"))  # the local history must stay empty
    url = f"s3://{s3.store_bucket}/dagrun-history"
    with dagrun.Context(executor="inline", conf={"progress": "off", "history_dir": url}) as ctx:
        ctx.parallelize(range(10), 2).map(lambda x: (x % 3, x)).reduce_by_key(lambda a, b: a + b).collect()
        job_id = ctx.last_job.job_id
    key = f"dagrun-history/{history.user()}/{job_id}.json"
    assert key in s3.keys(s3.store_bucket, "dagrun-history/")
    record = json.loads(s3.client.get_object(Bucket=s3.store_bucket, Key=key)["Body"].read())
    assert record["job_id"] == job_id and record["user"] == history.user() and record["succeeded"]
    assert not (tmp_path / "home" / "jobs").exists()

    monkeypatch.setenv("DAGRUN_HISTORY_DIR", url)
    assert main(["report", "--list"]) == 0
    assert job_id in capsys.readouterr().out
    out = tmp_path / "report.html"
    assert main(["report", "--last", "--out", str(out)]) == 0
    assert job_id in out.read_text()
    assert main(["report", job_id.rpartition("-")[2], "--out", str(out), "--history-dir", url]) == 0


@pytest.mark.timeout(60)
def test_records_are_kept_per_user_and_pruned_per_user(s3, monkeypatch):
    url = f"s3://{s3.store_bucket}/shared"
    for n in range(3):
        history.save({"job_id": f"app-1-j{n}", "finished": n}, keep=2, history_dir=url)
    monkeypatch.setattr(history, "user", lambda: "someone-else")
    history.save({"job_id": "app-2-j0", "finished": 9}, keep=2, history_dir=url)
    assert history.load(None, history_dir=url)["job_id"] == "app-2-j0"  # this user's last, not the newest
    monkeypatch.undo()
    mine = [k.rpartition("/")[2] for k in s3.keys(s3.store_bucket, f"shared/{history.user()}/")]
    assert sorted(mine) == ["app-1-j1.json", "app-1-j2.json"]
    with pytest.raises(history.AmbiguousJob) as err:
        history.save({"job_id": "app-3-j2", "finished": 10}, keep=5, history_dir=url)
        history.load("j2", history_dir=url)
    assert set(err.value.candidates) == {"app-1-j2", "app-3-j2"} and "app-3-j2" in str(err.value)
