"""``dagrun demo``: generate small data, then run three classic jobs and print their timings.

1. the AWS blog's uservisits aggregation: ``SUM(adRevenue) GROUP BY SUBSTR(sourceIP, 1, 8)``;
2. a line count of Zipf-distributed text;
3. a sort of gensort-format records by their 10-byte key.
Everything runs on local executors with a local store; no cloud account is needed.
"""

from __future__ import annotations

import argparse
import operator
import os
import shutil
import tempfile
import time


def add_parser(sub) -> None:
    demo = sub.add_parser("demo", help="generate small data and run three example jobs locally")
    demo.add_argument("--size", default="32MB", help="size of each generated data set (default 32MB)")
    demo.add_argument("--executors", type=int, default=None, help="local executors (default: CPU count)")
    demo.add_argument("--executor", default="local", choices=["local", "inline"])
    demo.set_defaults(func=run_demo)


def _revenue(line: str) -> tuple[str, float]:
    fields = line.split(",")
    return fields[0][:8], float(fields[3])


def run_demo(args: argparse.Namespace) -> int:
    import dagrun
    from dagrun.cli.gen import generate
    from dagrun.config import parse_bytes

    size = parse_bytes(args.size)
    work = tempfile.mkdtemp(prefix="dagrun-demo-")
    try:
        print(f"dagrun demo: generating {args.size} of each data set in {work}")
        t = time.perf_counter()
        visits = generate("uservisits", os.path.join(work, "uservisits"), size=size, seed=1, files=2)
        text = generate("text", os.path.join(work, "text"), size=size, seed=2, files=2)
        records = generate("records", os.path.join(work, "records"), size=size, seed=3)
        print(f"  generated in {time.perf_counter() - t:.1f}s")
        with dagrun.Context(executor=args.executor, max_executors=args.executors) as ctx:
            print(f"  {ctx.config.executors} {args.executor} executors, store {ctx.store_url}")

            t = time.perf_counter()
            revenue = (ctx.text_file(os.path.dirname(visits[0]))
                       .map(_revenue).reduce_by_key(operator.add))
            top = revenue.top(5, key=lambda kv: kv[1])
            groups = ctx.last_job
            print(f"\n1. SUM(adRevenue) GROUP BY SUBSTR(sourceIP, 1, 8): {time.perf_counter() - t:.2f}s")
            for prefix, total in top:
                print(f"     {prefix:<8} {total:>14,.2f}")
            print(f"     ({len(groups.stages)} stages, {len(groups.attempts)} task attempts)")

            t = time.perf_counter()
            lines = ctx.text_file(os.path.dirname(text[0])).count()
            print(f"\n2. line count: {lines:,} lines in {time.perf_counter() - t:.2f}s")

            t = time.perf_counter()
            out = os.path.join(work, "sorted")
            (ctx.text_file(records[0]).map(lambda r: (r[:10], r)).sort_by_key()
             .values().save_as_text_file(out))
            elapsed = time.perf_counter() - t
            parts = sorted(p for p in os.listdir(out) if p.startswith("part-"))
            keys = [line[:10] for p in parts for line in open(os.path.join(out, p), encoding="utf-8")]
            ordered = all(a <= b for a, b in zip(keys, keys[1:]))
            print(f"\n3. sort of {len(keys):,} records by key: {elapsed:.2f}s, {len(parts)} part files, "
                  f"{'in order' if ordered else 'OUT OF ORDER'}")
            if not ordered:
                return 1
        print("\ndagrun demo: done")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
