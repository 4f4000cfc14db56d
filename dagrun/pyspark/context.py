"""``SparkContext`` and ``SparkConf`` over a dagrun ``Context``.

State: the one active ``SparkContext`` of the process (as in PySpark), its dagrun Context,
the thread-local job properties (job group, description), and, per finished or running
job, its number, group and stages for ``statusTracker()``.

Policy: the master chooses dagrun's executor: ``local``/``local[N]``/``local[*]`` run on
local executor processes (N of them), ``inline`` (or ``inline[N]``) in this process, and
``lambda`` on AWS Lambda; without a master in the code or the conf, dagrun's own settings
decide (``dagrun run --executor``, ``DAGRUN_EXECUTOR``, ``dagrun.toml``).  A local or inline
master allows a task one attempt (``local[N,F]``: F), as Spark's local mode does; otherwise
``spark.task.maxFailures`` sets ``max_attempts``, and ``dagrun.max_attempts`` overrides both.  As in Spark,
what the code sets wins over the command line.  ``spark.default.parallelism`` and every
``dagrun.*`` key of the conf go to the dagrun Context; other ``spark.*`` keys are kept and
readable through ``getConf()`` but change nothing.

Promise: PySpark's SparkContext methods are reachable under their names (generated from
the dagrun Context's snake_case API by ``names.generate``, with PySpark's signatures written
out where the positional order differs); what needs the JVM raises ``NotImplementedError``
saying what to use instead.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import fsspec

from dagrun.api.context import Context
from dagrun.graph.planner import refuse_pickling
from dagrun.pyspark import hadoop
from dagrun.pyspark.names import generate, not_in_dagrun
from dagrun.pyspark.rdd import RDD, unwrap, wrap

class JobCancelled(RuntimeError):
    """A job stopped by ``cancelJobGroup``, ``cancelJobsWithTag`` or ``cancelAllJobs``."""


class SparkConf:
    """Key-value settings, as PySpark's ``SparkConf`` (``set``, ``get``, ``setAppName``, ...)."""

    def __init__(self, loadDefaults: bool = True, _jvm: Any = None, _jconf: Any = None):
        self._conf: dict[str, str] = {}

    def set(self, key: str, value: Any) -> "SparkConf":
        self._conf[key] = str(value)
        return self

    def setIfMissing(self, key: str, value: Any) -> "SparkConf":
        self._conf.setdefault(key, str(value))
        return self

    def setMaster(self, value: str) -> "SparkConf":
        return self.set("spark.master", value)

    def setAppName(self, value: str) -> "SparkConf":
        return self.set("spark.app.name", value)

    def setSparkHome(self, value: str) -> "SparkConf":
        return self.set("spark.home", value)

    def setExecutorEnv(self, key: str | None = None, value: str | None = None,
                       pairs: list[tuple[str, str]] | None = None) -> "SparkConf":
        for k, v in ([(key, value)] if key is not None else []) + list(pairs or []):
            self.set(f"spark.executorEnv.{k}", v)
        return self

    def setAll(self, pairs: Iterable[tuple[str, Any]]) -> "SparkConf":
        for k, v in pairs:
            self.set(k, v)
        return self

    def get(self, key: str, defaultValue: str | None = None) -> str | None:
        return self._conf.get(key, defaultValue)

    def getAll(self) -> list[tuple[str, str]]:
        return list(self._conf.items())

    def contains(self, key: str) -> bool:
        return key in self._conf

    def unset(self, key: str) -> "SparkConf":
        self._conf.pop(key, None)
        return self

    def toDebugString(self) -> str:
        return "\n".join(f"{k}={v}" for k, v in self._conf.items())


_MASTER = re.compile(r"(local|inline)(?:\[(\*|\d+)(?:,\s*(\d+))?\])?|lambda")


