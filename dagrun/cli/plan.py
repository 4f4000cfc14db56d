"""``dagrun plan SCRIPT``: what a script's jobs would take and cost on Lambda, before running them there.

    dagrun plan SCRIPT [--input-size 100GB] [--executors 400] [--memory-mb 3008] [--arch x86_64|arm64]
                [--throughput MB/S | --bench FILE] [--concurrency 1000] [--json] [-- SCRIPT ARGS...]

Options may come before or after SCRIPT; everything after ``--`` goes to the script.

State: while the script runs, ``context.plan_hook`` is a ``PlanRecorder`` holding each job's
stage shapes (``dagrun.observe.estimate.StageShape``) and the Context that planned it.

Policy:
- The script runs in this process, as with ``dagrun run``, but every Context it creates is
  forced to the inline executor, a fresh temporary store, and no progress bar, ledger line
  or job history; its standard output is captured (``--show-output`` prints it).
- Each job is recorded when it is planned.  It then runs in process only if its input is
  at most ``--dry-run-limit`` (256 MB): the small data an example generates when given no
  ``--input``.  Running it lets the script continue (a sort's sampling job returns the
  bounds its next job needs) and measures each stage's shuffle bytes.  A job over the
  limit stops the script with ``PlanStop``; later jobs are not planned and the output
  says so.
- The recorded jobs are projected to ``--input-size`` by ``dagrun.observe.estimate`` (its
  docstring has the model) as consecutive jobs of one Context on one fleet.  Throughput
  per executor comes from ``--throughput``, else the ``per_executor_mb_per_s`` of a
  ``dagrun bench --json`` file (``--bench``, else ``$DAGRUN_HOME/bench.json``), else the
  documented default (``Assumptions.throughput_mb_s``).

Promise: nothing is launched on Lambda and nothing is written to the script's ``--store``;
the output is the projection, then every assumption it rests on.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import runpy
import sys
from dataclasses import dataclass, field
from typing import Any

from dagrun.config import Config, parse_bytes
from dagrun.observe.estimate import Assumptions, Estimate, StageShape, project, stage_shapes
from dagrun.observe.history import home
from dagrun.observe.ledger import fmt_bytes


class PlanStop(BaseException):
    """Raised inside the script when a job's input is too big to dry-run; a BaseException so
    that the script's own ``except Exception`` does not swallow it."""


@dataclass
class PlanRecorder:
    dry_run_limit: int
    jobs: list[tuple[Any, str, list[StageShape]]] = field(default_factory=list)
    stopped: str | None = None

    def configure(self, config: Config) -> Config:
        return config.replace(executor="inline", store=None, max_executors=2, progress="off", ledger="off",
                              job_history=0)

    def planned(self, ctx: Any, job_id: str, graph: Any) -> None:
        shapes = stage_shapes(graph, job=f"j{len(self.jobs)}")
        self.jobs.append((ctx, job_id, shapes))
        size = sum(s.input_bytes for s in shapes)
        if size > self.dry_run_limit:
            self.stopped = (f"job j{len(self.jobs) - 1} reads {fmt_bytes(size)}, over the dry-run limit of "
                            f"{fmt_bytes(self.dry_run_limit)}: it was planned but not run, and the script stopped "
                            "there (jobs after it are not in this plan; give the script a small sample input, or "
                            "raise --dry-run-limit)")
            raise PlanStop(self.stopped)

    def measured_jobs(self) -> list[list[StageShape]]:
        """The recorded shapes, with the shuffle bytes each dry-run stage wrote."""
        out = []
        for ctx, job_id, shapes in self.jobs:
            info = next((j for j in ctx.jobs if j.job_id == job_id and j.succeeded), None)
            if info is not None:
                for shape in shapes:
                    shape.written = float(sum(a.metrics.bytes_written for a in info.attempts
                                              if a.stage_id == shape.stage_id and a.outcome == "committed"))
            out.append(shapes)
        return out


