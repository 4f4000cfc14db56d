"""``dagrun report [JOB] [--last] [--out FILE]``: the HTML report of a finished job."""

from __future__ import annotations

import sys
from typing import Any

from dagrun.observe.history import load
from dagrun.observe.report import write_report


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="write the HTML report of a finished job (self-contained, opens offline)")
    p.add_argument("job", nargs="?", help="a job id, its unique suffix (e.g. j3), or a record's JSON path")
    p.add_argument("--last", action="store_true", help="the most recently finished job (the default)")
    p.add_argument("--out", default=None, help="the HTML file to write (default: dagrun-report-<job id>.html)")
    p.set_defaults(func=run_report)


def run_report(args: Any) -> int:
    try:
        record = load(None if args.last else args.job)
    except FileNotFoundError as exc:
        print(f"dagrun report: {exc}", file=sys.stderr)
        return 1
    path = write_report(record, args.out or f"dagrun-report-{record['job_id']}.html")
    print(path)
    return 0
