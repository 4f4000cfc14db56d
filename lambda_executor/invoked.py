"""The "invoke" transport, function side: run the one task an invocation's payload carries.

State: kept by the execution environment across warm invocations (module globals): the
executor environment with its cache of deserialized stages (at most ``_STAGES`` of them,
oldest dropped first), a scratch directory under /tmp, and one ``BlockStore`` per store URL.

Policy: the stage is read from the store by the key the payload names, unless this
environment has it cached; the task is in the payload (or in the store, when it was too big).
The task runs through ``scheduler.executor.execute``, the same call every backend makes, and
its ``TaskResult`` is pickled into the response, or put in the store when the response would
pass Lambda's 6 MB limit.

Promise: returns ``{"result": base64}`` or ``{"result_ref": key}``; a task's failure is a
result too (a ``TaskResult`` with its error), so a function error means the environment
itself failed (timeout, out of memory, a crash).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import pickle
import tempfile
from typing import Any

from scheduler.executor import ExecutorEnv, execute
from scheduler.wire.messages import RunTask
from shuffle.layout import transport_key
from shuffle.store import BlockStore

from lambda_executor.invoke import INLINE_MAX

_STAGES = 16
_env: ExecutorEnv | None = None
_stores: dict[str, BlockStore] = {}


def run_invoked(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _env
    store = _store(event["store"], event.get("storage_options") or {})
    data = store.get(event["task_ref"]) if "task_ref" in event else base64.b64decode(event["task"])
    task: RunTask = pickle.loads(data)
    if _env is None:
        scratch = tempfile.mkdtemp(prefix="dagrun-scratch-", dir=os.environ.get("TMPDIR", "/tmp"))
        _env = ExecutorEnv(str(event["executor_id"]), scratch, lambda: None)
    env = _env
    env.executor_id = str(event["executor_id"])
    env.remaining = lambda: context.get_remaining_time_in_millis() / 1000
    if task.stage_key not in env.stage_cache:
        task = dataclasses.replace(task, stage_blob=store.get(event["stage_ref"]))
        while len(env.stage_cache) >= _STAGES:
            env.stage_cache.pop(next(iter(env.stage_cache)))
    result = execute(task, env)
    raw = pickle.dumps(result, protocol=5)
    if len(raw) <= INLINE_MAX:
        return {"result": base64.b64encode(raw).decode()}
    key = transport_key(task.job_id, f"result-{task.stage_id}-{task.partition}-{task.attempt}-{env.executor_id}",
                        int(event.get("prefixes", 16)))
    store.put(key, raw)
    return {"result_ref": key}


def _store(url: str, options: dict) -> BlockStore:
    if url not in _stores:
        _stores[url] = BlockStore(url, options)
    return _stores[url]
