"""The driver's side of ``Context.add_file`` and ``add_py_file``: PySpark's ``addFile``/``addPyFile``.

State: the files one Context added, by name, with the paths they were added from.

Policy: an added file (local, or any fsspec URL) is read once, copied into the driver's root
folder of added files and put in the shuffle store under ``shuffle.layout.added_file_key``;
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
        contents = [(relative, fs.cat_file(member)) for member, relative in members]
        if name in self._by_name:
            self._check_same(name, path, contents)
            self._paths.append(uri)
            return
        parts = tuple((relative, added_file_key(self._app, next(self._numbers), self._prefixes))
                      for relative, _ in contents)
        keys = tuple(key for _, key in parts)
        for (relative, data), key in zip(contents, keys):
            self._store.put(key, data)
            user_files.place(name, relative, data, keys)
        added = AddedFile(name, parts, python)
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

    def _check_same(self, name: str, path: str, contents: list[tuple[str, bytes]]) -> None:
        added = self._by_name[name]
        same = [relative for relative, _ in added.parts] == [relative for relative, _ in contents] and all(
            _read(user_files.get(relative)) == data for relative, data in contents)
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


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
