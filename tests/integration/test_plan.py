"""``dagrun plan``: projected time and cost on Lambda, with the assumptions printed."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SORT = os.path.join(ROOT, "examples", "sort_records.py")


def dagrun(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dagrun.cli", *args], capture_output=True, text=True,
                          timeout=240, cwd=ROOT)
    assert done.returncode == 0, f"dagrun {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_plan_sort_prints_time_and_cost_with_its_assumptions():
    out = dagrun("plan", SORT, "--input-size", "100GB", "--executors", "400", "--memory-mb", "3008")
    assert "at 100.00 GB of input on 400 Lambda executors (3008 MB, x86_64)" in out
    assert "2 jobs planned, 2 dry-run in process" in out  # sort_by_key's sampling job, then the sort
    maps = math.ceil(100e9 / (128 << 20))
    assert f" {maps:>7,} " in out  # input stages: one task per 128 MiB split
    time_line = next(line for line in out.splitlines() if line.strip().startswith("time: ~"))
    cost_line = next(line for line in out.splitlines() if line.strip().startswith("cost: $"))
    assert "executors were launched" in time_line
    assert "compute $" in cost_line and "S3 requests $" in cost_line
    assumptions = out.split("Assumptions:", 1)[1]
    for needle in ("per-executor throughput", "1769 MB", "concurrency quota 1000",
                   "1000 new environments per 10 s", "ramp 100 + 100*t", "1 GET per (map output, reduce task) pair",
                   "$0.0000166667/GB-s", "$0.20/M invocations", "PUT/LIST $0.0050/1k", "GET $0.0004/1k"):
        assert needle in assumptions, needle


def test_plan_json_is_consistent(tmp_path):
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"bench": "sort", "per_executor_mb_per_s": 25.0, "executors": 2, "size": 256e6}))
    report = json.loads(dagrun("plan", SORT, "--input-size", "100GB", "--executors", "400", "--memory-mb", "3008",
                               "--bench", str(bench), "--json"))
    maps = math.ceil(100e9 / (128 << 20))
    rows = report["rows"]
    # sample, map, reduce: its maps partitions (the count was not given) in a task per 256 MiB it reads
    reduces = math.ceil(rows[2]["bytes_in"] / (256 << 20))
    assert 1 < reduces < maps
    assert [r["tasks"] for r in rows[:-1]] == [maps, maps, reduces]
    assert rows[2]["requests"]["get"] == maps * reduces  # one ranged GET per (map output, reduce task) pair
    assert rows[1]["requests"]["put"] == maps
    usd = report["usd"]
    assert usd["total"] == pytest.approx(usd["compute"] + usd["invocations"] + usd["requests"])
    assert report["executors"] == 400
    assert sum(r["invocations"] for r in rows) == 400  # well under the 900 s lease: no replacements
    assert report["wall_seconds"] > report["ramp_seconds"] > 0
    assert any("25 MB/s" in line and "dagrun bench sort" in line for line in report["assumptions"])
    # task time follows the bench figure: 128 MiB at 25 MB/s is over 5 s a task
    assert rows[0]["timing"][2] > (128 << 20) / 25e6


def test_plan_stops_at_a_job_too_big_to_dry_run(tmp_path):
    store = tmp_path / "never"
    out = dagrun("plan", os.path.join(ROOT, "examples", "line_count.py"), "--input-size", "1TB",
                 "--executors", "1000", "--dry-run-limit", "50KB", "--", "--size", "200KB", "--store", str(store))
    assert "note: job j0 reads 200." in out and "KB, over the dry-run limit of 50.0 KB" in out
    assert "1 job planned, 0 dry-run in process" in out
    assert "at 1,000.00 GB of input on 1000 Lambda executors" in out
    assert not store.exists()  # plan mode never uses the script's store


# ---- the simulation: the real scheduler against the cloud models, in virtual time ----------

LINE_COUNT = os.path.join(ROOT, "examples", "line_count.py")
SIM_KEYS = {"simulated", "seconds", "cost_usd", "tasks", "executors_peak", "lambda_429", "s3_503", "tasks_rerun",
            "requests", "peak_requests_per_s", "stages"}


def timed_plan(*args: str) -> tuple[dict, float]:
    started = time.perf_counter()
    report = json.loads(dagrun("plan", *args, "--json"))
    return report, time.perf_counter() - started


@pytest.mark.timeout(300)
def test_the_1tb_line_count_on_1000_executors_is_simulated_in_under_a_minute():
    report, wall = timed_plan(LINE_COUNT, "--input-size", "1TB", "--executors", "1000")
    assert wall < 60, f"took {wall:.1f} s of wall time"
    assert SIM_KEYS <= set(report) and report["simulated"] is True and report["failed"] is None
    assert report["tasks"] == math.ceil(1e12 / (128 << 20))
    assert report["executors_peak"] == 1000 and report["lambda_429"] == 0
    (stage,) = report["stages"]
    assert 0 < stage["start"] < stage["end"] <= report["seconds"]
    assert report["requests"]["get"] >= report["tasks"] * 16  # 128 MiB in 8 MiB GETs
    assert "input" in report["peak_requests_per_s"]
    assert report["cost_usd"] > 0


@pytest.mark.timeout(300)
def test_the_100gb_sort_on_400_executors_is_simulated_in_under_a_minute():
    report, wall = timed_plan(SORT, "--input-size", "100GB", "--executors", "400")
    assert wall < 60, f"took {wall:.1f} s of wall time"
    assert report["failed"] is None and report["executors_peak"] == 400
    maps = math.ceil(100e9 / (128 << 20))
    sample, shuffle_map, reduce = report["stages"]
    # sample, map, reduce; the reduce side's partition count was not given: fewer, larger tasks
    assert [sample["tasks"], shuffle_map["tasks"]] == [maps, maps] and 1 < reduce["tasks"] < maps
    assert sample["end"] <= shuffle_map["start"] and shuffle_map["end"] <= reduce["start"] + 1e-6
    assert report["requests"]["put"] == maps
    assert report["requests"]["get"] >= maps * reduce["tasks"]  # one ranged GET per (map, reduce task) pair
    shuffle = set(report["peak_requests_per_s"]) - {"input"}
    assert len(shuffle) == report["model"]["shuffle_prefixes"]


STORMS = [(LINE_COUNT, "1TB", "1000", "input3:5:10:0.02"), (SORT, "100GB", "400", "03:20:10:0.02")]


def faulty_plan(script: str, size: str, executors: str, storm: str, *more: str) -> dict:
    # the scan's input is spread over 16 prefixes: with one prefix a storm there is an outage of all of it
    report, wall = timed_plan(script, "--input-size", size, "--executors", executors, "--lose-executors", "0.01",
                              "--storm", storm, "--seed", "1", "--input-prefixes", "16", *more)
    assert wall < 60, f"took {wall:.1f} s of wall time"
    assert report["failed"] is None
    assert report["tasks_lost"] > 0 and report["s3_503"] > 0
    return report


@pytest.mark.timeout(300)
@pytest.mark.parametrize("script,size,executors,storm", STORMS)
def test_with_lost_executors_and_a_503_storm_the_jobs_complete_and_every_rerun_is_counted(script, size, executors,
                                                                                        storm):
    report = faulty_plan(script, size, executors, storm)
    # a request that runs out of retries in a long storm fails its task (a task error),
    # which reruns; nothing else runs twice
    assert report["tasks_rerun"] == report["tasks_lost"] + report["tasks_failed"]
    assert report["tasks_failed"] <= report["s3_gave_up"]  # a task fails only when a request of it gave up


@pytest.mark.timeout(300)
@pytest.mark.parametrize("script,size,executors,storm", STORMS)
def test_with_a_retry_budget_that_outlasts_the_storm_only_the_lost_tasks_rerun(script, size, executors, storm):
    report = faulty_plan(script, size, executors, storm, "--store-attempts", "16")
    assert report["s3_gave_up"] == 0 and report["tasks_failed"] == 0
    assert report["tasks_rerun"] == report["tasks_lost"]


def test_plan_text_says_where_the_time_went():
    out = dagrun("plan", SORT, "--input-size", "10GB", "--executors", "50")
    sim = out.split("Simulated on 50 Lambda executors", 1)[1]
    assert "the real scheduler in virtual time" in sim
    where = next(line for line in sim.splitlines() if "where the executor-seconds went" in line)
    for part in ("compute", "transfer and requests", "start-up"):
        assert part in where
    assert "the fleet reached 50 executors at" in sim
    assert "Lambda 429" in sim and "S3 503" in sim


def test_plan_refuses_a_bad_fault_option_with_what_to_write():
    done = subprocess.run([sys.executable, "-m", "dagrun.cli", "plan", SORT, "--storm", "00:soon"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode != 0
    assert "PREFIX:START:SECONDS:FACTOR" in done.stderr
