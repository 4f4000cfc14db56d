"""``dagrun run [options] SCRIPT [script args]``: run a user script, as spark-submit does.

Policy: dagrun's options come before the script; everything after the script is the
script's.  An option of dagrun's written after the script (``dagrun run job.py --executor
lambda``) is refused with the form that would do it, because passing it on silently would
run the job somewhere other than asked; after ``--`` it goes to the script, as written.
Settings reach the script's Context through the environment (``DAGRUN_*``), below what the
script sets itself (a PySpark master in the code wins, as in Spark).
"""

from __future__ import annotations

import argparse
import os
import runpy
import shlex
import sys

_VALUED = ("--executor", "--store", "--conf", "--profile", "--history-dir")
_FLAGS = ("--log-json",)


def add_parser(sub) -> None:
    run = sub.add_parser("run", help="run a Python script that uses dagrun (or dagrun.pyspark)",
                         usage="dagrun run [options] SCRIPT [script args]")
    run.add_argument("--executor", choices=["local", "inline", "lambda"])
    run.add_argument("--store", help="fsspec URL for shuffle data, e.g. s3://bucket/tmp or /mnt/efs/dagrun")
    run.add_argument("--conf", action="append", metavar="KEY=VALUE", help="a dagrun setting, e.g. max_attempts=2")
    run.add_argument("--profile", help="AWS profile for the Lambda backend (the lambda.profile setting)")
    run.add_argument("--history-dir", help="where finished jobs are recorded, e.g. s3://bucket/dagrun-history")
    run.add_argument("--log-json", action="store_true", help="log job, stage and executor events as JSON lines on stderr")
    run.add_argument("script")
    run.add_argument("args", nargs=argparse.REMAINDER)
    run.set_defaults(func=_run)


def split_script_args(argv: list[str]) -> tuple[list[str], str | None, list[str], bool]:
    """``[options] SCRIPT [args]`` -> (options, script, args, whether "--" preceded the args),
    reading the command line as typed.

    >>> split_script_args(["--executor", "inline", "job.py", "--", "--executor", "x"])
    (['--executor', 'inline'], 'job.py', ['--executor', 'x'], True)
    """
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            return argv[:i], (argv[i + 1] if i + 1 < len(argv) else None), argv[i + 2:], False
        if token in _VALUED:
            i += 2
        elif token.startswith("-") and token != "-":
            i += 1
        else:
            rest = argv[i + 1:]
            if rest[:1] == ["--"]:
                return argv[:i], token, rest[1:], True
            return argv[:i], token, rest, False
    return argv, None, [], False


def misplaced_option(options: list[str], script: str, args: list[str]) -> str | None:
    """The message refusing a dagrun option written after the script, or None."""
    for j, token in enumerate(args):
        if token == "--":
            return None
        name = token.split("=", 1)[0]
        if name in _VALUED or name in _FLAGS:
            moved = [token] if "=" in token or name in _FLAGS else args[j:j + 2]
            rest = args[:j] + args[j + len(moved):]
            right = shlex.join(["dagrun", "run", *options, *moved, script, *rest])
            passed = shlex.join(["dagrun", "run", *options, script, "--", *args])
            return (f"dagrun run: {name} comes after the script, so it would go to {script} and not to dagrun; "
                    f"options of dagrun come first: {right}\n(to give {name} to the script itself, put it after "
                    f"--: {passed})")
    return None


def _run(args: argparse.Namespace) -> int:
    """Run a user script with settings passed through the environment (DAGRUN_*)."""
    raw = getattr(args, "argv", None)
    if raw is not None and "run" in raw:  # argparse drops a "--" after the script: read what was typed
        options, script, script_args, separated = split_script_args(raw[raw.index("run") + 1:])
        args.script, args.args = script or args.script, script_args
        refused = None if separated else misplaced_option(options, args.script, script_args)
        if refused:
            print(refused, file=sys.stderr)
            return 2
    if not os.path.isfile(args.script):
        print(f"dagrun run: no such script {args.script!r}; usage: dagrun run [options] SCRIPT [script args]",
              file=sys.stderr)
        return 2
    if args.executor:
        os.environ["DAGRUN_EXECUTOR"] = args.executor
    if args.store:
        os.environ["DAGRUN_STORE"] = args.store
    if args.profile:
        os.environ["DAGRUN_LAMBDA_PROFILE"] = args.profile
    if args.history_dir:
        os.environ["DAGRUN_HISTORY_DIR"] = args.history_dir
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
    if args.log_json:
        os.environ["DAGRUN_LOG_FORMAT"] = "json"
    sys.argv = [args.script, *args.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(args.script)))
    runpy.run_path(args.script, run_name="__main__")
    return 0
