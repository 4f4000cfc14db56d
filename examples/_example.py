"""What the examples share: their command line, generated input, the Context, the cost lines.

Each example runs locally with no arguments: it generates ``--size`` of deterministic data
(``dagrun.cli.gen``, seed ``--seed``, ``FILES`` part files) into a temporary directory and
deletes it afterwards.  Given ``--input`` (a path or URL, e.g. ``s3://bucket/uservisits/``)
it reads that instead; with ``--executor lambda`` an input URL the functions can read is
required, and ``--store`` should be an ``s3://`` URL.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from typing import Iterator

import dagrun
from dagrun.cli.gen import generate, parse_size

FILES = 2  # part files of generated input


def parser(description: str, *, output: bool = False, default_size: str = "10MB") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--input", help="input path or URL (default: generate --size of data in a temp dir)")
    if output:
        p.add_argument("--output", help="output directory or URL, which must not exist (default: a temp dir)")
    p.add_argument("--executor", choices=["local", "inline", "lambda"], default=None,
                   help="where tasks run (default: the dagrun setting, normally local)")
    p.add_argument("--store", default=None, help="shuffle store URL, e.g. s3://bucket/tmp (default: a temp dir)")
    p.add_argument("--executors", type=int, default=None, help="maximum executors (default: CPU count)")
    p.add_argument("--size", default=default_size, help=f"size of generated input (default {default_size})")
    p.add_argument("--seed", type=int, default=0, help="seed of generated input (default 0)")
    p.add_argument("--report", default=None, help="also write the HTML report of the last job here")
    return p


@contextlib.contextmanager
def input_path(args: argparse.Namespace, kind: str) -> Iterator[str]:
    """``args.input``, or a temporary directory of generated ``kind`` data."""
    if args.input:
        yield args.input
        return
    if args.executor == "lambda":
        sys.exit("with --executor lambda, pass --input: a URL the functions can read, e.g. s3://bucket/data/")
    work = tempfile.mkdtemp(prefix=f"dagrun-example-{kind}-")
    try:
        folder = os.path.join(work, kind)
        generate(kind, folder, size=parse_size(args.size), seed=args.seed, files=FILES)
        yield folder
    finally:
        shutil.rmtree(work, ignore_errors=True)


def context(args: argparse.Namespace) -> dagrun.Context:
    return dagrun.Context(executor=args.executor, store=args.store, max_executors=args.executors)


def print_costs(ctx: dagrun.Context, args: argparse.Namespace) -> None:
    """One ledger line per job the example ran, then the report if asked for."""
    for job in ctx.jobs:
        print(job.cost)
    if args.report and ctx.last_job is not None:
        print(f"report: {ctx.last_job.report(args.report)}")
