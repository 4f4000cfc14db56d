"""The driver's side of ``Context.add_file`` and ``add_py_file``: PySpark's ``addFile``/``addPyFile``.

State: the files one Context added, by name, with the paths they were added from.

Policy: an added file (local, or any fsspec URL) is read once, a piece of
``user_files.PIECE_BYTES`` at a time, each piece put in the shuffle store under its own
``shuffle.layout.added_file_key`` and written into the driver's root folder of added files;
every job's stages then carry the list (``dagrun.runtime.user_files``), and executors fetch
what they lack before they run a task.  As in Spark, adding the same path again is ignored,
and adding another path under a name already taken is refused unless the contents are the
same, since a task could not tell the two apart.  A folder needs ``recursive=True``.

Promise: when ``add_file`` returns, the file is in the store and in the driver's root, and
the next job's tasks see it; ``stop`` deletes the store's copies and the driver's.
"""

from __future__ import annotations

import itertools
import logging
import os
import posixpath
from collections.abc import Iterator

from shuffle.layout import added_file_key
from shuffle.store import BlockStore

from dagrun.runtime import user_files
from dagrun.runtime.user_files import AddedFile

log = logging.getLogger("dagrun")


class AddedFiles:
    """The files a Context added, and their copies in the store and in the driver."""

    def __init__(self, store: BlockStore, app_id: str, prefixes: int, storage_options: dict):
        self._store, self._app, self._prefixes = store, app_id, prefixes
        self._storage_options = dict(storage_options)
        self._by_name: dict[str, AddedFile] = {}
        self._sources: dict[str, str] = {}  # the path each name was first added from
        self._paths: list[str] = []  # as PySpark's listFiles shows them
        self._numbers = itertools.count()

    @property
    def entries(self) -> tuple[AddedFile, ...]:
        return tuple(self._by_name.values())

    @property
    def paths(self) -> list[str]:
        return list(self._paths)

    def add(self, path: str, recursive: bool = False, python: bool = False) -> None:
        import fsspec

        if not isinstance(path, str) or not path:
            raise TypeError(f"add_file takes the path or URL of a file, got {path!r}")
        fs, where = fsspec.core.url_to_fs(path, **self._storage_options)
        local = "file" in fs.protocol if isinstance(fs.protocol, tuple) else fs.protocol == "file"
        uri = "file:" + os.path.abspath(where) if local else path
        if uri in self._paths:
            log.warning("%s was added already; adding it again is ignored, as in Spark", path)
            return
        name = posixpath.basename(where.rstrip("/"))
        members = self._members(fs, where, path, name, recursive)
        if name in self._by_name:
            self._check_same(name, path, fs, members)
            self._paths.append(uri)
            return
        parts: list[tuple[str, tuple[str, ...]]] = []
        keys: list[str] = []
        try:
            for member, relative in members:
                keys = []
                user_files.place(relative, self._upload(fs, member, keys))
                parts.append((relative, tuple(keys)))
        except BaseException:
            self._forget_partial(name, [k for _, done in parts for k in done] + keys)
            raise
        added = AddedFile(name, tuple(parts), python)
        user_files.mark_present(added)
        if python:
            user_files.put_on_path(added)
        self._by_name[name], self._sources[name] = added, path
        self._paths.append(uri)

    @staticmethod
    def _members(fs, where: str, path: str, name: str, recursive: bool) -> list[tuple[str, str]]:
        """``(path in fs, path relative to the root)`` of each file to add."""
        if not fs.exists(where):
            raise FileNotFoundError(f"add_file: {path} does not exist; check the path (a relative path is "
                                    f"taken from {os.getcwd()})")
        if not fs.isdir(where):
            return [(where, name)]
        if not recursive:
            raise IsADirectoryError(f"add_file: {path} is a folder; pass recursive=True to add it with "
                                    "everything in it")
        root = where.rstrip("/")
        return [(member, posixpath.join(name, posixpath.relpath(member, root))) for member in sorted(fs.find(root))]

    def _upload(self, fs, member: str, keys: list[str]) -> Iterator[bytes]:
        """The pieces of ``member`` as they are read, each put in the store first (its key in ``keys``)."""
        with fs.open(member, "rb") as f:
            while True:
                piece = f.read(user_files.PIECE_BYTES)
                if not piece and keys:
                    return
                key = added_file_key(self._app, next(self._numbers), self._prefixes)
                self._store.put(key, piece)
                keys.append(key)
                yield piece
                if not piece:  # an empty file is one empty piece
                    return

    def _forget_partial(self, name: str, keys: list[str]) -> None:
        # an add that failed part way (a read error, a full disk, the store down) leaves nothing
        user_files.forget(name, force=True)
        try:
            if keys:
                self._store.delete_keys(keys)
        except OSError as e:
            log.warning("could not delete the pieces of %s put before the failure (%s): %s", name, ", ".join(keys), e)

    def _check_same(self, name: str, path: str, fs, members: list[tuple[str, str]]) -> None:
        added = self._by_name[name]
        same = [relative for relative, _ in added.parts] == [relative for _, relative in members] and all(
            _same_bytes(fs, member, user_files.get(relative)) for member, relative in members)
        if not same:
            raise ValueError(f"add_file: a file named {name!r} was added already, from {self._sources[name]}, "
                             f"and {path} holds other contents; tasks find files by name, so rename one of them")

    def remove_all(self) -> None:
        """Forget every added file: the driver's copies and the store's."""
        keys = [key for added in self._by_name.values() for key in added.keys]
        for name in self._by_name:
            user_files.forget(name)
        self._by_name.clear()
        if keys:
            try:
                self._store.delete_keys(keys)
            except OSError as e:  # the Context is stopping: say what is left, do not fail the stop
                log.warning("could not delete the added files from the store (%s): %s", ", ".join(keys), e)


def _same_bytes(fs, member: str, local: str) -> bool:
    """Whether ``member`` of ``fs`` holds what the local file does, a piece at a time."""
    if fs.size(member) != os.path.getsize(local):
        return False
    with fs.open(member, "rb") as theirs, open(local, "rb") as ours:
        while True:
            piece = ours.read(user_files.PIECE_BYTES)
            if piece != theirs.read(user_files.PIECE_BYTES):
                return False
            if not piece:
                return True
