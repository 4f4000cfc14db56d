"""A Spark-style console progress line: ``[Stage 3:=====>        (12 + 2) / 32]``.

Shown on stderr when it is a terminal (``progress="auto"``), always with ``"on"``, never
with ``"off"``.  Redrawn at most ten times a second, and cleared when the job ends.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO


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
        parts = []
        for stage in dag.job.stages.values():
            if stage.stage_id not in dag.submitted:
                continue
            if stage.shuffle_id is not None:
                total = stage.num_maps
                done = total - len(dag.tracker.missing(stage.shuffle_id))
            else:
                total, done = len(stage.partitions), len(dag.results)
            if done >= total:
                continue
            running = 0
            if machine is not None:
                running = sum(1 for k, r in machine.tasks.items() if k[0] == stage.stage_id and r.status == "running")
            parts.append(self.render(stage.stage_id, done, running, total))
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
