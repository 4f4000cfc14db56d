"""``dagrun store gc URL --older-than 24h``: remove shuffle blocks that crashed drivers left behind.

State: none; one run lists the store once and deletes what it decided on.

Policy: a driver deletes its job's blocks when the job ends (and when it fails), so blocks
outlive their job only when the driver itself died.  ``gc`` groups the store's shuffle
blocks by job, recognising them by the layout's own parser (``shuffle.layout``), and
removes every folder ``{pp}/{job_id}`` of each job whose *newest* block is older than
``--older-than`` (by the store's LastModified, or mtime on disk).  A running job keeps
writing blocks as its stages run, so its newest block stays young; choose a threshold
longer than the longest stage.  Keys that are not shuffle blocks are never touched, so
the store may share its bucket or folder with other data.  ``--dry-run`` only reports.

Promise: exit status 0 and one line per removed job plus a summary on stdout; no block of
a job with any block younger than the threshold is deleted.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

from shuffle.layout import parse_block_key
from shuffle.store import BlockStore, StoredObject

from dagrun.config import Config, parse_seconds

__all__ = ["GcReport", "add_parser", "collect_garbage"]


@dataclass
class _Job:
    dirs: set[str] = field(default_factory=set)
    blocks: int = 0
    size: int = 0
    newest: float = 0.0


@dataclass
class GcReport:
    """What ``collect_garbage`` removed (or would remove) and what it kept."""

    removed: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # job -> (blocks, bytes, age s)
    kept: dict[str, float] = field(default_factory=dict)  # job -> age of its newest block
    other_keys: int = 0  # objects that are not shuffle blocks: never touched


def _jobs(objects: list[StoredObject]) -> tuple[dict[str, _Job], int]:
    jobs: dict[str, _Job] = {}
    other = 0
    for obj in objects:
        parts = parse_block_key(obj.key)
        if parts is None:
            other += 1
            continue
        job = jobs.setdefault(parts.job_id, _Job())
        job.dirs.add(parts.job_dir)
        job.blocks += 1
        job.size += obj.size
        job.newest = max(job.newest, obj.modified)
    return jobs, other


def collect_garbage(store: BlockStore, older_than: float, *, dry_run: bool = False,
                    now: float | None = None) -> GcReport:
    """Delete the job folders of every job whose newest block is at least ``older_than`` s old."""
    now = time.time() if now is None else now
    jobs, other = _jobs(store.list_objects(""))
    report = GcReport(other_keys=other)
    for job_id, job in sorted(jobs.items()):
        age = now - job.newest
        if age < older_than:
            report.kept[job_id] = age
            continue
        if not dry_run:
            for job_dir in sorted(job.dirs):
                store.delete_prefix(job_dir)  # in-flight temporaries and empty folders go too
        report.removed[job_id] = (job.blocks, job.size, age)
    return report


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{max(0.0, seconds):.0f}s"


def _gc(args: argparse.Namespace) -> int:
    older_than = parse_seconds(args.older_than)
    store = BlockStore(args.url, dict(Config.resolve().storage_options))
    report = collect_garbage(store, older_than, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for job_id, (blocks, size, age) in report.removed.items():
        print(f"{verb} {job_id}: {blocks} blocks, {size:,} bytes, newest {_age(age)} old")
    print(f"{store!r}: {verb} {len(report.removed)} jobs "
          f"({sum(b for b, _, _ in report.removed.values())} blocks); kept {len(report.kept)} jobs with blocks "
          f"younger than {_age(older_than)}; left {report.other_keys} other objects alone")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``dagrun store`` and its subcommands on the CLI's subparsers."""
    store = sub.add_parser("store", help="look after a shuffle store (see: dagrun store gc --help)")
    commands = store.add_subparsers(dest="store_command", required=True)
    gc = commands.add_parser(
        "gc", help="remove shuffle blocks that crashed drivers left behind",
        description="Remove the shuffle blocks of every job whose newest block is older than --older-than. "
                    "Drivers delete their own blocks; only a driver that died leaves them behind. "
                    "Objects that are not dagrun shuffle blocks are never touched.")
    gc.add_argument("url", help="the store, e.g. s3://bucket/dagrun or /mnt/efs/dagrun; storage options come "
                                "from dagrun.toml or DAGRUN_STORAGE_OPTIONS")
    gc.add_argument("--older-than", default="24h", metavar="AGE",
                    help="remove a job's blocks when its newest block is at least this old: 24h (default), 30m, 0s")
    gc.add_argument("--dry-run", action="store_true", help="only report what would be removed")
    gc.set_defaults(func=_gc)
