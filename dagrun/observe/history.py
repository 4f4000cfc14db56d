"""Job history: each finished job's record kept as JSON, so ``dagrun report`` works later.

State: one JSON file per job.  Without a ``history_dir`` setting they are
``$DAGRUN_HOME/jobs/<job id>.json`` (``DAGRUN_HOME`` defaults to ``~/.dagrun``: the user's
own home); with ``history_dir`` set to any fsspec URL (``s3://bucket/dagrun-history``, a
shared folder) they are ``<history_dir>/<user>/<job id>.json``, so a short-lived driver
leaves its jobs where everyone can read them, as Spark's ``spark.eventLog.dir`` does.  Each
record names its ``user``.

Policy: when a job ends (``job_finished``), its one-line ledger goes to stderr if the
``ledger`` setting asks for it, and its record (``JobInfo.to_record``) is written whole
(on a local disk under a temporary name and renamed; on an object store by one PUT, which
is atomic), then all but the newest ``job_history`` records of that user are deleted.
Writing is best effort: a full disk, an unreachable bucket or an unserializable value is
logged and never fails the job, which has already succeeded or failed on its own account.
Every string of a record is redacted (``shuffle.layout.redact``) before it is written, so no
URL credentials reach the disk or the bucket.

Promise: ``load(None)`` returns this user's newest record (by finish time) or raises
``FileNotFoundError`` saying how to get one; ``load(name)`` returns the one record whose id
is ``name`` or ends with ``-name``, and raises ``AmbiguousJob`` listing the candidates when
several do.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import posixpath
import tempfile
from typing import Any

from shuffle.layout import redact_all

from dagrun.config import dagrun_home

log = logging.getLogger("dagrun.history")


class AmbiguousJob(LookupError):
    """A job name that several records match; ``candidates`` are their ids, newest first."""

    def __init__(self, name: str, candidates: list[str]):
        super().__init__(name, candidates)
        self.name, self.candidates = name, candidates

    def __str__(self) -> str:
        listed = "\n  ".join(self.candidates)
        return f"{len(self.candidates)} recorded jobs match {self.name!r}; name one of them in full:\n  {listed}"


def home() -> str:
    return dagrun_home()


def jobs_dir() -> str:
    return os.path.join(home(), "jobs")


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container): the uid itself
        return str(os.getuid())


def _folder(history_dir: str | None, who: str | None = None) -> str:
    return jobs_dir() if not history_dir else posixpath.join(history_dir.rstrip("/"), who or user())


def _fs(folder: str, storage_options: dict | None):
    import fsspec

    return fsspec.core.url_to_fs(folder, **(storage_options or {}))


def job_finished(info: Any) -> None:
    """Print the ledger line and keep the job's record; never raises."""
    from dagrun.observe.ledger import print_line

    config = info.config
    log.info("job %s %s in %.2fs: %d stages, %d task attempts", info.job_id,
             "succeeded" if info.succeeded else "failed", info.wall_seconds, len(info.stages), len(info.attempts),
             extra={"event": "job_end", "job": info.job_id})
    try:
        print_line(info, getattr(config, "ledger", "auto"))
        keep = getattr(config, "job_history", 20)
        if keep > 0:
            save(info.to_record(), keep, getattr(config, "history_dir", None),
                 dict(getattr(config, "storage_options", {}) or {}))
    except Exception as exc:  # noqa: BLE001 - bookkeeping must never fail a job
        log.warning("could not record job %s in its history: %r", info.job_id, exc)


