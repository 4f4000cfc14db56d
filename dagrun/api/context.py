"""``Context``: the entry point.  It owns the resolved config, the store, and the driver.

State: the frozen ``Config``; the shuffle store (a fresh temp directory unless ``store`` is
given); the driver with its executors, started with the Context (local) or at the first job, until ``stop``;
id counters for RDDs, shuffles, stages and jobs; and ``jobs``, the record of every job run.

Policy: one job at a time.  After a job, successful or not, its shuffle blocks are deleted
(unless ``keep_shuffle``) and its shuffles are forgotten by the tracker; persisted RDDs live
under the context's own prefix until ``unpersist`` or ``stop``.  A failed job leaves the
Context usable.

Example:
    >>> import dagrun
    >>> with dagrun.Context(executor="inline") as ctx:
    ...     ctx.parallelize(range(10), 3).map(lambda x: (x % 2, x)).reduce_by_key(lambda a, b: a + b).collect()
    [(0, 20), (1, 25)]
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import secrets
import tempfile
import threading
import time
from typing import Any, Callable, Iterable

from scheduler.backends import get_backend_class, starts_with_context
from scheduler.driver import Driver
from scheduler.core.tasks import Policy
from scheduler.results import ResultLoader, TaskValue
from shuffle.gc import LEASE_AFTER, Lease
from shuffle.layout import app_id, cache_job_id, job_dirs, redact
from shuffle.layout import job_id as make_job_id
from shuffle.owned_dirs import owned_dir, remove_owned, sweep_in_background
from shuffle.store import BlockStore

from dagrun.config import Config
from dagrun.runtime.faults import launch_budget, parse_faults
from dagrun.observe.history import job_finished
from dagrun.observe.jobinfo import JobInfo
from dagrun.observe.logs import configure as configure_logs
from dagrun.api.added_files import AddedFiles
from dagrun.api.rdd import RDD
from dagrun.api.file_inputs import FileInputs
from dagrun.graph.nodes import ParallelCollectionNode, UnionNode
from dagrun.graph.planner import TASK_RUNNER, plan_job, refuse_pickling
from dagrun.observe.progress import JobProgress
from dagrun.runtime.shared_vars import Accumulator, AccumulatorParam, Broadcast, new_accumulator

log = logging.getLogger("dagrun")

# Set by ``dagrun plan`` (plan_cli.PlanRecorder): Contexts then record each job's plan and run
# it only on small inputs, in process.
plan_hook: Any = None


class Context(FileInputs):
    """Run RDD jobs on ``executor`` ("local", "inline" or "lambda") with shuffle data in ``store``."""

    def __init__(self, executor: str | None = None, store: str | None = None, max_executors: int | None = None,
                 conf: dict[str, Any] | None = None, **settings: Any):
        self.config = Config.resolve(conf, executor=executor, store=store, max_executors=max_executors, **settings)
        if plan_hook is not None:
            self.config = plan_hook.configure(self.config)
        self.app_id = app_id(time.time(), secrets.token_hex(3))
        self._owned_store = None
        url = self.config.store
        if self.config.executor == "lambda" and (url is None or str(url).startswith("memory://")):
            where = "no store (the default is a temporary directory on this machine)" if url is None else f"store {url!r}"
            raise ValueError(f"executor='lambda' cannot use {where}: Lambda functions cannot see it, so every "
                             "shuffle read would fail; pass store='s3://bucket/prefix' (or the path of an EFS "
                             "mount the function also mounts)")
        sweep_in_background([self.config.scratch_dir or tempfile.gettempdir(), tempfile.gettempdir()])
        if url is None:
            self._owned_store = owned_dir("dagrun-store-", self.config.scratch_dir)
            url = self._owned_store
        self.store_url = url
        self.store = BlockStore(url, dict(self.config.storage_options))
        # a shared store may be garbage-collected while this Context lives: a lease keeps its blocks
        self._lease = Lease(self.store, self.app_id) if self._owned_store is None else None
        if not self.store.crosses_processes and self.config.executor != "inline":
            raise ValueError(f"store {redact(url)!r} lives in this process's memory and cannot be shared with "
                             f"{self.config.executor!r} executors; use executor='inline', or a file:// or s3:// store")
        if self.config.log_format:
            configure_logs(self.config.log_format)
        self.faults = parse_faults(self.config.faults)
        self._fault_dir = owned_dir("dagrun-faults-") if self.faults else None
        self._counters: dict[str, itertools.count] = {}
        self._driver: Driver | None = None
        self._starting: threading.Thread | None = None  # the constructor's start of the driver
        self._start_error: BaseException | None = None  # ... and what it raised, for the first job
        self._cached: set[int] = set()
        self._stored_results: set[str] = set()  # keys of large results committed and not yet loaded
        self._results = ResultLoader(self.store)  # each result is loaded as its task commits
        self.jobs: list[JobInfo] = []
        self.running_jobs: dict[int, str] = {}  # thread id -> the job it runs, for cancel_job from another thread
        self._one_job = threading.RLock()  # one job at a time, whichever thread asks (a prefetching iterator)
        self._waiting: set[int] = set()  # threads waiting for the job before theirs to end
        self._cancel_next: set[int] = set()  # ... whose job is cancelled before it starts
        self._accumulators: dict[int, Accumulator] = {}
        self.added_files = AddedFiles(self.store, self.app_id, self.config.shuffle_prefixes, self.config.storage_options)
        self.start_time = int(time.time() * 1000)  # epoch milliseconds, as PySpark's startTime
        self._closed = False
        # a Context that is never stopped must still end its executors and remove its temp store
        atexit.register(self.stop)
        if starts_with_context(self.config.executor):  # off the constructor's time: executors start as we plan
            self._starting = threading.Thread(target=self._start_driver, name="dagrun-context-start", daemon=True)
            self._starting.start()

    # ---- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the executors and delete what this context kept in the store."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.stop)
        if self._starting is not None:  # what it started is in self._driver; what it raised, nobody needs
            self._starting.join()
        if self._driver is not None:
            self._driver.close()
            self._driver = None
        self._results.close()
        if self._cached and not self.config.keep_shuffle:  # nothing persisted: no LISTs to pay for
            self._delete_job_blocks(self._cache_job_id)
        self.added_files.remove_all()
        if self._lease is not None:
            self._lease.release()
        if self._owned_store:
            remove_owned(self._owned_store)
        if self._fault_dir:
            remove_owned(self._fault_dir)

    @property
    def last_job(self) -> JobInfo | None:
        return self.jobs[-1] if self.jobs else None

    @property
    def application_id(self) -> str:
        return self.app_id

    @property
    def version(self) -> str:
        """dagrun's version."""
        from dagrun import __version__

        return __version__

    @property
    def default_min_partitions(self) -> int:
        """Partitions a file source makes at least, when not told: ``min(default_parallelism, 2)``."""
        return min(self.default_parallelism, 2)

    def set_log_level(self, level: str) -> None:
        """The level of dagrun's own loggers, e.g. ``"WARN"`` or ``"DEBUG"``."""
        name = {"WARN": "WARNING", "ALL": "NOTSET", "OFF": "CRITICAL", "TRACE": "DEBUG", "FATAL": "CRITICAL"}
        logging.getLogger("dagrun").setLevel(name.get(level.upper(), level.upper()))

    def broadcast(self, value: Any) -> Broadcast:
        """A read-only value for tasks to use through ``.value``.

        >>> b = ctx.broadcast([1, 2, 3])                                      # doctest: +SKIP
        >>> ctx.parallelize([0, 0]).flat_map(lambda x: b.value).collect()    # doctest: +SKIP
        [1, 2, 3, 1, 2, 3]
        """
        return Broadcast(value)

    def accumulator(self, value: Any, accum_param: AccumulatorParam | None = None) -> Accumulator:
        """A value tasks add to (``a.add(x)`` or ``a += x``) and the driver reads (``a.value``).

        ``accum_param`` (an ``AccumulatorParam``) is needed for anything but int, float
        and complex.  Updates count once per committed task attempt.
        """
        accumulator = new_accumulator(value, accum_param)
        self._accumulators[accumulator.aid] = accumulator
        return accumulator

    def add_file(self, path: str, recursive: bool = False) -> None:
        """Ship a file (local or a URL; a folder with ``recursive=True``) to every task's machine.

        >>> ctx.add_file("lookup.csv")                                                  # doctest: +SKIP
        >>> ctx.parallelize([1]).map(lambda _: open(dagrun.files.get("lookup.csv")).read())  # doctest: +SKIP
        """
        self.added_files.add(path, recursive)

    def add_py_file(self, path: str) -> None:
        """``add_file`` for a ``.py``, ``.zip`` or ``.egg`` that tasks then import."""
        self.added_files.add(path, python=True)

    @property
    def list_files(self) -> list[str]:
        """What ``add_file`` was given, as PySpark's ``listFiles`` shows it (``file:/...``)."""
        return self.added_files.paths

    def _apply_accumulator_updates(self, attempts: list) -> None:
        for attempt in attempts:
            if attempt.outcome == "committed":
                for aid, update in getattr(attempt.metrics, "accumulators", {}).items():
                    if aid in self._accumulators:
                        self._accumulators[aid].merge(update)

    @property
    def default_parallelism(self) -> int:
        return self.config.effective_parallelism

    @property
    def _cache_job_id(self) -> str:
        return cache_job_id(self.app_id)

    def _next_id(self, kind: str) -> int:
        return next(self._counters.setdefault(kind, itertools.count()))

    # ---- sources ---------------------------------------------------------------------------

    def __reduce__(self):
        refuse_pickling("Context")

    def parallelize(self, data: Iterable, num_partitions: int | None = None, *,
                    num_slices: int | None = None) -> RDD:
        """Distribute a local collection; slice i holds ``data[i*n//k:(i+1)*n//k]``.

        ``num_slices`` is PySpark's name (``numSlices``) for ``num_partitions``.

        >>> ctx.parallelize([0, 2, 3, 4, 6], 5).glom().collect()     # doctest: +SKIP
        [[0], [2], [3], [4], [6]]
        """
        num_partitions = _one_of(num_partitions, num_slices)
        items = data if isinstance(data, range) else list(data)  # a copy: PySpark's is taken at the call
        k = int(num_partitions) if num_partitions is not None else self.default_parallelism  # int(): PySpark's
        if k < 1:
            raise ValueError(f"num_partitions must be at least 1, got {k}")
        return RDD(ParallelCollectionNode(self, items, k))

    def range(self, start: int, end: int | None = None, step: int = 1, num_partitions: int | None = None, *,
              num_slices: int | None = None) -> RDD:
        """Like Python's ``range``, distributed: ``ctx.range(5)`` holds 0..4."""
        if end is None:
            start, end = 0, start
        return self.parallelize(range(start, end, step), _one_of(num_partitions, num_slices))

    def empty_rdd(self) -> RDD:
        """An RDD with no partitions and no elements (PySpark's ``emptyRDD``)."""
        return RDD(ParallelCollectionNode(self, [], 0))

    def union(self, rdds: list[RDD]) -> RDD:
        if not rdds:
            raise ValueError("union needs at least one RDD")
        return rdds[0] if len(rdds) == 1 else RDD(UnionNode(self, [r._node for r in rdds]))

    # ---- running jobs ----------------------------------------------------------------------

    def run_job(self, rdd: RDD, func: Callable | None, partitions: list[int] | None = None,
                count_lines: bool = False) -> list:
        """Run ``func(task_context, iterator)`` on each requested partition; results in order."""
        if self._closed:
            raise RuntimeError("this Context is stopped; create a new one")
        me = threading.get_ident()
        self._waiting.add(me)
        try:
            with self._one_job:
                self._waiting.discard(me)
                if me in self._cancel_next:  # cancelled while it waited for the job before it
                    self._cancel_next.discard(me)
                    raise KeyboardInterrupt
                return self._run_job(rdd, func, partitions, count_lines)
        finally:
            self._waiting.discard(me)

    def _run_job(self, rdd: RDD, func: Callable | None, partitions: list[int] | None, count_lines: bool) -> list:
        node = rdd._node
        if partitions is None:
            partitions = list(range(rdd.get_num_partitions()))
        job_id = make_job_id(self.app_id, self._next_id("job"))
        job, graph = plan_job(self, node, func, partitions, job_id, "count_lines" if count_lines else "result")
        if plan_hook is not None:
            plan_hook.planned(self, job_id, graph)  # raises PlanStop when the job is too big to dry-run
        driver = self._ensure_driver()
        info = JobInfo(job_id, rdd.name(), graph, self.store_url, self.config)
        bar = JobProgress.for_job(self.config, job_id)
        before = self.store.counts  # the driver's own requests: discards, injected faults, cleanup
        interrupted = False
        lease_timer = self._lease_for(job)
        self.running_jobs[threading.get_ident()] = job_id
        log.info("job %s started: %s, %d stages", job_id, info.description, len(job.stages),
                 extra={"event": "job_start", "job": job_id})
        try:
            results = driver.run_job(job, bar.update if bar else None)
            values = [self._load(results[p]) for p in partitions]
            info.succeeded = True
            return values
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            self._results.settle()
            for key in list(self._stored_results):  # a failed job's results, fetched by nobody
                self._stored_results.discard(key)
                self._discard_output(TaskValue(0, key=key))
            if lease_timer is not None:
                lease_timer.cancel()
            self.running_jobs.pop(threading.get_ident(), None)
            if bar:
                bar.close()
            attempts, scheduler_log = driver.take_records(job_id)
            if interrupted:  # end the executors before the cleanup: a running one may still write blocks
                driver.close()
            self._forget_shuffles(job)
            if interrupted:
                self._driver = None
            self._apply_accumulator_updates(attempts)
            info.finish(attempts, scheduler_log, self.store.counts - before, driver.executor_log)
            self.jobs.append(info)
            job_finished(info)  # the ledger line and the JSON record; never raises

    def _lease_for(self, job) -> threading.Timer | None:
        """Hold the lease now if the Context keeps persisted blocks, else once the job runs long."""
        if self._lease is None or self._lease.held:
            return None
        if self._cached:
            self._lease.hold()
            return None
        timer = threading.Timer(LEASE_AFTER, self._lease.hold)
        timer.daemon = True
        timer.start()
        return timer

    def cancel_job(self, job_id: str) -> None:
        """Stop ``job_id`` if it is running; the thread that runs it gets ``KeyboardInterrupt``."""
        if self._driver is not None and job_id in self.running_jobs.values():
            self._driver.events.put(("cancel", job_id))  # the driver's own Ctrl-C path

    def cancel_thread(self, thread_id: int) -> None:
        """Cancel the job ``thread_id`` runs, or the one it waits to run (it gets ``KeyboardInterrupt``)."""
        job_id = self.running_jobs.get(thread_id)
        if job_id is not None:
            self.cancel_job(job_id)
        elif thread_id in self._waiting:
            self._cancel_next.add(thread_id)

    def _start_driver(self) -> None:
        try:
            self._driver = self._new_driver()
        except BaseException as exc:  # noqa: BLE001 - the first job raises it
            self._start_error = exc

    def _ensure_driver(self) -> Driver:
        if self._starting is not None:  # the constructor's start: wait for it, and raise what it raised once
            self._starting.join()
            self._starting, error, self._start_error = None, self._start_error, None
            if error is not None:
                raise error
        if self._driver is None:
            self._driver = self._new_driver()
        return self._driver

    def _new_driver(self) -> Driver:
        c = self.config
        backend = get_backend_class(c.executor)(c)
        policy = Policy(max_executors=backend.capacity(), max_attempts=c.max_attempts, retire_margin=c.retire_margin,
                        idle_timeout=c.idle_timeout, heartbeat_timeout=c.heartbeat_timeout, ramp_initial=c.ramp_initial,
                        ramp_slope=c.ramp_slope, speculation=c.speculation, speculation_quantile=c.speculation_quantile,
                        speculation_multiplier=c.speculation_multiplier, task_timeout=c.task_timeout or None)
        # numpy (the line count, the prefix sort) is optional: imported only while an executor waits
        return Driver(backend, policy, host=c.driver_host, executor_timeout=c.executor_timeout,
                      heartbeat_interval=c.heartbeat_interval, scratch_dir=c.scratch_dir, memory_mb=c.lambda_memory_mb,
                      on_discard=self._discard_output, on_commit=self._on_commit, max_result_size=c.max_result_size,
                      launch_throttled=launch_budget(self.faults, self._fault_dir), preload=(TASK_RUNNER.partition(":")[0], "numpy?"))

    def _load(self, value: Any) -> Any:
        """A result task's value as the action's function made it (``scheduler.results``)."""
        if isinstance(value, TaskValue):
            if value.key is not None:
                self._stored_results.discard(value.key)
            return self._results.load(value)
        return value

    def _on_commit(self, stage, key, value) -> None:
        if isinstance(value, TaskValue) and value.key is not None:
            self._stored_results.add(value.key)  # deleted when loaded, or when the job ends without it
        if isinstance(value, TaskValue):
            self._results.submit(value)
        if self.faults:
            self._inject_block_faults(stage, key, value)

    def _inject_block_faults(self, stage, key, value) -> None:
        from dagrun.runtime.faults import damage_block

        for fault in self.faults:
            if fault.kind in ("delete_block", "corrupt_block") and stage.shuffle_id is not None \
                    and fault.matches(stage.index, stage.name, key[1], value.attempt):
                damage_block(self.store, value, fault.kind)

    def _discard_output(self, value: Any) -> None:
        """Delete what a discarded attempt wrote: a map output block, or a save's attempt file.

        Best effort, on the driver's loop: what a failure here leaves behind goes with the
        job's prefix (or ``_temporary``), or at worst to ``dagrun store gc``.
        """
        try:
            if isinstance(value, TaskValue):
                if value.key is not None:
                    value.discard(self.store)
                    return
                value = value.load(self.store) if value.blob is not None else None
            discard = getattr(value, "discard_output", None)  # dagrun.api.output.AttemptFile
            if callable(discard):
                discard()
                return
            key = getattr(value, "key", None)
            if isinstance(key, str) and hasattr(value, "segments"):
                self.store.delete(key)
        except OSError as exc:
            log.warning("could not delete the output of a discarded attempt: %s", exc)

    def _forget_shuffles(self, job) -> None:
        wrote_blocks = False
        for stage in job.stages.values():
            if stage.shuffle_id is not None and stage.shuffle_id not in self._cached:
                self._driver.tracker.drop_shuffle(stage.shuffle_id)
                wrote_blocks = True
        # a job without a shuffle wrote nothing under its prefix: no LISTs to pay for
        if wrote_blocks and not self.config.keep_shuffle:
            self._delete_job_blocks(job.job_id)

    def _drop_cached(self, cache_id: int) -> None:
        self._cached.discard(cache_id)
        if self._driver is not None:
            for status in self._driver.tracker.drop_shuffle(cache_id):
                self._discard_output(status)

    def _delete_job_blocks(self, job_id: str) -> None:
        for prefix in job_dirs(job_id, self.config.shuffle_prefixes):
            with contextlib.suppress(FileNotFoundError):
                self.store.delete_prefix(prefix)


def _one_of(num_partitions: int | None, num_slices: int | None) -> int | None:
    if num_slices is not None and num_partitions is not None and num_slices != num_partitions:
        raise TypeError("give num_partitions or num_slices (its PySpark name), not both")
    return num_partitions if num_partitions is not None else num_slices

