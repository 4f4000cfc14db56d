"""The ``dagrun`` command line: ``run``, ``demo``, ``gen`` and the other subcommands.

Each subcommand lives in its own module and registers itself here; this module only
parses arguments and dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import sys


# Commands that live above dagrun's layer, by dotted path (imported at run time, as the
# backend registry does), so dagrun never imports lambda_executor statically.
PLUGIN_COMMANDS = ("lambda_executor.cli",)


def build_parser() -> argparse.ArgumentParser:
    from dagrun.cli import bench, demo, gen, plan, report, run, store

    parser = argparse.ArgumentParser(prog="dagrun", description="Spark-style data jobs on local processes or AWS Lambda")
    from dagrun import __version__

    parser.add_argument("--version", action="version", version=f"dagrun {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run.add_parser(sub)
    demo.add_parser(sub)
    gen.add_gen_parser(sub)
    for module in PLUGIN_COMMANDS:
        importlib.import_module(module).add_parser(sub)
    bench.add_parser(sub)
    report.add_parser(sub)
    plan.add_parser(sub)
    store.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # as typed: ``dagrun run`` tells options after the script from the script's own
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("dagrun: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
