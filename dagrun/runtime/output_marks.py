"""The marks of an output commit, and the check that refuses to read an unfinished one.

State: none.  Policy: a folder written by ``save_as_text_file`` (``dagrun.api.output``) or by
Hadoop is complete when it holds ``_SUCCESS``; one with ``_temporary`` or ``_COMMIT`` and no
``_SUCCESS`` is a save still running or cut short.  Promise: ``check_complete`` raises
``IncompleteOutputError`` for such a folder, saying how to clean it and how to read its part
files anyway (name them with a glob, which this check does not see).
"""

from __future__ import annotations

__all__ = ["COMMIT_MARK", "SUCCESS_MARK", "TEMPORARY_DIR", "IncompleteOutputError", "check_complete"]

# The marks of dagrun's (and Hadoop's) output commit, see dagrun.api.output.
SUCCESS_MARK, COMMIT_MARK, TEMPORARY_DIR = "_SUCCESS", "_COMMIT", "_temporary"


class IncompleteOutputError(OSError):
    """A folder holds the output of a save that did not finish: reading it would give part of it."""


def check_complete(path: str, names: set[str]) -> None:
    if SUCCESS_MARK in names or not names & {COMMIT_MARK, TEMPORARY_DIR}:
        return
    if COMMIT_MARK in names:
        why = f"its commit was cut short: there is a {COMMIT_MARK} mark and no {SUCCESS_MARK}"
    else:
        why = f"it is still running, or its job died: there is a {TEMPORARY_DIR} folder and no {SUCCESS_MARK}"
    glob = path.rstrip("/") + "/part-*"
    raise IncompleteOutputError(
        f"{path!r} holds the output of a save that did not finish ({why}), so part files may be missing. "
        "Delete the folder (rm -r, or aws s3 rm --recursive) and run the save again; to read the part "
        f"files that are there anyway, name them: text_file({glob!r})")