def _add_options(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    """The plan options; without defaults they only override what was given before SCRIPT."""
    d = (lambda value: value) if defaults else (lambda value: argparse.SUPPRESS)  # noqa: E731
    p.add_argument("--input-size", default=d(None), help="input size to project to, e.g. 100GB (default: the script's)")
    p.add_argument("--executors", type=int, default=d(1000), help="Lambda executors (default 1000)")
    p.add_argument("--memory-mb", type=int, default=d(None),
                   help="Lambda memory per executor (default: lambda.memory_mb)")
    p.add_argument("--arch", choices=["x86_64", "arm64"], default=d(None))
    p.add_argument("--throughput", type=float, default=d(None), help="per-executor MB/s of stage input")
    p.add_argument("--bench", action="append", default=d(None),
                   help="a `dagrun bench --json` file, may be given for scan and for sort/aggregate "
                        "(default: $DAGRUN_HOME/bench.json)")
    p.add_argument("--concurrency", type=int, default=d(1000), help="Lambda concurrency quota (default 1000)")
    p.add_argument("--cold-start", type=float, default=d(None), help="seconds from invoke to a ready executor")
    p.add_argument("--dry-run-limit", default=d("256MB"), help="run jobs reading at most this much in process")
    p.add_argument("--show-output", action="store_true", default=d(False), help="print what the script printed")
    p.add_argument("--json", action="store_true", default=d(False), help="print the projection as JSON")
    p.add_argument("--arithmetic", action="store_true", default=d(False),
                   help="only the arithmetic estimate, without running the scheduler in virtual time")
    p.add_argument("--lose-executors", type=float, default=d(0.0), metavar="FRACTION",
                   help="simulate losing this fraction of executors (e.g. 0.01)")
    p.add_argument("--stragglers", type=float, default=d(0.0), metavar="FRACTION",
                   help="simulate this fraction of tasks running 4x slower")
    p.add_argument("--storm", default=d(None), metavar="PREFIX[:START:SECONDS:FACTOR]",
                   help="simulate a 503 storm on one S3 prefix (default 5 s in, for 10 s, at 0.1 of the rate)")
    p.add_argument("--reduce-partitions", type=int, default=d(None), help="override every shuffle's reduce count")
    p.add_argument("--ramp", default=d(None), metavar="INITIAL,SLOPE", help="launch ramp instead of the config's")
    p.add_argument("--shuffle-prefixes", type=int, default=d(None), help="S3 key prefixes instead of the config's")
    p.add_argument("--input-prefixes", type=int, default=d(1),
                   help="S3 prefixes the input is spread over (each allows 5,500 GET/s; default 1)")
    p.add_argument("--input-block", default=d(None), help="bytes per input GET (default 8MiB, the reader's)")
    p.add_argument("--store-attempts", type=int, default=d(None),
                   help="what if the block store retried a request this many times (default: its RetryPolicy's 8)")
    p.add_argument("--seed", type=int, default=d(0), help="the simulation's random seed")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("plan", help="estimate a script's time and cost on Lambda without running it there",
                       usage="dagrun plan SCRIPT [options] [-- SCRIPT ARGS...]",
                       description="Plan a script's jobs and project their time and cost on AWS Lambda. "
                                   "Options may come before or after SCRIPT; arguments after -- go to the script.")
    p.add_argument("script")
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    _add_options(p)
    p.set_defaults(func=run_plan)


def _split_rest(args: argparse.Namespace) -> list[str]:
    """Parse the plan options given after SCRIPT into ``args``; return the script's arguments."""
    rest = list(args.rest or [])
    cut = rest.index("--") if "--" in rest else len(rest)
    later = argparse.ArgumentParser(prog="dagrun plan SCRIPT", add_help=False)
    _add_options(later, defaults=False)
    vars(args).update(vars(later.parse_args(rest[:cut])))
    return rest[cut + 1:]


def throughput(args: argparse.Namespace) -> tuple[float | None, str | None]:
    """(MB/s per executor, where it came from); (None, None) means the default."""
    if args.throughput:
        return args.throughput, "--throughput"
    paths = bench_files(args)
    if not paths:
        return None, None
    loaded = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            loaded.append((path, json.load(f)))
    # the arithmetic model has one rate: a per-record Python bench's when there is one
    path, data = next(((p, d) for p, d in loaded if d.get("bench") != "scan"), loaded[0])
    value = data.get("per_executor_mb_per_s")
    if not value:
        raise ValueError(f"{path} has no per_executor_mb_per_s; write it with: dagrun bench sort --json {path}")
    return float(value), (f"dagrun bench {data.get('bench', '?')}, {data.get('executors', '?')} local executors, "
                          f"{data.get('size', 0) / 1e6:,.0f} MB: {path}; a whole-job rate with start-up, so "
                          "conservative per stage")


def bench_files(args: argparse.Namespace) -> list[str]:
    """The ``--bench`` files, else ``$DAGRUN_HOME/bench.json`` if there is one."""
    if not args.bench:
        default = os.path.join(home(), "bench.json")
        return [default] if os.path.isfile(default) else []
    for path in args.bench:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no bench file {path!r}; write one with: dagrun bench sort --json {path}")
    return list(args.bench)


def record_script(script: str, script_args: list[str], limit: int) -> tuple[PlanRecorder, str]:
    """Run ``script`` with a PlanRecorder installed; returns it and what the script printed."""
    from dagrun.api import context

    recorder = PlanRecorder(limit)
    out = io.StringIO()
    argv, path = sys.argv, list(sys.path)
    sys.argv = [script, *script_args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    context.plan_hook = recorder
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(script, run_name="__main__")
    except PlanStop:
        pass
    except SystemExit as exc:
        if exc.code not in (None, 0) and not recorder.jobs:
            raise RuntimeError(f"{script} exited with {exc.code} before planning a job:\n{out.getvalue()}") from exc
    finally:
        context.plan_hook = None
        sys.argv, sys.path[:] = argv, path
    return recorder, out.getvalue()


def run_plan(args: argparse.Namespace) -> int:
    script_args = _split_rest(args)
    config = Config.resolve()
    rate, source = throughput(args)
    a = Assumptions.from_config(config, memory_mb=args.memory_mb, arch=args.arch, executors=args.executors,
                                concurrency_quota=args.concurrency, cold_start_s=args.cold_start,
                                throughput_mb_s=rate, throughput_source=source)
    recorder, printed = record_script(args.script, script_args, parse_bytes(args.dry_run_limit))
    if args.show_output and printed:
        print(printed.rstrip())
    if not recorder.jobs:
        print(f"dagrun plan: {args.script} ran no job; nothing to plan", file=sys.stderr)
        return 1
    jobs = recorder.measured_jobs()
    seen = max(sum(s.input_bytes for s in job) for job in jobs)
    size = parse_bytes(args.input_size) if args.input_size else None
    estimate = project(jobs, size, a)
    sim = None if args.arithmetic else simulate_plan(args, config, jobs, size)
    if args.json:
        out = _as_json(args.script, estimate, recorder)
        if sim is not None:
            out.update(sim[0])
        print(json.dumps(out, indent=2))
        return 0
    print(f"dagrun plan: {args.script} at {estimate.input_bytes / 1e9:,.2f} GB of input on {a.fleet} Lambda "
          f"executors ({a.memory_mb} MB, {a.arch})")
    ran = len(jobs) - (1 if recorder.stopped else 0)
    print(f"  {len(jobs)} job{'s' if len(jobs) != 1 else ''} planned, {ran} dry-run in process, on the script's own "
          f"input ({fmt_bytes(seen)}), scaled x{estimate.scale:,.0f}")
    if recorder.stopped:
        print(f"  note: {recorder.stopped}")
    if sim is not None:
        print("Arithmetic estimate (list scheduling, for comparison):")
    print(estimate.text())
    if sim is not None:
        print(sim[1])
    print("Assumptions:")
    for line in a.lines() + (sim_lines(sim[0]) if sim is not None else []):
        print(f"  - {line}")
    return 0


def simulate_plan(args: argparse.Namespace, config: Config, jobs: list[list[StageShape]],
                  size: int | None) -> tuple[dict[str, Any], str]:
    """Run the recorded jobs through the real scheduler against the cloud model."""
    from dagrun.sim import simulate
    from dagrun.sim.cloud import Storm
    from dagrun.sim.run import Faults
    from dagrun.sim.workload import Workload

    storm = None
    if args.storm:
        parts = args.storm.split(":")
        try:
            storm = Storm(parts[0], *(float(x) for x in parts[1:4]))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--storm {args.storm!r}: write PREFIX or PREFIX:START:SECONDS:FACTOR, "
                             "e.g. 00:5:10:0.1") from exc
    ramp = None
    if args.ramp:
        try:
            initial, slope = (float(x) for x in args.ramp.split(","))
        except ValueError as exc:
            raise ValueError(f"--ramp {args.ramp!r}: write INITIAL,SLOPE in launches per second, e.g. 100,100") from exc
        ramp = (initial, slope)
    for name in ("lose_executors", "stragglers"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise ValueError(f"--{name.replace('_', '-')} is a fraction between 0 and 1, got {getattr(args, name)}")
    workload = Workload.from_bench(bench_files(args), args.throughput)
    faults = Faults(executor_loss=args.lose_executors, straggler=args.stragglers)
    return simulate(jobs, size, args.executors, config=config, memory_mb=args.memory_mb, arch=args.arch,
                    concurrency=args.concurrency, cold_start_s=args.cold_start, workload=workload, faults=faults,
                    storm=storm, reduce_partitions=args.reduce_partitions, ramp=ramp,
                    shuffle_prefixes=args.shuffle_prefixes, input_prefixes=args.input_prefixes,
                    input_block=parse_bytes(args.input_block) if args.input_block else None,
                    store_attempts=args.store_attempts, seed=args.seed,
                    text=True)


def sim_lines(p: dict[str, Any]) -> list[str]:
    m = p["model"]
    lam, w, f = m["lambda"], m["workload"], m["faults"]
    lines = [
        f"simulation: the real scheduler (task state machine, DAG scheduler, ramp {m['ramp'][0]:g} + "
        f"{m['ramp'][1]:g}*t, retirement, speculation) in virtual time; Lambda cold start "
        f"{lam['cold_start_s']:g} s, warm {lam['warm_start_s']:g} s, {lam['scaling_per_window']} new environments "
        f"per {lam['scaling_window_s']:g} s, quota {lam['concurrency_quota']} (429 above), {lam['network_mb_s']:g} "
        f"MB/s per function, {min(6.0, lam['memory_mb'] / 1769):.2f} vCPU, billed per ms",
        "S3: 3,500 PUT and 5,500 GET per second per prefix (503 SlowDown above, retried with the store's "
        f"back-off), 30 ms per request round; {m['shuffle_prefixes']} shuffle prefixes, input on "
        f"{m['input_prefixes']} prefix{'es' if m['input_prefixes'] != 1 else ''} read {m['input_block'] / 2**20:g} MiB a GET; "
        f"store retries: {m['store_retry']['max_attempts']} attempts within {m['store_retry']['max_seconds']:g} s",
        f"per-task CPU: {w['source']}",
        f"faults: {f['executor_loss']:.1%} of executors lost, {f['straggler']:.1%} of tasks "
        f"{f['straggler_factor']:g}x slow" + (f", 503 storm {m['storm']}" if m["storm"] else ""),
    ]
    return lines


def _as_json(script: str, estimate: Estimate, recorder: PlanRecorder) -> dict[str, Any]:
    a = estimate.assumptions
    return {"script": script, "input_bytes": estimate.input_bytes, "scale": estimate.scale,
            "wall_seconds": estimate.wall_seconds, "ramp_seconds": estimate.ramp_seconds,
            "executors": estimate.executors, "usd": estimate.dollars(), "stopped": recorder.stopped,
            "rows": [r.to_dict(a.prices, a.arch) for r in [*estimate.rows, estimate.cleanup]],
            "assumptions": a.lines()}
