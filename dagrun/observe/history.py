"""Job history: each finished job's record kept as JSON, so ``dagrun report --last`` works later.

State: files ``$DAGRUN_HOME/jobs/<job id>.json`` (``DAGRUN_HOME`` defaults to ``~/.dagrun``).

Policy: when a job ends (``job_finished``), its one-line ledger goes to stderr if the
``ledger`` setting asks for it, and its record (``JobInfo.to_record``) is written under a
temporary name and renamed, then all but the newest ``job_history`` records are deleted.
Every string of a record is redacted (``shuffle.layout.redact``) before it is written, so no
URL credentials reach the disk.  Writing is best effort: a full disk, a read-only home or an unserializable value is
logged at debug level and never fails the job, which has already succeeded or failed on
its own account.

Promise: ``load(None)`` returns the newest complete record (by finish time), or raises
``FileNotFoundError`` saying how to get one.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Any

from shuffle.layout import redact_all

from dagrun.config import dagrun_home

log = logging.getLogger("dagrun.history")


def home() -> str:
    return dagrun_home()


def jobs_dir() -> str:
    return os.path.join(home(), "jobs")


def job_finished(info: Any) -> None:
    """Print the ledger line and keep the job's record; never raises."""
    from dagrun.observe.ledger import print_line

    config = info.config
    try:
        print_line(info, getattr(config, "ledger", "auto"))
        keep = getattr(config, "job_history", 20)
        if keep > 0:
            save(info.to_record(), keep)
    except Exception as exc:  # noqa: BLE001 - bookkeeping must never fail a job
        log.debug("could not record job %s: %r", info.job_id, exc)


def save(record: dict[str, Any], keep: int = 20) -> str:
    folder = jobs_dir()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{record['job_id']}.json")
    fd, tmp = tempfile.mkstemp(prefix=".job-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            # URLs may carry user:password@ (a store URL, an error naming one): never on disk
            json.dump(redact_all(json.loads(json.dumps(record, default=str))), f, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _prune(folder, keep)
    return path


def _records(folder: str) -> list[str]:
    """Record paths, oldest first."""
    try:
        names = [n for n in os.listdir(folder) if n.endswith(".json") and not n.startswith(".")]
    except OSError:  # no folder yet, or not a folder: no records
        return []
    paths = [os.path.join(folder, n) for n in names]
    return sorted(paths, key=lambda p: (_mtime(p), p))


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:  # pruned by another process meanwhile
        return 0.0


def _prune(folder: str, keep: int) -> None:
    for path in _records(folder)[:-keep]:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass  # another process pruned it first


def load(job: str | None = None) -> dict[str, Any]:
    """The record of ``job`` (an id, a unique suffix of one such as ``j3``, or a path); None: the newest."""
    if job and os.path.isfile(job):
        with open(job, encoding="utf-8") as f:
            return json.load(f)
    paths = _records(jobs_dir())
    if job:
        paths = [p for p in paths if os.path.basename(p)[:-5].endswith(job)]
    if not paths:
        what = f"job {job!r}" if job else "finished job"
        raise FileNotFoundError(f"no {what} recorded under {jobs_dir()}; run a job first (records are kept "
                                "unless the job_history setting is 0; DAGRUN_HOME moves them)")
    with open(paths[-1], encoding="utf-8") as f:
        return json.load(f)