def _executor_settings(master: str | None) -> dict[str, Any]:
    """``local[4]`` -> local executors, 4 of them; ``inline`` -> this process."""
    if master is None:
        return {}
    match = _MASTER.fullmatch(master.strip())
    if not match:
        raise ValueError(f"master {master!r} is not one dagrun can run on; use 'local', 'local[N]', "
                         "'local[*]', 'inline' or 'lambda' (dagrun has no Spark cluster to connect to)")
    if master == "lambda":
        return {"executor": "lambda"}
    kind, count, failures = match.groups()
    n = 1 if count is None else (os.cpu_count() or 1) if count == "*" else int(count)
    # N slots make N the default parallelism, and leave dagrun's default_parallelism unset, so a
    # shuffle without numPartitions keeps its input's partition count, as PySpark's does.
    # A local master fails the job at a task's first error, as Spark's local[N] does;
    # local[N,F] allows F attempts.
    return {"executor": kind, "max_executors": n, "max_attempts": int(failures or 1)}


@dataclass
class SparkJobInfo:
    jobId: int
    stageIds: list[int]
    status: str  # RUNNING, SUCCEEDED or FAILED


@dataclass
class SparkStageInfo:
    stageId: int
    currentAttemptId: int
    name: str
    numTasks: int
    numActiveTasks: int
    numCompletedTasks: int
    numFailedTasks: int


class StatusTracker:
    """What ``sc.statusTracker()`` tells: jobs by group, and the stages of finished jobs."""

    def __init__(self, sc: "SparkContext"):
        self._sc = sc

    def getJobIdsForGroup(self, jobGroup: str | None = None) -> list[int]:
        return [j for j, (group, _) in self._sc._jobs.items() if group == jobGroup]

    def getActiveJobsIds(self) -> list[int]:
        return [j for j, (_, info) in self._sc._jobs.items() if info is None]

    def getActiveStageIds(self) -> list[int]:
        return []  # a running job's stages are known to its driver loop only

    def getJobInfo(self, jobId: int) -> SparkJobInfo | None:
        entry = self._sc._jobs.get(jobId)
        if entry is None:
            return None
        info = entry[1]
        if info is None:
            return SparkJobInfo(jobId, [], "RUNNING")
        return SparkJobInfo(jobId, [s.stage_id for s in info.stages],
                            "SUCCEEDED" if info.succeeded else "FAILED")

    def getStageInfo(self, stageId: int) -> SparkStageInfo | None:
        for _, info in self._sc._jobs.values():
            for stage in getattr(info, "stages", ()):
                if stage.stage_id == stageId:
                    tasks = [a for a in info.attempts if a.stage_id == stageId]
                    done = {a.partition for a in tasks if a.outcome == "committed"}
                    failed = sum(1 for a in tasks if a.outcome not in ("committed", "discarded"))
                    return SparkStageInfo(stageId, 0, stage.name, len(stage.partitions), 0, len(done), failed)
        return None


