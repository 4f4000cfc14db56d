"""The "invoke" transport, function side: run the tasks an invocation's payload carries.

State: kept by the execution environment across warm invocations (module globals): the
executor environment with its cache of deserialized stages (at most ``_STAGES`` of them,
oldest dropped first), a scratch directory under /tmp, one ``BlockStore`` per store URL, and
the slot processes when the function has more than one vCPU.

Policy: a payload carries a batch of tasks (one per slot of the executor; one in a function
with one vCPU).  Each task's stage is read from the store by the key the payload names,
unless this environment has it cached; the tasks are in the payload (or in the store, when
they were too big).  Tasks run through ``scheduler.executor.execute``, the same call every
backend makes: one after another in this process with one vCPU, else at once in the
environment's slot processes (``scheduler.slots``, forked on first use and kept, frozen
with it, while it stays warm).  The ``TaskResult`` list is pickled into the response, or
put in the store when the response would pass Lambda's 6 MB limit.

An event from a driver of another build (``scheduler.build``) runs no task: the answer is
``{"build": ours, "refused": why}``, and the driver fails the job with ``IncompatibleExecutor``.

Promise: returns ``{"results": base64}`` or ``{"results_ref": key}``, in the batch's order, with
``"build"``;
a task's failure is a result too (a ``TaskResult`` with its error), so a function error
means the environment itself failed (timeout, out of memory, a crash).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import pickle
import tempfile
import threading
from typing import Any

from scheduler.build import build_id
from scheduler.executor import ExecutorEnv, execute
from scheduler.slots import lambda_vcpus, serve_in_slots
from scheduler.wire.channel import ChannelClosed, QueueConnection
from scheduler.wire.messages import RunTask
from shuffle.layout import transport_key
from shuffle.store import BlockStore

from lambda_executor.invoke import INLINE_MAX

_STAGES = 16
_env: ExecutorEnv | None = None
_pool: tuple | None = None  # (connection, thread, slots, stages sent): the environment's slot processes
_stores: dict[str, BlockStore] = {}


def run_invoked(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _env
    if event.get("build") != build_id():  # another dagrun's tasks: run none (scheduler.build)
        return {"build": build_id(), "refused": "the driver runs another build of dagrun"}
    store = _store(event["store"], event.get("storage_options") or {})
    data = store.get(event["tasks_ref"]) if "tasks_ref" in event else base64.b64decode(event["tasks"])
    tasks: list[RunTask] = pickle.loads(data)
    if _env is None:
        scratch = tempfile.mkdtemp(prefix="dagrun-scratch-", dir=os.environ.get("TMPDIR", "/tmp"))
        _env = ExecutorEnv(str(event["executor_id"]), scratch, lambda: None)
    env = _env
    env.executor_id = str(event["executor_id"])
    env.remaining = lambda: context.get_remaining_time_in_millis() / 1000
    slots = lambda_vcpus(int(context.memory_limit_in_mb))
    refs = event["stage_refs"]
    if len(tasks) > 1 and slots > 1:
        results = _in_slots(tasks, store, refs, env, slots)
    else:
        results = [execute(_with_stage(t, env.stage_cache, store, refs), env) for t in tasks]
        while len(env.stage_cache) > _STAGES:
            env.stage_cache.pop(next(iter(env.stage_cache)))
    raw = pickle.dumps(results, protocol=5)
    if len(raw) <= INLINE_MAX:
        return {"results": base64.b64encode(raw).decode(), "build": build_id()}
    first = tasks[0]
    key = transport_key(first.job_id, f"results-{first.stage_id}-{first.partition}-{first.attempt}-{env.executor_id}",
                        int(event.get("prefixes", 16)))
    store.put(key, raw)
    return {"results_ref": key, "build": build_id()}


def _with_stage(task: RunTask, held, store: BlockStore, refs: dict[str, str]) -> RunTask:
    if task.stage_key in held:
        return task
    return dataclasses.replace(task, stage_blob=store.get(refs[task.stage_key]))


def _in_slots(tasks: list[RunTask], store: BlockStore, refs: dict[str, str], env: ExecutorEnv, slots: int) -> list:
    """Run the batch in the environment's slot processes (forked once, kept while it stays warm)."""
    global _pool
    if _pool is None or _pool[2] != slots or not _pool[1].is_alive():
        ours, theirs = QueueConnection.pair()
        thread = threading.Thread(target=serve_in_slots, args=(theirs, env, slots, execute), daemon=True,
                                  name="dagrun-slots")
        thread.start()
        _pool = (ours, thread, slots, set())
    conn, _, _, sent = _pool
    for task in tasks:
        conn.send(_with_stage(task, sent, store, refs))
        sent.add(task.stage_key)
    by_key = {}
    try:
        for _ in tasks:
            result = conn.recv()
            by_key[(result.stage_id, result.partition, result.attempt)] = result
    except ChannelClosed as exc:  # a slot process died: this environment's pool is gone
        _pool = None
        raise RuntimeError(f"a task slot process of this environment died: {exc}") from exc
    return [by_key[(t.stage_id, t.partition, t.attempt)] for t in tasks]
def _store(url: str, options: dict) -> BlockStore:
    if url not in _stores:
        _stores[url] = BlockStore(url, options)
    return _stores[url]
