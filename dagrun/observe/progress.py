"""What a running job shows: Spark's console progress line, a notebook display, log events.

State: per job, the last drawn time and what is shown.

Policy: the console line ``[Stage 3:=====>        (12 + 2) / 32]`` is shown on stderr when
it is a terminal (``progress="auto"``), always with ``"on"``, never with ``"off"``; in a
Jupyter kernel, where stderr is no terminal, ``"auto"`` shows the same line as an HTML
``<progress>`` display instead (IPython's own display machinery, so no extra dependency).
Redrawn at most ten times a second, and cleared (console) or left at its final state
(notebook) when the job ends.  ``JobProgress`` also hands every update to
``logs.JobEvents``, which logs stage and scheduler events as they happen.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO

from dagrun.observe.logs import JobEvents


def stage_rows(dag: Any, machine: Any = None) -> list[tuple[int, int, int, int]]:
    """``(stage id, tasks done, tasks running, tasks)`` of every submitted stage, in job order."""
    rows = []
    for stage in dag.job.stages.values():
        if stage.stage_id not in dag.submitted:
            continue
        if stage.shuffle_id is not None:
            total = stage.num_maps
            done = total - len(dag.tracker.missing(stage.shuffle_id))
        else:
            total, done = len(stage.partitions), len(dag.results)
        running = 0 if machine is None else sum(
            1 for k, r in machine.tasks.items() if k[0] == stage.stage_id and r.status == "running")
        rows.append((stage.stage_id, done, running, total))
    return rows


class ProgressBar:
    def __init__(self, stream: TextIO):
        self.stream = stream
        self._last = 0.0
        self._shown = False

    @classmethod
    def for_config(cls, setting: str, stream: TextIO | None = None) -> "ProgressBar | None":
        stream = stream or sys.stderr
        if setting == "off" or (setting == "auto" and not getattr(stream, "isatty", lambda: False)()):
            return None
        return cls(stream)

    def update(self, dag, machine=None) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and not dag.done:
            return
        self._last = now
        parts = [self.render(*row) for row in stage_rows(dag, machine) if row[1] < row[3]]
        line = " ".join(parts)
        width = shutil.get_terminal_size((100, 20)).columns
        self.stream.write("\r" + line[: width - 1].ljust(width - 1))
        self.stream.flush()
        self._shown = True

    @staticmethod
    def render(stage_id: int, done: int, running: int, total: int, width: int = 40) -> str:
        """>>> ProgressBar.render(1, 12, 2, 32, width=10)
        '[Stage 1:===>      (12 + 2) / 32]'"""
        filled = width * done // max(total, 1)
        bar = ("=" * filled + (">" if filled < width else "")).ljust(width)[:width]
        return f"[Stage {stage_id}:{bar}({done} + {running}) / {total}]"

    def close(self) -> None:
        if self._shown:
            width = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r" + " " * (width - 1) + "\r")
            self.stream.flush()


def in_notebook() -> bool:
    """True in a Jupyter kernel (IPython with a kernel attached)."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    ip = get() if callable(get) else None
    return ip is not None and getattr(ip, "kernel", None) is not None


class NotebookProgress:
    """The console line's content as an HTML display that updates in place."""

    def __init__(self) -> None:
        from IPython.display import HTML, display

        self._html = HTML
        self._handle = display(HTML(self._render([])), display_id=True)
        self._last = 0.0
        self._done: list[tuple[int, int, int]] = []

    @staticmethod
    def _render(rows: list[tuple[int, int, int, int]]) -> str:
        lines = [f'<div class="dagrun-progress">Stage {sid}: <progress value="{done}" max="{max(total, 1)}">'
                 f"</progress> ({done} + {running}) / {total}</div>" for sid, done, running, total in rows]
        return "".join(lines) or '<div class="dagrun-progress">dagrun: starting</div>'

    def update(self, dag: Any, machine: Any = None) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and not dag.done:
            return
        self._last = now
        rows = stage_rows(dag, machine)
        self._handle.update(self._html(self._render(rows)))

    def close(self) -> None:
        pass  # the final state stays in the notebook, as a finished tqdm bar does


class JobProgress:
    """One job's progress display (console, notebook or none) and its log events."""

    def __init__(self, display: Any, events: JobEvents):
        self.display, self.events = display, events

    @classmethod
    def for_job(cls, config: Any, job_id: str) -> "JobProgress":
        setting = getattr(config, "progress", "auto")
        display: Any = ProgressBar.for_config(setting)
        if display is None and setting != "off" and in_notebook():
            display = NotebookProgress()
        return cls(display, JobEvents(job_id))

    def update(self, dag: Any, machine: Any = None) -> None:
        self.events.update(dag, machine)
        if self.display is not None:
            self.display.update(dag, machine)

    def close(self) -> None:
        self.events.flush()
        if self.display is not None:
            self.display.close()
