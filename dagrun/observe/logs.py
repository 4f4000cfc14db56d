"""dagrun's log lines: which events are logged, and the one-line JSON formatter.

State: none but the handler ``configure`` may attach to the ``dagrun`` logger (one, however
often it is called).

Policy: jobs (start, end), stages (start, end), task retries, lost executors, throttles and
speculative attempts are logged at INFO on the ``dagrun`` loggers (``dagrun``,
``dagrun.scheduler``, ``dagrun.history``), each with its fields as ``extra`` attributes
(``event``, ``job``, ``stage``, ``partition``, ``attempt``, ``executor``).  By default no
handler is attached: as any library, dagrun prints nothing beyond what it printed before
(the progress bar and the ledger line) unless the application configures logging or the
``log_format`` setting asks for ``"text"`` or ``"json"``.

Promise: with ``log_format = "json"`` every record is one line of JSON on stderr with
``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message`` and the event's fields, so a cron
or Airflow run leaves a record a log pipeline can parse.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import TextIO

FIELDS = ("event", "job", "stage", "partition", "attempt", "executor", "reason")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


_HANDLER_MARK = "_dagrun_handler"


def configure(log_format: str | None, stream: TextIO | None = None) -> logging.Handler | None:
    """Attach (or replace) dagrun's own stderr handler: ``"text"`` or ``"json"``; ``""`` or None: none."""
    if log_format not in (None, "", "text", "json"):
        raise ValueError(f"log_format {log_format!r} is not one of '', 'text', 'json'")
    logger = logging.getLogger("dagrun")
    for handler in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
        logger.removeHandler(handler)
    if not log_format:
        return None
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(JsonFormatter() if log_format == "json"
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


class JobEvents:
    """Logs one job's events as the driver reports progress: stages started and finished, and
    the scheduler's log entries of the kinds above since the last update."""

    def __init__(self, job_id: str, logger: logging.Logger | None = None):
        self.job_id = job_id
        self.log = logger or logging.getLogger("dagrun.scheduler")
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._seen = None  # the scheduler log's length when this job's first update came
        self._machine = None

    def update(self, dag: object, machine: object = None) -> None:
        if not self.log.isEnabledFor(logging.INFO):
            return
        for stage in dag.job.stages.values():
            sid = stage.stage_id
            if sid in dag.submitted and sid not in self._started:
                self._started.add(sid)
                self.log.info("stage %d started: %s, %d tasks", sid, stage.name, len(stage.partitions),
                              extra={"event": "stage_start", "job": self.job_id, "stage": sid})
            if sid in self._started and sid not in self._finished and _stage_done(dag, stage):
                self._finished.add(sid)
                self.log.info("stage %d finished: %s", sid, stage.name,
                              extra={"event": "stage_end", "job": self.job_id, "stage": sid})
        self._machine = machine
        self.flush()

    def flush(self) -> None:
        """Log the scheduler entries not logged yet (called last when the job ends)."""
        entries = getattr(self._machine, "log", None)
        if entries is None or not self.log.isEnabledFor(logging.INFO):
            return
        if self._seen is None:
            self._seen = max(0, len(entries) - 1)
        for entry in entries[self._seen:]:
            scheduler_event(self.log, entry, self.job_id)
        self._seen = len(entries)


def _stage_done(dag: object, stage: object) -> bool:
    if stage.shuffle_id is not None:
        return not dag.tracker.missing(stage.shuffle_id)
    return dag.done


def scheduler_event(logger: logging.Logger, event: object, job_id: str | None) -> None:
    """Log one of the scheduler's log entries if it is one of the events above."""
    what = getattr(event, "what", None)
    if what == "assign" and (getattr(event, "detail", None) or {}).get("speculative"):
        what = "speculate"
    if what not in _LOGGED:
        return
    key = getattr(event, "key", None)
    fields = {"event": what, "job": job_id, "stage": key[0] if key else None, "partition": key[1] if key else None,
              "attempt": getattr(event, "attempt", None), "executor": getattr(event, "executor_id", None),
              "reason": None if getattr(event, "detail", None) is None else str(event.detail)}
    parts = [f"{k}={v}" for k, v in fields.items() if v is not None and k != "event"]
    logger.info("%s %s", _LOGGED[what], " ".join(parts), extra=fields)


_LOGGED = {"lost": "executor lost", "throttle": "throttled, launch rate cut", "fail": "task attempt failed, retrying",
           "speculate": "speculative attempt started", "refetch": "map outputs lost, rerunning their tasks",
           "abort": "job aborted", "kill": "executor killed"}
