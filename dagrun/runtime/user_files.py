"""Files added with ``Context.add_file`` and ``add_py_file``, as every process sees them.

State: this process's root folder of added files (PySpark's ``SparkFiles.getRootDirectory()``)
and what is in it: for each top-level name, the store keys it was fetched from.

Policy: the driver copies an added file into its own root and puts it in the shuffle store
(``dagrun.api.added_files``); each stage carries the list of the job's added files outside
its pickled plan (``pack_stage``), and an executor fetches the ones it lacks into its root
before it unpickles the stage, so a function of a module added with ``add_py_file`` can be
imported while the stage loads.  A file is fetched once per process; a warm Lambda container
fetches again only what a newer Context added.  A ``.py`` file puts the root folder on
``sys.path``; a ``.zip``, ``.egg`` or ``.jar`` puts itself there, as in PySpark.

Promise: while a task runs, ``get(name)`` is the path of that file on the task's machine, in
the driver it is the driver's copy; a file is written under a temporary name and renamed, so
a task never sees half of one.

>>> with dagrun.Context(executor="local") as ctx:                          # doctest: +SKIP
...     ctx.add_file("lookup.csv")
...     ctx.parallelize([1]).map(lambda _: open(dagrun.files.get("lookup.csv")).read()).collect()
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import pickle
import secrets
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from shuffle.owned_dirs import owned_dir, remove_owned

__all__ = ["AddedFile", "PACKAGE_EXTENSIONS", "fetch_added", "get", "pack_stage", "root_directory", "unpack_stage"]

PACKAGE_EXTENSIONS = (".zip", ".egg", ".jar")

_root: str | None = None
_present: dict[str, tuple[str, ...]] = {}  # top-level name -> the store keys its parts came from
_on_path: set[str] = set()


PIECE_BYTES = 32 << 20  # an added file travels in store objects of this size: no process holds more of it


@dataclass(frozen=True)
class AddedFile:
    """One ``add_file`` (a file, or a folder with ``recursive=True``): where its parts live."""

    name: str  # its name in the root folder, the name ``get`` takes
    parts: tuple[tuple[str, tuple[str, ...]], ...]  # (path relative to the root, its pieces' store keys)
    python: bool = False  # added with add_py_file: goes on sys.path

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(key for _, keys in self.parts for key in keys)


def root_directory(scratch_dir: str | None = None) -> str:
    """The folder this process keeps added files in (made on first use).

    An executor makes it inside its scratch folder; a driver makes its own temporary folder,
    removed when the process ends (or swept after it was killed).
    """
    global _root
    if _root is None:
        if scratch_dir:
            _root = os.path.join(scratch_dir, "userFiles")
        else:
            _root = owned_dir("dagrun-files-")
            atexit.register(remove_owned, _root)
    os.makedirs(_root, exist_ok=True)  # a scratch folder may have been emptied since
    return _root


def get(name: str) -> str:
    """The absolute path of the added file ``name`` in this process (PySpark's ``SparkFiles.get``).

    >>> open(dagrun.files.get("lookup.csv")).read()      # doctest: +SKIP
    """
    return os.path.abspath(os.path.join(root_directory(), name))


def place(relative: str, pieces: Iterable[bytes], scratch_dir: str | None = None) -> str:
    """Write one part of an added file into the root from its pieces, atomically (a piece at a
    time in memory); the driver and executors use it.  What a failing piece leaves is removed."""
    path = os.path.join(root_directory(scratch_dir), relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(temporary, "wb") as f:
            for piece in pieces:
                f.write(piece)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    return path


def mark_present(added: AddedFile) -> None:
    """Every part of ``added`` is in this process's root now."""
    _present[added.name] = added.keys


def has(added: AddedFile) -> bool:
    return _present.get(added.name) == added.keys


def forget(name: str, force: bool = False) -> None:
    """Remove ``name`` from this process's root (a stopped Context's files); ``force``: also
    when it was never complete (an add that failed part way)."""
    if (_present.pop(name, None) is not None or force) and _root is not None:
        path = os.path.join(_root, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)


def put_on_path(added: AddedFile) -> None:
    """What ``import`` needs to find an added Python file: the root, or the package file itself."""
    entry = get(added.name) if added.name.lower().endswith(PACKAGE_EXTENSIONS) else root_directory()
    if entry not in _on_path:
        sys.path.insert(1, entry)
        _on_path.add(entry)
    importlib.invalidate_caches()


def fetch_added(files: tuple[AddedFile, ...], store, scratch_dir: str | None) -> None:
    """Fetch into this process's root the added files it does not hold yet, then their paths."""
    for added in files:
        if not has(added):
            for relative, keys in added.parts:
                place(relative, _fetched(added.name, keys, store), scratch_dir)
            mark_present(added)
        if added.python:
            put_on_path(added)


def _fetched(name: str, keys: tuple[str, ...], store) -> Iterator[bytes]:
    for key in keys:
        try:
            yield store.get(key)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"{name!r}, added with add_file, is missing from the store ({key}): was the store "
                "cleaned while its Context ran? Add the file again") from e


def pack_stage(plan_blob: bytes, files: tuple[AddedFile, ...], store_url: str, storage_options: dict) -> bytes:
    """A stage as it travels: the added files (readable without the user's modules), then the plan."""
    return pickle.dumps((tuple(files), store_url, dict(storage_options), plan_blob), protocol=5)


def unpack_stage(blob: bytes) -> tuple[tuple[AddedFile, ...], str, dict, bytes]:
    """``(files, store_url, storage_options, plan_blob)`` of a blob ``pack_stage`` made."""
    return pickle.loads(blob)
