"""The errors users catch.

- ``JobFailed`` (the scheduler's ``JobAborted``): a task failed ``max_attempts`` times or kept
  losing its executor.  It names the stage and partition, and carries the remote traceback
  (``.remote_traceback``); ``__cause__`` is the original exception when it could travel.
- ``FetchFailed``: a shuffle block is missing or corrupt.  The scheduler handles it by
  rerunning the map tasks that wrote it; users see it only inside ``JobFailed``.
"""

from scheduler.errors import JobAborted
from shuffle.errors import FetchFailed

JobFailed = JobAborted

__all__ = ["JobAborted", "JobFailed", "FetchFailed"]
