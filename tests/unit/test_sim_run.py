"""``dagrun.sim``: the real scheduler driven in virtual time against the cloud models."""

from __future__ import annotations

import time

import pytest

from dagrun.config import Config
from dagrun.observe.estimate import Assumptions, StageShape
from dagrun.sim import simulate
from dagrun.sim.cloud import LambdaModel, S3Model, Storm
from dagrun.sim.run import Faults, Simulation
from dagrun.sim.workload import Workload, scale_jobs
from scheduler.core.jobs import JobCore
from scheduler.core.tasks import Policy, TaskStateMachine

pytestmark = pytest.mark.timeout(120)
GB = 10**9


def scan(size: float = 8 * GB) -> list[list[StageShape]]:
    return [[StageShape(0, "result of text_file", "result", 1, [], int(size), work="scan")]]


def sort_like(size: float = 4 * GB) -> list[list[StageShape]]:
    """A map stage writing a shuffle as big as its input, and a reduce stage reading it."""
    return [[StageShape(1, "map for shuffle 0", "shuffle", 2, [], int(size), written=float(size)),
             StageShape(0, "result of sort", "result", 2, [1])]]


def test_a_scan_is_network_bound_and_the_counts_add_up():
    p = simulate(scan(), executors=20)
    tasks = -(-8 * GB // (128 << 20))
    assert p["simulated"] is True and p["failed"] is None
    assert p["tasks"] == p["attempts"] == tasks and p["tasks_rerun"] == 0
    assert p["executors_peak"] == 20 and p["lambda_429"] == 0 and p["s3_503"] == 0
    # 134 MB a task at 75 MB/s (the CPU would do 500 MB/s): about 1.8 s a task, 3 rounds of 20
    assert 5.0 < p["seconds"] < 15.0
    assert p["requests"]["get"] == sum(-(-(128 << 20) // (8 << 20)) + 1 for _ in range(tasks))
    (stage,) = p["stages"]
    assert 0 < stage["start"] < stage["end"] == pytest.approx(p["seconds"], abs=0.1)
    assert p["cost_usd"] == pytest.approx(sum(v for k, v in p["cost_breakdown_usd"].items() if k != "total"),
                                          abs=1e-4)


def test_python_work_is_cpu_bound_and_more_memory_makes_it_faster():
    small = simulate(sort_like(), executors=16, memory_mb=1024)
    big = simulate(sort_like(), executors=16, memory_mb=1769)
    assert small["seconds"] > 1.3 * big["seconds"]  # start-up and the ramp do not scale
    assert small["executor_seconds"]["compute"] > 1.5 * big["executor_seconds"]["compute"]


def test_the_shuffle_reads_one_ranged_get_per_map_from_its_real_prefix():
    p = simulate(sort_like(), executors=10, shuffle_prefixes=4)
    maps = -(-4 * GB // (128 << 20))
    assert [s["tasks"] for s in p["stages"]] == [maps, maps]
    input_gets = maps * (-(-(128 << 20) // (8 << 20)) + 1)
    assert p["requests"]["get"] == input_gets + maps * maps
    assert p["requests"]["put"] == maps
    shuffle_prefixes = set(p["peak_requests_per_s"]) - {"input"}
    assert shuffle_prefixes <= {"00", "01", "02", "03"} and len(shuffle_prefixes) > 1
    first, second = p["stages"]
    assert second["start"] >= first["end"] - 1e-9  # the reduce stage waits for every map output


def test_it_drives_the_scheduler_itself():
    a = Assumptions(executors=4)
    stages, _ = scale_jobs(scan(2 * GB), None, a)
    sim = Simulation(stages, Policy(max_executors=4), a, Workload(), LambdaModel(), S3Model()).run()
    assert type(sim.core) is JobCore and type(sim.machine) is TaskStateMachine
    kinds = {entry.what for entry in sim.log}
    assert {"submit", "launch", "register", "assign", "commit"} <= kinds
    assert sum(1 for e in sim.log if e.what == "launch") == 4


def test_lost_executors_rerun_only_their_tasks():
    p = simulate(sort_like(8 * GB), executors=40, faults=Faults(executor_loss=0.2, loss_window_s=10.0), seed=3)
    assert p["failed"] is None
    assert p["tasks_lost"] > 0
    assert p["tasks_rerun"] == p["tasks_lost"]  # nothing else ran twice: map outputs live in S3
    assert p["invocations"] > p["executors_peak"] or p["tasks_lost"] <= 8


def test_a_503_storm_on_one_prefix_is_ridden_out_with_back_off():
    storm = Storm("00", start_s=0.0, seconds=30.0, factor=0.05)
    p = simulate(sort_like(8 * GB), executors=40, storm=storm, shuffle_prefixes=2)
    calm = simulate(sort_like(8 * GB), executors=40, shuffle_prefixes=2)
    assert p["failed"] is None and p["s3_503"] > 0 and calm["s3_503"] == 0
    assert p["executor_seconds"]["backoff"] > 0
    assert p["seconds"] > calm["seconds"]
    assert p["tasks_rerun"] == p["tasks_failed"]  # a request out of retries fails its task, counted


def test_a_storm_that_outlasts_every_retry_aborts_the_job_with_the_reason():
    storm = Storm("00", start_s=0.0, seconds=3600.0, factor=0.0)
    p = simulate(sort_like(), executors=8, storm=storm, shuffle_prefixes=2)
    assert "failed 4 times (max_attempts=4)" in p["failed"]
    assert p["s3_gave_up"] >= 4


def test_stragglers_get_speculative_backups():
    p = simulate(sort_like(8 * GB), executors=80, faults=Faults(straggler=0.05, straggler_factor=8.0), seed=1)
    calm = simulate(sort_like(8 * GB), executors=80)
    assert p["failed"] is None and p["speculative"] > 0 and calm["speculative"] == 0
    assert p["tasks_rerun"] == 0


def test_more_executors_than_the_quota_get_429s_and_the_ramp_backs_off():
    config = Config.resolve().replace(ramp_initial=100, ramp_slope=100)
    a = Assumptions(executors=60)
    stages, _ = scale_jobs(scan(40 * GB), None, a)
    policy = Policy(max_executors=60, ramp_initial=config.ramp_initial, ramp_slope=config.ramp_slope)
    sim = Simulation(stages, policy, a, Workload(), LambdaModel(concurrency_quota=30), S3Model()).run()
    assert sim.failed is None and sim.lam.throttled > 0 and sim.lam.peak == 30
    throttles = [e for e in sim.log if e.what == "throttle"]
    assert throttles and {e.detail["source"] for e in throttles} == {"lambda"}
    assert min(e.detail["rate"] for e in throttles) < 100  # the ramp was cut


def test_executors_retire_before_the_lambda_timeout_and_are_replaced():
    config = Config.resolve().replace(executor_timeout=20.0)
    p = simulate(sort_like(8 * GB), executors=4, memory_mb=1769, config=config)
    assert p["failed"] is None and p["tasks_rerun"] == 0  # none was cut off by the timeout
    assert p["invocations"] > 4


def test_the_same_seed_gives_the_same_projection():
    faults = Faults(executor_loss=0.1, straggler=0.05)
    one = simulate(sort_like(), executors=12, faults=faults, seed=7)
    two = simulate(sort_like(), executors=12, faults=faults, seed=7)
    one.pop("simulation_wall_seconds"), two.pop("simulation_wall_seconds")
    assert one == two


def test_a_sampling_job_then_a_sort_run_one_after_the_other():
    jobs = [[StageShape(0, "sample", "result", 2, [], 2 * GB)], sort_like(2 * GB)[0]]
    p = simulate(jobs, executors=8)
    assert [j["job"] for j in p["jobs"]] == [0, 1]
    assert p["jobs"][1]["start"] >= p["jobs"][0]["end"]
    assert p["seconds"] == pytest.approx(p["jobs"][1]["end"])


def test_a_thousand_tasks_on_a_hundred_executors_in_bounded_wall_time():
    started = time.perf_counter()
    p = simulate(scan(134 * GB), executors=100)
    assert p["tasks"] >= 998 and p["failed"] is None
    assert time.perf_counter() - started < 90