def save(record: dict[str, Any], keep: int = 20, history_dir: str | None = None,
         storage_options: dict | None = None) -> str:
    record = {"user": user(), **record}
    # URLs may carry user:password@ (a store URL, an error naming one): never written
    data = json.dumps(redact_all(json.loads(json.dumps(record, default=str))), separators=(",", ":")).encode("utf-8")
    folder = _folder(history_dir)
    if not history_dir or "://" not in history_dir or history_dir.startswith("file://"):
        local = folder.removeprefix("file://")
        path = _save_local(local, f"{record['job_id']}.json", data)
        _prune_local(local, keep)
        return path
    fs, root = _fs(folder, storage_options)
    path = posixpath.join(root, f"{record['job_id']}.json")
    fs.pipe_file(path, data)  # one PUT: a reader sees all of the record or none of it
    for old in _remote_records(fs, root)[:-keep]:
        try:
            fs.rm_file(old)
        except FileNotFoundError:
            pass
    return posixpath.join(folder, f"{record['job_id']}.json")


def _save_local(folder: str, name: str, data: bytes) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    fd, tmp = tempfile.mkstemp(prefix=".job-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _records(folder: str) -> list[str]:
    """Record paths, oldest first."""
    try:
        names = [n for n in os.listdir(folder) if n.endswith(".json") and not n.startswith(".")]
    except OSError:  # no folder yet, or not a folder: no records
        return []
    paths = [os.path.join(folder, n) for n in names]
    return sorted(paths, key=lambda p: (_mtime(p), p))


def _remote_records(fs: Any, root: str) -> list[str]:
    """Record paths on a remote filesystem, oldest first (by the store's modification time)."""
    try:
        entries = fs.ls(root, detail=True)
    except FileNotFoundError:
        return []
    entries = [e for e in entries if e["name"].endswith(".json") and e.get("type", "file") == "file"]

    def modified(e: dict) -> float:
        value = e.get("LastModified") or e.get("mtime") or e.get("created") or 0
        return value.timestamp() if hasattr(value, "timestamp") else float(value)

    return [e["name"] for e in sorted(entries, key=lambda e: (modified(e), e["name"]))]


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:  # pruned by another process meanwhile
        return 0.0


def _prune_local(folder: str, keep: int) -> None:
    for path in _records(folder)[:-keep]:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass  # another process pruned it first


def listing(history_dir: str | None = None, storage_options: dict | None = None,
            who: str | None = None) -> list[tuple[str, Any]]:
    """``(path, opener)`` of the records of ``who`` (default: this user), oldest first."""
    folder = _folder(history_dir, who)
    if not history_dir or "://" not in history_dir or history_dir.startswith("file://"):
        paths = _records(folder.removeprefix("file://"))
        if not history_dir:  # a shared DAGRUN_HOME holds everyone's: keep this user's
            paths = [p for p in paths if _read_local(p).get("user", who or user()) == (who or user())]
        return [(p, lambda p=p: _read_local(p)) for p in paths]
    fs, root = _fs(folder, storage_options)
    return [(p, lambda p=p: json.loads(fs.cat_file(p))) for p in _remote_records(fs, root)]


def _read_local(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _job_id(path: str) -> str:
    return posixpath.basename(path)[:-5]


def load(job: str | None = None, history_dir: str | None = None, storage_options: dict | None = None,
         who: str | None = None) -> dict[str, Any]:
    """The record of ``job`` (an id, the part after its last ``-`` such as ``j3``, or a record's
    path or URL); None: this user's newest."""
    if job and (job.endswith(".json") or "://" in job) and (os.path.isfile(job) or "://" in job):
        fs, path = _fs(job, storage_options)
        return json.loads(fs.cat_file(path))
    records = listing(history_dir, storage_options, who)
    if job:
        records = [(p, o) for p, o in records if _job_id(p) == job or _job_id(p).endswith("-" + job)]
        if len(records) > 1:
            raise AmbiguousJob(job, [_job_id(p) for p, _ in reversed(records)])
    if not records:
        where = _folder(history_dir, who)
        what = f"job {job!r}" if job else "finished job"
        raise FileNotFoundError(f"no {what} recorded under {where}; run a job first (records are kept unless the "
                                "job_history setting is 0; DAGRUN_HOME or history_dir move them)")
    return records[-1][1]()
