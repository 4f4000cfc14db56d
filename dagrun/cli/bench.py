"""``dagrun bench``: run a benchmark job, check its answer, and compare with peers in one run.

    dagrun bench scan|aggregate|sort|sort-lambda|wordlen --size 1GB [--executors 2] [--store URL]
                 [--memory 1GB] [--compare] [--json OUT]
    dagrun bench scheduler [--executors 16] [--tasks 10000] [--maps 2000]  (``bench_scheduler``)

Policy: data is generated once per (kind, size, seed) under ``--data`` (default
``./bench-data``) and read once before timing so the page cache is warm.  dagrun's wall
time runs from creating the Context (executor startup included) to the validated answer
(the driver process's own Python start-up and imports, about 0.35 s, are not in it);
each peer runs as a subprocess, startup included.  Ratios are ``peer seconds / dagrun
seconds``: above 1 means dagrun was faster.  Nothing here asserts a target; it reports.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from typing import Any

from dagrun.cli.bench_jobs import JOBS, data_dir, input_files, validate
from dagrun.cli.bench_peers import run_peers
from dagrun.config import parse_bytes


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="benchmark a job against peers on the same data")
    p.add_argument("bench", choices=sorted([*JOBS, "scheduler"]))
    p.add_argument("--size", default="256MB", help="input size, e.g. 1GB (default 256MB)")
    p.add_argument("--executors", type=int, default=None, help="local executors (default 2; scheduler: 16)")
    p.add_argument("--tasks", type=int, default=10_000, help="scheduler: one-element tasks to dispatch")
    p.add_argument("--maps", type=int, default=2000, help="scheduler: map (and reduce) partitions of the shuffle")
    p.add_argument("--store", default=None, help="shuffle store URL (default: a temp dir)")
    p.add_argument("--memory", default=None, help="memory budget per executor for shuffle data, e.g. 1GB")
    p.add_argument("--compare", action="store_true", help="also run the peers on the same data")
    p.add_argument("--json", dest="json_out", default=None, help="write the figures as JSON here")
    p.add_argument("--data", default=os.environ.get("DAGRUN_BENCH_DATA", "bench-data"),
                   help="where generated inputs are kept (default ./bench-data)")
    p.add_argument("--files", type=int, default=4, help="number of input files (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--groups", type=int, default=None,
                   help="aggregate only: uservisits with this many SUBSTR(sourceIP,1,8) groups "
                        "(default: the real data's shape, ~944k groups per GB)")
    p.set_defaults(func=run_bench)


def _warm(files: list[str]) -> int:
    total = 0
    for name in files:
        with open(name, "rb") as f:
            while chunk := f.read(16 << 20):
                total += len(chunk)
    return total


def run_dagrun(bench: str, path: str, executors: int, store: str | None, memory: int | None,
               scratch: str) -> dict[str, Any]:
    from dagrun.api.context import Context  # the driver's imports stay outside the timing, as documented

    conf: dict[str, Any] = {"progress": "off"}
    if memory:
        conf.update(executor_memory=memory, shuffle_memory=memory // 2)
    out = os.path.join(scratch, "dagrun-out")
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    with Context(executor="local", max_executors=executors, store=store, conf=conf) as ctx:
        value = JOBS[bench](ctx, path, out)
        seconds = time.perf_counter() - start
        jobs = list(ctx.jobs)
    return {"seconds": seconds, "value": value, "jobs": jobs}


def job_stats(jobs: list) -> dict[str, Any]:
    stages, shuffle_bytes, requests, rss = [], 0, {}, {}
    for job in jobs:
        by_stage: dict[int, list] = {}
        for a in job.attempts:
            by_stage.setdefault(a.stage_id, []).append(a)
            if a.metrics.peak_rss:
                rss[a.executor_id] = max(rss.get(a.executor_id, 0), a.metrics.peak_rss)
        for stage in job.stages:
            attempts = by_stage.get(stage.stage_id, [])
            if not attempts:
                continue
            t0 = min(a.metrics.started or a.assigned for a in attempts)
            t1 = max(a.metrics.finished or a.assigned for a in attempts)
            written = sum(a.metrics.bytes_written for a in attempts if a.outcome == "committed")
            if stage.kind == "shuffle":
                shuffle_bytes += written
            stages.append({"stage": stage.name, "tasks": len(attempts), "seconds": round(t1 - t0, 3),
                           "bytes_written": written})
        for k, v in job.requests.items():
            requests[k] = requests.get(k, 0) + v
    return {"stages": stages, "shuffle_bytes": shuffle_bytes, "requests": requests,
            "peak_rss_mb": {k: round(v / 2**20, 1) for k, v in sorted(rss.items())}}


def run_bench(args: argparse.Namespace) -> int:
    if args.bench == "scheduler":
        from dagrun.cli.bench_scheduler import run

        return run(args)
    args.executors = args.executors or 2
    size = parse_bytes(args.size)
    memory = parse_bytes(args.memory) if args.memory else None
    os.makedirs(args.data, exist_ok=True)
    print(f"dagrun bench {args.bench}: {args.size} input, {args.executors} local executors", flush=True)
    t = time.perf_counter()
    path = data_dir(args.data, args.bench, size, args.seed, args.files, getattr(args, "groups", None))
    files = input_files(path)
    nbytes = _warm(files)
    print(f"  data: {path} ({nbytes / 1e6:,.0f} MB, ready in {time.perf_counter() - t:.1f}s; page cache warmed)")
    scratch = tempfile.mkdtemp(prefix="dagrun-bench-")
    try:
        run = run_dagrun(args.bench, path, args.executors, args.store, memory, scratch)
        outcome = validate(args.bench, run["value"], path)
        stats = job_stats(run["jobs"])
        mbps = nbytes / 1e6 / run["seconds"]
        print(f"\n  dagrun: {run['seconds']:.2f}s, {mbps:,.1f} MB/s, "
              f"{'VALID' if outcome.valid else 'INVALID'}: {outcome.detail}")
        for s in stats["stages"]:
            print(f"    {s['stage'][:60]:<60} {s['tasks']:>4} tasks {s['seconds']:>8.2f}s "
                  f"{s['bytes_written'] / 1e6:>9.1f} MB out")
        print(f"    shuffle bytes {stats['shuffle_bytes'] / 1e6:,.1f} MB; store requests "
              f"{', '.join(f'{k} {v}' for k, v in sorted(stats['requests'].items()) if k not in ('bytes_in', 'bytes_out'))}")
        print(f"    peak RSS per executor (MB): {stats['peak_rss_mb']}")
        peers = run_peers(args.bench, files, path, args.executors, scratch) if args.compare else []
        if peers:
            print(f"\n  {'peer':<28} {'seconds':>9} {'MB/s':>9} {'peer/dagrun':>12}")
            print(f"  {'dagrun (this run)':<28} {run['seconds']:>9.2f} {mbps:>9.1f} {1.0:>11.2f}x")
            for p in peers:
                if p.seconds is None:
                    print(f"  {p.name:<28} {'-':>9} {'-':>9} {'-':>12}  {p.note}")
                else:
                    print(f"  {p.name:<28} {p.seconds:>9.2f} {nbytes / 1e6 / p.seconds:>9.1f} "
                          f"{p.seconds / run['seconds']:>11.2f}x")
        if args.json_out:
            report = {"bench": args.bench, "size": nbytes, "executors": args.executors,
                      "seconds": run["seconds"], "mb_per_s": mbps, "per_executor_mb_per_s": mbps / args.executors,
                      "valid": outcome.valid, "detail": outcome.detail, **stats,
                      "peers": [{"name": p.name, "seconds": p.seconds, "note": p.note} for p in peers]}
            with open(args.json_out, "w") as f:
                json.dump(report, f, indent=2)
        return 0 if outcome.valid else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

