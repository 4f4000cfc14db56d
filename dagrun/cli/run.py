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
    run.add_argument("--profile", help="AWS profile for the Lambda backend (the lambda.profile setting)")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    """Run a user script with settings passed through the environment (DAGRUN_*)."""
    if args.executor:
        os.environ["DAGRUN_EXECUTOR"] = args.executor
    if args.store:
        os.environ["DAGRUN_STORE"] = args.store
    if args.profile:
        os.environ["DAGRUN_LAMBDA_PROFILE"] = args.profile
    from dagrun.config import _coerce, _field_name

    for item in args.conf or []:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"dagrun run: --conf takes key=value, got {item!r}", file=sys.stderr)
            return 2
        try:  # checked now, so the error names the option rather than the variable it becomes
            name = _field_name(key.strip(), "--conf")
            _coerce(name, value, f"--conf {item}")
        except ValueError as exc:
            print(f"dagrun run: {exc}", file=sys.stderr)
            return 2
        os.environ[f"DAGRUN_{name.upper()}"] = value
    sys.argv = [args.script, *args.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(args.script)))
    runpy.run_path(args.script, run_name="__main__")
    return 0
