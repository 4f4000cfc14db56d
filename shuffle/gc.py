"""Garbage collection of a shared store, and the lease that keeps a live Context's blocks safe from it.

State: ``collect_garbage`` holds nothing between calls: one run lists the store once (with
in-flight temporaries, and on S3 its incomplete multipart uploads) and deletes what it
decided on.  A ``Lease`` owns one refresh thread and the lease object it rewrites.

Policy: a driver deletes its job's blocks when the job ends, so blocks outlive their job only
when the driver died.  Only keys of dagrun's own layout count (``shuffle.layout``: the
configured prefix width, dagrun's job-id format and object names); every other key is left
alone, so the store may share its bucket or folder with other data.  Objects are grouped by
job, temporaries and multipart uploads included, so a job that left only those is found
too.  A job goes when its newest object is at least ``older_than`` old and its Context holds
no live lease: a lease object (``_dagrun/leases/{app_id}``) is live while its last refresh
is younger than ``LEASE_TTL``.  A Context writes one when it persists an RDD to a shared
store or when one of its jobs runs longer than ``LEASE_AFTER``, and refreshes it every
``LEASE_REFRESH`` until it stops.  Dead leases go with the last job of their Context.

Promise: exactly the keys in ``GcReport.deleted`` are deleted and the uploads in
``GcReport.aborted`` aborted, and ``dry_run`` deletes nothing but reports the same lists;
nothing of a job with a live lease or any object younger than the threshold is touched.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field

from shuffle.layout import app_of, lease_key, parse_lease_key, parse_stored_key
from shuffle.store import BlockStore, StoredObject

__all__ = ["LEASE_AFTER", "LEASE_REFRESH", "LEASE_TTL", "GcReport", "Lease", "collect_garbage"]

log = logging.getLogger("dagrun.store")
LEASE_REFRESH = 60.0
LEASE_TTL = 5 * LEASE_REFRESH  # several missed refreshes before a Context counts as dead
LEASE_AFTER = 30.0


@dataclass
class _Job:
    keys: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    blocks: int = 0
    temporaries: int = 0
    size: int = 0
    newest: float = 0.0


@dataclass
class GcReport:
    """What ``collect_garbage`` removed (or would remove) and what it kept."""

    removed: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # job -> (blocks, bytes, age s)
    kept: dict[str, float] = field(default_factory=dict)  # job -> age of its newest object
    live: set[str] = field(default_factory=set)  # kept jobs whose Context holds a live lease
    other_keys: int = 0  # objects that are not dagrun's: never touched
    deleted: list[str] = field(default_factory=list)  # every key deleted (or that would be)
    aborted: list[str] = field(default_factory=list)  # keys whose incomplete uploads were aborted
    temporaries: int = 0  # in-flight writes among ``deleted``


def _group(objects: list[StoredObject], uploads: list[StoredObject], prefixes: int | None
           ) -> tuple[dict[str, _Job], dict[str, StoredObject], int]:
    jobs: dict[str, _Job] = {}
    leases: dict[str, StoredObject] = {}
    other = 0
    for obj in objects:
        app = parse_lease_key(obj.key)
        if app is not None:
            leases[app] = obj
            continue
        found = parse_stored_key(obj.key, prefixes)
        if found is None:
            other += 1
            continue
        parts, temporary = found
        job = jobs.setdefault(parts.job_id, _Job())
        job.keys.append(obj.key)
        job.temporaries += temporary
        job.blocks += not temporary
        job.size += obj.size
        job.newest = max(job.newest, obj.modified)
    for upload in uploads:
        found = parse_stored_key(upload.key, prefixes)
        if found is not None:
            job = jobs.setdefault(found[0].job_id, _Job())
            job.uploads.append(upload.key)
            job.newest = max(job.newest, upload.modified)
    return jobs, leases, other


def collect_garbage(store: BlockStore, older_than: float, *, dry_run: bool = False, now: float | None = None,
                    prefixes: int | None = None) -> GcReport:
    """Delete every job whose newest object is at least ``older_than`` s old and whose Context
    holds no live lease; ``prefixes`` is the ``shuffle_prefixes`` setting its blocks were written with."""
    now = time.time() if now is None else now
    jobs, leases, other = _group(store.list_objects("", temporaries=True), store.list_uploads(), prefixes)
    live = {app for app, lease in leases.items() if now - lease.modified < LEASE_TTL}
    report = GcReport(other_keys=other)
    for job_id, job in sorted(jobs.items()):
        age = now - job.newest
        if app_of(job_id) in live or age < older_than:
            report.kept[job_id] = age
            if app_of(job_id) in live:
                report.live.add(job_id)
            continue
        report.removed[job_id] = (job.blocks, job.size, age)
        report.deleted.extend(sorted(job.keys))
        report.aborted.extend(sorted(job.uploads))
        report.temporaries += job.temporaries
    # a dead Context's lease goes once nothing of that Context is kept
    kept_apps = {app_of(job_id) for job_id in report.kept}
    stale = [lease.key for app, lease in sorted(leases.items()) if app not in live and app not in kept_apps]
    report.deleted.extend(stale)
    if not dry_run:
        for key in report.aborted:
            store.abort_uploads(key)
        if report.deleted:
            store.delete_keys(report.deleted)
        for job_id in report.removed:
            for folder in sorted({k.split("/", 1)[0] + "/" + job_id for k in jobs[job_id].keys}):
                store.remove_empty_folders(folder)
    return report


class Lease:
    """A running Context's claim on its blocks in a shared store, refreshed by a daemon thread.

    ``hold()`` writes the lease object and starts refreshing it (again: no effect);
    ``release()`` stops and deletes it.  A refresh that fails is logged and tried again at
    the next interval; its requests are counted on a view of the store, not in any job's ledger.
    """

    def __init__(self, store: BlockStore, app: str, refresh: float = LEASE_REFRESH) -> None:
        self.key, self.refresh = lease_key(app), refresh
        self._store = store.view()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._thread is not None

    def hold(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._write()
            self._thread = threading.Thread(target=self._run, name=f"dagrun-lease-{self.key}", daemon=True)
            self._thread.start()

    def release(self) -> None:
        with self._lock:
            self._stop.set()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(5)
            try:
                self._store.delete(self.key)
            except OSError as exc:
                log.warning("could not delete the lease %s (dagrun store gc removes it later): %s", self.key, exc)

    def _write(self) -> None:
        body = {"host": socket.gethostname(), "pid": os.getpid(), "refreshed": time.time(), "every": self.refresh}
        try:
            self._store.put(self.key, json.dumps(body).encode())
        except OSError as exc:
            log.warning("could not refresh the lease %s: %s", self.key, exc)

    def _run(self) -> None:
        while not self._stop.wait(self.refresh):
            self._write()
