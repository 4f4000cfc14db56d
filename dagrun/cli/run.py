"""``dagrun run SCRIPT [args]``: run a user script with dagrun settings from the command line."""

from __future__ import annotations

import argparse
import os
import runpy
import sys


def add_parser(sub) -> None:
    run = sub.add_parser("run", help="run a Python script that uses dagrun.Context")
    run.add_argument("script")
    run.add_argument("args", nargs=argparse.REMAINDER)
    run.add_argument("--executor", choices=["local", "inline", "lambda"])
    run.add_argument("--store", help="fsspec URL for shuffle data, e.g. s3://bucket/tmp or /mnt/efs/dagrun")
    run.add_argument("--conf", action="append", metavar="KEY=VALUE", help="a dagrun setting, e.g. max_attempts=2")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    """Run a user script with settings passed through the environment (DAGRUN_*)."""
    if args.executor:
        os.environ["DAGRUN_EXECUTOR"] = args.executor
    if args.store:
        os.environ["DAGRUN_STORE"] = args.store
    for item in args.conf or []:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"dagrun run: --conf takes key=value, got {item!r}", file=sys.stderr)
            return 2
        from dagrun.config import _field_name

        os.environ[f"DAGRUN_{_field_name(key).upper()}"] = value
    sys.argv = [args.script, *args.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(args.script)))
    runpy.run_path(args.script, run_name="__main__")
    return 0
