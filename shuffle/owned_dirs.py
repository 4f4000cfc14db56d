"""Temporary folders that say whether their owner still runs, so a killed driver's are swept.

State: the locked owner file of each folder this process made, until it removes the folder.

Policy: a driver's temporary store (``dagrun-store-*``: a job's whole shuffle data), its
executors' scratch (``dagrun-executors-*``) and its fault budgets (``dagrun-faults-*``) are
removed when the Context stops, and its copies of added files (``dagrun-files-*``) when the
process ends, but a driver killed with SIGKILL (or by the out-of-memory
killer) leaves them behind.  ``owned_dir`` makes the folder and holds an exclusive ``flock``
on the file ``.owner`` in it for as long as the process lives: the kernel drops the lock when
the process dies, however it died, and a lock means the same in every PID namespace, where a
process id would not.  ``sweep_abandoned`` removes each folder of this user named like these
whose ``.owner`` it can lock, so nobody holds it, once that file is ``min_age`` seconds old.
The owner locks the file before giving it that name, so a ``.owner`` is never seen unlocked
while its owner lives.  A folder without ``.owner`` (made
by someone else, or by a dagrun from before this module) is never touched, nor is a symlink.
Where ``fcntl`` is missing (Windows) folders are made without a lock and nothing is swept.

Promise: a folder is swept only when its owner has ended; ``remove_owned`` removes one's own.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

OWNER = ".owner"
PREFIXES = ("dagrun-store-", "dagrun-executors-", "dagrun-faults-", "dagrun-files-")
MIN_AGE = 60.0  # seconds: a margin for a dagrun of before the rename, which named the file before locking it

_held: dict[str, int] = {}  # folder -> descriptor of its locked owner file


def owned_dir(prefix: str, dir: str | None = None) -> str:
    """``tempfile.mkdtemp(prefix=prefix, dir=dir)``, locked as this process's until ``remove_owned``.

    >>> path = owned_dir("dagrun-store-")   # doctest: +SKIP
    >>> remove_owned(path)                   # doctest: +SKIP
    """
    path = tempfile.mkdtemp(prefix=prefix, dir=dir)
    if fcntl is None:
        return path
    # Locked under another name, then renamed: a sweeper (this process's own, on its thread)
    # that finds ``.owner`` finds it locked, never in the moment between creating and locking.
    unlocked = os.path.join(path, OWNER + ".new")
    fd = os.open(unlocked, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, f"pid {os.getpid()}\n".encode())
    os.rename(unlocked, os.path.join(path, OWNER))
    _held[path] = fd
    return path


def remove_owned(path: str) -> None:
    """Remove a folder ``owned_dir`` made, then let go of its lock."""
    shutil.rmtree(path, ignore_errors=True)
    fd = _held.pop(path, None)
    if fd is not None:
        os.close(fd)


def sweep_abandoned(dirs: Iterable[str], *, prefixes: tuple[str, ...] = PREFIXES,
                    min_age: float | None = None) -> list[str]:
    """Remove the folders in ``dirs`` that ended owners left behind; return their paths.

    ``min_age`` defaults to ``MIN_AGE``."""
    min_age = MIN_AGE if min_age is None else min_age
    removed: list[str] = []
    if fcntl is None:
        return removed
    uid = os.getuid()
    for base in dict.fromkeys(dirs):
        try:
            entries = list(os.scandir(base))
        except OSError:
            continue
        for entry in entries:
            try:
                if (not entry.name.startswith(prefixes) or not entry.is_dir(follow_symlinks=False)
                        or entry.stat(follow_symlinks=False).st_uid != uid or entry.path in _held):
                    continue
                fd = os.open(os.path.join(entry.path, OWNER), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:  # gone meanwhile, or no owner file: not ours to judge
                continue
            try:
                if time.time() - os.fstat(fd).st_mtime < min_age:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # its owner still runs
                    continue
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
            finally:
                os.close(fd)
    return removed


def sweep_in_background(dirs: Iterable[str]) -> threading.Thread:
    """``sweep_abandoned(dirs)`` on a daemon thread (a dead driver's store may be large), logged."""
    dirs = list(dirs)

    def sweep() -> None:
        removed = sweep_abandoned(dirs)
        if removed:
            logging.getLogger("dagrun").info(
                "removed %d temporary folder(s) that ended dagrun drivers left: %s", len(removed),
                ", ".join(removed[:5]) + (" ..." if len(removed) > 5 else ""))

    thread = threading.Thread(target=sweep, name="dagrun-sweep", daemon=True)
    thread.start()
    return thread
