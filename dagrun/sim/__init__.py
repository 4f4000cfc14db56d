"""The cloud in virtual time: recorded jobs run by the real scheduler against Lambda and S3 models.

State: none here; a call to ``simulate`` builds one ``dagrun.sim.run.Simulation``.

Policy: ``simulate`` takes the stage shapes ``dagrun plan`` records (or
``dagrun.observe.estimate.stage_shapes`` gives for a graph), scales them to the input size,
sets the scheduler's ``Policy`` from the resolved ``Config`` exactly as a Context would
(``max_executors`` = the fleet), and runs the jobs one after another.  The cloud's figures
are ``LambdaModel``/``S3Model`` fields, the faults ``Faults`` fields, the per-task CPU a
``Workload``.  SimPy is imported only when a simulation runs.

Promise: a dict (``dagrun.sim.report.projection``) with ``"simulated": True``, the time, the
cost, the task, throttle and request counts and each stage's start and end; the same
arguments and seed give the same dict (but for ``wall_seconds``).

Example:
    >>> from dagrun.observe.estimate import StageShape
    >>> scan = [[StageShape(0, "count", "result", 8, [], 8 << 30, work="scan")]]
    >>> simulate(scan, executors=8)["tasks"]
    64
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

__all__ = ["simulate"]


def simulate(jobs: list, input_size: float | None = None, executors: int = 1000, *, config: Any = None,
             memory_mb: int | None = None, arch: str | None = None, concurrency: int = 1000,
             cold_start_s: float | None = None, workload: Any = None, faults: Any = None, storm: Any = None,
             reduce_partitions: int | None = None, ramp: tuple[float, float] | None = None,
             shuffle_prefixes: int | None = None, input_prefixes: int = 1, input_block: int | None = None,
             store_attempts: int | None = None, seed: int = 0, until: float = 86400.0,
             text: bool = False) -> Any:
    """Simulate ``jobs`` (lists of ``StageShape``) on ``executors`` Lambda executors.

    ``ramp`` is (initial, slope) instead of the config's; ``storm`` a ``cloud.Storm``; with
    ``text`` the result is (projection dict, its text)."""
    from dagrun.config import Config
    from dagrun.observe.estimate import Assumptions
    from dagrun.observe.ledger import prices
    from dagrun.sim.cloud import LambdaModel, S3Model
    from dagrun.sim.report import projection, text as as_text
    from dagrun.sim.run import Faults, Simulation
    from dagrun.sim.workload import Workload, scale_jobs
    from scheduler.core.tasks import Policy

    config = (config or Config.resolve()).on_lambda()
    changes: dict[str, Any] = {}
    if ramp is not None:
        changes.update(ramp_initial=ramp[0], ramp_slope=ramp[1])
    if shuffle_prefixes is not None:
        changes["shuffle_prefixes"] = shuffle_prefixes
    config = config.replace(**changes) if changes else config
    fleet = max(1, executors)
    a = Assumptions.from_config(config, memory_mb=memory_mb, arch=arch, executors=fleet,
                                concurrency_quota=concurrency, input_block=input_block)
    lam = LambdaModel(memory_mb=a.memory_mb, concurrency_quota=concurrency, timeout_s=config.executor_timeout)
    if cold_start_s is not None:
        lam = replace(lam, cold_start_s=cold_start_s)
    policy = Policy(max_executors=fleet, max_attempts=config.max_attempts, retire_margin=config.retire_margin,
                    idle_timeout=config.idle_timeout, heartbeat_timeout=config.heartbeat_timeout,
                    ramp_initial=config.ramp_initial, ramp_slope=config.ramp_slope, speculation=config.speculation,
                    speculation_quantile=config.speculation_quantile,
                    speculation_multiplier=config.speculation_multiplier)
    stages, estimate = scale_jobs(jobs, input_size, a, reduce_partitions)
    s3 = S3Model(storm=storm)
    if store_attempts is not None:  # a what-if for the block store's RetryPolicy
        s3 = replace(s3, retry=replace(s3.retry, max_attempts=store_attempts))
    sim = Simulation(stages, policy, a, workload or Workload(), lam, s3, faults or Faults(),
                     seed=seed, input_prefixes=input_prefixes).run(until)
    out = projection(sim, estimate.cleanup, prices(config), a.arch)
    out["model"] = {"executors": fleet, "memory_mb": a.memory_mb, "arch": a.arch,
                          "concurrency_quota": concurrency, "ramp": [config.ramp_initial, config.ramp_slope],
                          "shuffle_prefixes": config.shuffle_prefixes, "input_prefixes": input_prefixes,
                          "input_block": a.input_block, "store_retry": vars(s3.retry).copy(),
                          "lambda": vars(lam).copy(),
                          "workload": vars(workload or Workload()).copy(), "faults": vars(faults or Faults()).copy(),
                          "storm": vars(storm).copy() if storm is not None else None}
    if text:
        return out, as_text(out, fleet, a.memory_mb)
    return out
