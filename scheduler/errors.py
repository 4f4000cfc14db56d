"""Errors the scheduler raises to the layer above: picklable, and saying what to do next."""

from __future__ import annotations

from scheduler.core.events import RemoteError


class JobAborted(RuntimeError):
    """A job failed for good: a task exhausted its attempts, or kept losing its executor.

    Carries the stage, the partition and the task's own error with its remote traceback;
    ``__cause__`` is the original exception when it could be carried across processes.
    """

    def __init__(self, job_id: str, stage_id: int, partition: int, stage_name: str, reason: str,
                 error: RemoteError | None = None):
        super().__init__(job_id, stage_id, partition, stage_name, reason, error)
        self.job_id, self.stage_id, self.partition = job_id, stage_id, partition
        self.stage_name, self.reason, self.error = stage_name, reason, error

    @property
    def remote_traceback(self) -> str | None:
        return self.error.traceback if self.error else None

    def __str__(self) -> str:
        where = f"stage {self.stage_id}" + (f" ({self.stage_name})" if self.stage_name else "")
        text = f"job {self.job_id} aborted: partition {self.partition} of {where} {self.reason}."
        if self.error is not None:
            text += f"\nLast error: {self.error.type_name}: {self.error.message}"
            text += f"\n\nRemote traceback (from the executor):\n{self.error.traceback.rstrip()}"
            text += f"\n\n{_next_step(self.error)}; the Context is still usable for other jobs."
        return text


def _next_step(error: RemoteError) -> str:
    """What to do about a task's error: most are the function's or the input's, some the machine's."""
    if error.type_name in ("OSError", "IOError") and error.message.startswith(("[Errno 28]", "[Errno 122]")):
        return ("A disk is full: the shuffle store or an executor's scratch folder ran out of space (or "
                "quota). Free space there, or give the job a larger volume (store=, or an s3:// store)")
    if error.type_name == "MemoryError":
        return ("An executor ran out of memory: give the job more partitions, so each task holds less, or "
                "the executors more memory")
    return "Fix the function or the input that raised it"


class ExecutorsCannotStart(RuntimeError):
    """Executors kept ending before they registered: the job cannot run anywhere."""

    def __init__(self, job_id: str, reason: str):
        super().__init__(job_id, reason)
        self.job_id, self.reason = job_id, reason

    def __str__(self) -> str:
        return (f"job {self.job_id} aborted: {self.reason}.\nCheck the executor environment (the Python "
                "installation, PYTHONPATH, the Lambda function and its logs) and executor_timeout; the "
                "Context is still usable once that is fixed.")


class IncompatibleExecutor(RuntimeError):
    """An executor runs another build of dagrun than the driver (``scheduler.build``)."""

    def __init__(self, executor_id: str, theirs: str, ours: str):
        super().__init__(executor_id, theirs, ours)
        self.executor_id, self.theirs, self.ours = executor_id, theirs, ours

    def __str__(self) -> str:
        theirs = f"build {self.theirs}" if self.theirs else "an older dagrun, which does not say its build"
        return (f"executor {self.executor_id} runs another dagrun than this driver ({theirs}; the driver's is "
                f"build {self.ours}). Tasks, stages and shuffle data are pickles of dagrun's own classes, so both "
                "must run the same code: redeploy the Lambda function from this installation with `dagrun lambda "
                "deploy`, or start the executors from the driver's installation. No task was given to it.")
