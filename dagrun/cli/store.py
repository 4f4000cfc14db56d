"""``dagrun store gc URL --older-than 24h``: remove what crashed drivers left in a store.

State: none.  Policy: the decisions are ``shuffle.gc``'s (dagrun's own layout only, by age
of a job's newest object, never a job whose Context holds a live lease); this command reads
the arguments, prints one line per removed job and a summary, and with ``--dry-run`` every
key that would be deleted and every upload that would be aborted.

Promise: exit status 0 on success, 2 with a one-line message for a bad argument.
"""

from __future__ import annotations

import argparse
import sys

from shuffle.gc import GcReport, collect_garbage
from shuffle.store import BlockStore

from dagrun.config import Config, parse_seconds

__all__ = ["GcReport", "add_parser", "collect_garbage"]


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{max(0.0, seconds):.0f}s"


def _gc(args: argparse.Namespace) -> int:
    try:
        older_than = parse_seconds(args.older_than)
        config = Config.resolve()
        prefixes = args.shuffle_prefixes or config.shuffle_prefixes
    except ValueError as exc:
        print(f"dagrun store gc: {exc}", file=sys.stderr)
        return 2
    store = BlockStore(args.url, dict(config.storage_options))
    report = collect_garbage(store, older_than, dry_run=args.dry_run, prefixes=prefixes)
    verb = "would remove" if args.dry_run else "removed"
    for job_id, (blocks, size, age) in report.removed.items():
        print(f"{verb} {job_id}: {blocks} blocks, {size:,} bytes, newest {_age(age)} old")
    if args.dry_run:
        for key in report.deleted:
            print(f"  would delete {key}")
        for key in report.aborted:
            print(f"  would abort the incomplete upload of {key}")
    print(f"{store!r}: {verb} {len(report.removed)} jobs "
          f"({sum(b for b, _, _ in report.removed.values())} blocks) with {report.temporaries} temporaries and "
          f"{len(report.aborted)} incomplete uploads; kept {len(report.kept)} jobs "
          f"({len(report.live)} of a running Context, the rest younger than {_age(older_than)}); "
          f"left {report.other_keys} other objects alone")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``dagrun store`` and its subcommands on the CLI's subparsers."""
    store = sub.add_parser("store", help="look after a shuffle store (see: dagrun store gc --help)")
    commands = store.add_subparsers(dest="store_command", required=True)
    gc = commands.add_parser(
        "gc", help="remove shuffle blocks that crashed drivers left behind",
        description="Remove the shuffle blocks, temporaries and incomplete uploads of every job whose newest "
                    "object is older than --older-than and whose Context is not running. Drivers delete their "
                    "own blocks; only a driver that died leaves them behind. Objects that are not dagrun "
                    "shuffle blocks are never touched.")
    gc.add_argument("url", help="the store, e.g. s3://bucket/dagrun or /mnt/efs/dagrun; storage options come "
                                "from dagrun.toml or DAGRUN_STORAGE_OPTIONS")
    gc.add_argument("--older-than", default="24h", metavar="AGE",
                    help="remove a job's blocks when its newest block is at least this old: 24h (default), 30m, 0s")
    gc.add_argument("--shuffle-prefixes", type=int, default=None, metavar="N",
                    help="the shuffle_prefixes setting the blocks were written with (default: the setting now)")
    gc.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    gc.set_defaults(func=_gc)