class SparkContext(hadoop.HadoopInputs):
    """PySpark's entry point, running on dagrun: ``SparkContext("local[4]", "wordcount")``."""

    _active_spark_context: "SparkContext | None" = None  # PySpark's name for it
    _lock = threading.RLock()

    def __init__(self, master: str | None = None, appName: str | None = None, sparkHome: str | None = None,
                 pyFiles: list[str] | None = None, environment: dict | None = None, batchSize: int = 0,
                 serializer: Any = None, conf: SparkConf | None = None, gateway: Any = None, jsc: Any = None,
                 profiler_cls: Any = None, udf_profiler_cls: Any = None, memory_profiler_cls: Any = None):
        if gateway is not None or jsc is not None:
            raise NotImplementedError("SparkContext(gateway=..., jsc=...) needs Spark's JVM, which dagrun "
                                      "does not have; leave them out")
        self._conf = SparkConf()
        self._conf.setAll((conf or SparkConf()).getAll())
        if master:
            self._conf.setMaster(master)
        if appName:
            self._conf.setAppName(appName)
        with SparkContext._lock:
            if SparkContext._active_spark_context is not None:
                active = SparkContext._active_spark_context
                raise ValueError(f"Cannot run multiple SparkContexts at once; existing SparkContext"
                                 f"(app={active.appName}, master={active.master}); call its stop() first")
            self._ctx = Context(**self._dagrun_settings())
            SparkContext._active_spark_context = self
        self._local = threading.local()
        self._jobs: dict[int, tuple[str | None, Any]] = {}
        self._checkpoint_dir: str | None = None  # as Hadoop prints it
        self._checkpoint_url: str | None = None  # as fsspec opens it
        self._unwritten_checkpoints: list = []  # RDDs marked by checkpoint() whose files are not written yet
        self._running: dict[int, tuple[str | None, frozenset]] = {}  # thread id -> its group and tags
        self._cancelled: dict[int, str] = {}  # thread id -> why its job was cancelled
        self.environment = dict(environment or {})
        self.pythonExec = None
        try:
            self._add_files_of_conf(pyFiles or [])
        except BaseException:  # a bad path in the settings must not leave this context active
            self.stop()
            raise

    def _add_files_of_conf(self, py_files: list[str]) -> None:
        """``spark.files``, ``spark.submit.pyFiles`` and the ``pyFiles`` argument, added as PySpark adds them."""
        listed = lambda key: [p for p in (self._conf.get(key) or "").split(",") if p]  # noqa: E731
        for path in listed("spark.files"):
            self._ctx.add_file(path)
        for path in [*listed("spark.submit.pyFiles"), *py_files]:
            self._ctx.add_py_file(path)

    def _dagrun_settings(self) -> dict[str, Any]:
        settings = _executor_settings(self._conf.get("spark.master"))
        conf = {k: v for k, v in self._conf.getAll() if k.startswith("dagrun.")}
        # a task's attempts: the local master's, else Spark's spark.task.maxFailures; dagrun's own key wins
        attempts = settings.pop("max_attempts", None) or self._conf.get("spark.task.maxFailures")
        if attempts is not None and "dagrun.max_attempts" not in conf:
            conf["dagrun.max_attempts"] = attempts
        if self._conf.contains("spark.default.parallelism"):
            conf["default_parallelism"] = self._conf.get("spark.default.parallelism")
        return {"conf": conf, **settings}

    @classmethod
    def getOrCreate(cls, conf: SparkConf | None = None) -> "SparkContext":
        with cls._lock:
            active = cls._active_spark_context
            return active if active is not None else cls(conf=conf or SparkConf())

    def stop(self) -> None:
        with SparkContext._lock:
            self._ctx.stop()
            if SparkContext._active_spark_context is self:
                SparkContext._active_spark_context = None

    def __enter__(self) -> "SparkContext":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SparkContext master={self.master} appName={self.appName} (dagrun {self.version})>"

    # ---- properties ------------------------------------------------------------------------

    @property
    def master(self) -> str:
        return self._conf.get("spark.master") or self._ctx.config.executor

    @property
    def appName(self) -> str:
        return self._conf.get("spark.app.name") or "dagrun"

    @property
    def version(self) -> str:
        return self._ctx.version

    @property
    def applicationId(self) -> str:
        return self._ctx.application_id

    @property
    def startTime(self) -> int:
        return self._ctx.start_time

    @property
    def defaultParallelism(self) -> int:
        return self._ctx.default_parallelism

    @property
    def defaultMinPartitions(self) -> int:
        return self._ctx.default_min_partitions

    @property
    def uiWebUrl(self) -> None:
        return None  # no web UI: ``dagrun report`` writes each job's report as a file

    @property
    def resources(self) -> dict:
        return {}

    @property
    def listFiles(self) -> list[str]:
        return self._ctx.list_files

    @property
    def listArchives(self) -> list[str]:
        return []  # addArchive is not in dagrun

    @property
    def dagrun_context(self) -> Context:
        """The dagrun Context underneath, for dagrun's own API (``explain``, ``last_job``)."""
        return self._ctx

    def getConf(self) -> SparkConf:
        conf = SparkConf()
        conf.setAll(self._conf.getAll())
        return conf

    def sparkUser(self) -> str:
        return os.environ.get("SPARK_USER") or getpass.getuser()

    def setLogLevel(self, logLevel: str) -> None:
        self._ctx.set_log_level(logLevel)

    # ---- sources whose PySpark signature differs from dagrun's ------------------------------

    def __reduce__(self):
        refuse_pickling("SparkContext")

    def parallelize(self, c: Iterable, numSlices: int | None = None) -> RDD:
        return RDD(self._ctx.parallelize(c, numSlices), self)

    def range(self, start: int, end: int | None = None, step: int = 1, numSlices: int | None = None) -> RDD:
        return RDD(self._ctx.range(start, end, step, numSlices), self)

    def emptyRDD(self) -> RDD:
        rdd = self._ctx.empty_rdd()
        rdd._node._pyspark_kind = "EmptyRDD"
        return RDD(rdd, self)

    def textFile(self, name: str, minPartitions: int | None = None, use_unicode: bool = True) -> RDD:
        rdd = RDD(self._ctx.text_file(name, minPartitions, use_unicode=use_unicode), self)
        return rdd.setName(name)  # PySpark names a file source by its path

    def wholeTextFiles(self, path: str, minPartitions: int | None = None, use_unicode: bool = True) -> RDD:
        return RDD(self._ctx.whole_text_files(path, minPartitions, use_unicode), self)

    def binaryRecords(self, path: str, recordLength: int) -> RDD:
        return RDD(self._ctx.binary_records(path, recordLength), self)

    def union(self, rdds: list[RDD]) -> RDD:
        return RDD(self._ctx.union([unwrap(r) for r in rdds]), self)

    def runJob(self, rdd: RDD, partitionFunc: Callable, partitions: list[int] | None = None,
               allowLocal: bool = False) -> list:
        """``partitionFunc(iterator)`` on the given partitions, the outputs flattened in order."""
        inner = unwrap(rdd)
        if partitions is None:
            partitions = list(range(inner.get_num_partitions()))
        parts = self._run(self._ctx.run_job, (inner, lambda tc, it: list(partitionFunc(it)), partitions), {})
        return [x for part in parts for x in part]

    # ---- job groups and properties ---------------------------------------------------------

    def _props(self) -> dict[str, str]:
        if not hasattr(self._local, "props"):
            self._local.props = {}
        return self._local.props

    def setLocalProperty(self, key: str, value: str | None) -> None:
        if value is None:
            self._props().pop(key, None)
        else:
            self._props()[key] = value

    def getLocalProperty(self, key: str) -> str | None:
        return self._props().get(key)

    def setJobGroup(self, groupId: str, description: str, interruptOnCancel: bool = False) -> None:
        self.setLocalProperty("spark.jobGroup.id", groupId)
        self.setLocalProperty("spark.job.description", description)
        self.setLocalProperty("spark.job.interruptOnCancel", str(interruptOnCancel).lower())

    def clearJobGroup(self) -> None:
        for key in ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel"):
            self.setLocalProperty(key, None)

    def setJobDescription(self, value: str) -> None:
        self.setLocalProperty("spark.job.description", value)

    @contextlib.contextmanager
    def _job_group(self, group: str, description: str, interrupt: bool):
        saved = dict(self._props())
        self.setJobGroup(group, description, interrupt)
        try:
            yield
        finally:
            self._local.props = saved

    def _run(self, method: Callable, args: tuple, kwargs: dict) -> Any:
        """Call ``method``; every dagrun job it runs is recorded under this thread's job group
        and tags, and a job cancelled through them raises ``JobCancelled`` here."""
        me = threading.get_ident()
        group = self.getLocalProperty("spark.jobGroup.id")
        self._running[me] = (group, frozenset(self.getJobTags()))
        jobs, before = self._ctx.jobs, len(self._ctx.jobs)
        try:
            value = method(*args, **kwargs)
            if self._unwritten_checkpoints and len(jobs) > before:
                self._write_checkpoints()
            return value
        except KeyboardInterrupt:
            reason = self._cancelled.pop(me, None)
            if reason is None:
                raise
            raise JobCancelled(f"Job cancelled {reason}") from None
        finally:
            self._running.pop(me, None)
            for info in jobs[before:]:
                self._jobs[int(info.job_id.rpartition("-j")[2])] = (group, info)

    def _cancel(self, matches: Callable[[str | None, frozenset], bool], reason: str) -> None:
        for thread, (group, tags) in list(self._running.items()):
            if matches(group, tags):  # its job is running, or waiting for the one before it
                self._cancelled[thread] = reason
                self._ctx.cancel_thread(thread)

    def cancelJobGroup(self, groupId: str) -> None:
        """Stop the running jobs of group ``groupId``; their callers get ``JobCancelled``."""
        self._cancel(lambda group, tags: group == groupId, f"as part of cancelled job group {groupId}")

    def cancelAllJobs(self) -> None:
        self._cancel(lambda group, tags: True, "as part of cancellation of all jobs")

    def addJobTag(self, tag: str) -> None:
        self._tags().add(tag)

    def removeJobTag(self, tag: str) -> None:
        self._tags().discard(tag)

    def getJobTags(self) -> set[str]:
        return set(self._tags())

    def clearJobTags(self) -> None:
        self._tags().clear()

    def cancelJobsWithTag(self, tag: str) -> None:
        self._cancel(lambda group, tags: tag in tags, f"with a job tag {tag}")

    def setInterruptOnCancel(self, interruptOnCancel: bool) -> None:
        """Accepted: a cancelled dagrun job always stops its tasks (their executors are told so)."""

    def _tags(self) -> set[str]:
        if not hasattr(self._local, "tags"):
            self._local.tags = set()
        return self._local.tags

    def statusTracker(self) -> StatusTracker:
        return StatusTracker(self)

    # ---- files and checkpoints ------------------------------------------------------------

    def setCheckpointDir(self, dirName: str) -> None:
        """Spark makes a folder of a random name in ``dirName`` for this application's checkpoints;
        dagrun makes it too, though it keeps checkpointed blocks in its store (``RDD.checkpoint``)."""
        fs, root = fsspec.core.url_to_fs(dirName, **dict(self._ctx.config.storage_options))
        folder = f"{root.rstrip('/')}/{uuid.uuid4()}"
        fs.makedirs(folder, exist_ok=True)
        self._checkpoint_url = fs.unstrip_protocol(folder)
        local = self._checkpoint_url.startswith("file://")
        self._checkpoint_dir = "file:" + folder if local else self._checkpoint_url  # Hadoop's way to print it

    def _write_checkpoints(self) -> None:
        # As Spark does after a job: every RDD marked for checkpointing that a job has since
        # computed is written under the checkpoint folder (from its persisted blocks).
        waiting, self._unwritten_checkpoints = self._unwritten_checkpoints, []
        for rdd in waiting:
            if not rdd._materialized():
                self._unwritten_checkpoints.append(rdd)
                continue
            name = f"rdd-{rdd._rdd.id()}"
            rdd._rdd.save_as_pickle_file(f"{self._checkpoint_url}/{name}")
            rdd._rdd._node._pyspark_checkpoint_file = f"{self._checkpoint_dir}/{name}"

    def getCheckpointDir(self) -> str | None:
        return self._checkpoint_dir

    addArchive = not_in_dagrun("SparkContext.addArchive", "put the archive on the store and open it in the task")
    getSystemProperty = not_in_dagrun("SparkContext.getSystemProperty", "read os.environ")
    setSystemProperty = not_in_dagrun("SparkContext.setSystemProperty", "set os.environ, or a dagrun.* key of the conf")
    show_profiles = not_in_dagrun("SparkContext.show_profiles", "use dagrun report for per-task timings")
    dump_profiles = not_in_dagrun("SparkContext.dump_profiles", "use dagrun report --trace for a task timeline")


def _forward(sc: SparkContext, name: str, args: tuple, kwargs: dict) -> Any:
    args = tuple(unwrap(a) for a in args)
    return wrap(sc._run(getattr(sc._ctx, name), args, kwargs), sc)


generate(SparkContext, Context, _forward)
