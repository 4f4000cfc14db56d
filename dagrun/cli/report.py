"""``dagrun report [JOB] [--last] [--list] [--out FILE] [--trace FILE]``: a finished job's report.

Records are read where jobs write them (``dagrun.observe.history``): this user's
``$DAGRUN_HOME/jobs``, or the ``history_dir`` setting / ``--history-dir`` URL (any fsspec
URL, e.g. ``s3://bucket/dagrun-history``), this user's folder unless ``--user`` names another.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from dagrun.observe.history import AmbiguousJob, listing, load
from dagrun.observe.report import write_report


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="write the HTML report of a finished job (self-contained, opens offline)")
    p.add_argument("job", nargs="?", help="a job id, the part after its last '-' (e.g. j3), or a record's path or URL")
    p.add_argument("--last", action="store_true", help="this user's most recently finished job (the default)")
    p.add_argument("--list", action="store_true", help="list the recorded jobs, oldest first, and write nothing")
    p.add_argument("--user", default=None, help="read another user's records (with a shared history_dir)")
    p.add_argument("--history-dir", default=None, help="where records are kept (default: the history_dir setting)")
    p.add_argument("--out", default=None, help="the HTML file to write (default: dagrun-report-<job id>.html)")
    p.add_argument("--trace", default=None, metavar="FILE",
                   help="also write the task timeline as a Chrome trace (opens in Perfetto or chrome://tracing)")
    p.set_defaults(func=run_report)


def run_report(args: Any) -> int:
    from dagrun.config import Config

    try:
        config = Config.resolve()
    except (ValueError, OSError) as exc:
        print(f"dagrun report: {exc}", file=sys.stderr)
        return 2
    where = {"history_dir": args.history_dir or config.history_dir,
             "storage_options": dict(config.storage_options) or None, "who": args.user}
    if args.list:
        for path, read in listing(**where):
            record = read()
            finished = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("finished") or 0))
            state = "succeeded" if record.get("succeeded") else "failed"
            print(f"{record.get('job_id')}\t{finished}\t{state}\t{record.get('description', '')}")
        return 0
    if args.last and args.job:
        print("dagrun report: give a job or --last, not both", file=sys.stderr)
        return 2
    try:
        record = load(None if args.last else args.job, **where)
    except AmbiguousJob as exc:
        print(f"dagrun report: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"dagrun report: {exc}", file=sys.stderr)
        return 1
    path = write_report(record, args.out or f"dagrun-report-{record['job_id']}.html")
    print(path)
    if args.trace:
        with open(args.trace, "w", encoding="utf-8") as f:
            json.dump(chrome_trace(record), f)
        print(args.trace)
    return 0


def chrome_trace(record: dict[str, Any]) -> dict[str, Any]:
    """The task attempts as Chrome trace events: one row per executor, one slice per attempt."""
    start = record.get("started") or 0.0
    executors = sorted({str(a.get("executor")) for a in record.get("attempts", [])})
    tid = {e: i + 1 for i, e in enumerate(executors)}
    events: list[dict[str, Any]] = [{"ph": "M", "name": "process_name", "pid": 1, "tid": 0,
                                     "args": {"name": f"dagrun {record.get('job_id')}"}}]
    events += [{"ph": "M", "name": "thread_name", "pid": 1, "tid": t, "args": {"name": e}} for e, t in tid.items()]
    for a in record.get("attempts", []):
        begin, end = a.get("started") or a.get("assigned"), a.get("ended") or a.get("finished")
        if begin is None or end is None:
            continue
        if begin > 1e9 > start:  # attempt times on the wall clock, job start not: nothing to align
            start = begin
        events.append({"ph": "X", "pid": 1, "tid": tid[str(a.get("executor"))], "cat": a.get("outcome") or "task",
                       "name": f"stage {a['stage']} task {a['partition']} (attempt {a['attempt']})",
                       "ts": round((begin - start) * 1e6), "dur": max(1, round((end - begin) * 1e6)),
                       "args": {k: a.get(k) for k in ("outcome", "records_read", "records_written", "error")}})
    return {"traceEvents": events, "displayTimeUnit": "ms"}
