"""Task slots: an executor with several vCPUs runs that many tasks at once, each in a process.

State: one forked worker process per slot, each with its own pipe and its own stage cache;
in the executor's process, one dispatcher thread per slot, the queue of tasks waiting for a
slot, and the raw stage blobs received so far (the driver sends a stage once per executor,
but it may land on any slot, so each worker is given the blob the first time it needs it).

Policy: the work is Python, so threads would share one GIL: processes.  Workers are forked
before any thread of the loop starts and talk over ``multiprocessing.Pipe`` only (Lambda has
no /dev/shm, so nothing that needs a semaphore: no Pool, no Queue).  A worker runs
``scheduler.executor.execute``, exactly what a one-slot executor runs.  A worker that dies
(a task that killed its process) ends the whole executor, as the death of a one-slot
executor's process would: the driver then reschedules its tasks.

Promise: ``serve_in_slots`` returns why the loop ended (as ``run_executor`` does), with
every worker process ended.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue
import threading
from typing import Any, Callable

from scheduler.wire.channel import ChannelClosed, Connection
from scheduler.wire.messages import RunTask, Shutdown

_STOP = None


def lambda_vcpus(memory_mb: int) -> int:
    """vCPUs of a Lambda function with ``memory_mb``: one per 1,769 MB, at most 6 (at 10,240 MB)."""
    return max(1, min(6, -(-int(memory_mb) // 1769)))


def serve_in_slots(conn: Connection, env: Any, slots: int, execute: Callable,
                   on_ready: Callable[[], None] | None = None) -> str:
    """Pull tasks from ``conn`` and run up to ``slots`` at once; ``on_ready`` runs once the workers
    are forked (the caller's threads start there).  See the module docstring."""
    context = multiprocessing.get_context("fork")
    workers = []
    for index in range(slots):
        mine, theirs = context.Pipe()
        proc = context.Process(target=_worker, args=(theirs, env, execute, index), daemon=True,
                               name=f"dagrun-slot-{index}")
        proc.start()
        theirs.close()
        workers.append((proc, mine))
    tasks: queue.Queue[RunTask | None] = queue.Queue()
    blobs: dict[str, bytes] = {}
    ended: list[str] = []
    threads = [threading.Thread(target=_dispatch, args=(conn, pipe, proc, tasks, blobs, ended),
                                name=f"dagrun-slot-dispatch-{i}", daemon=True) for i, (proc, pipe) in enumerate(workers)]
    for thread in threads:
        thread.start()
    if on_ready is not None:
        on_ready()
    try:
        while True:
            message = conn.recv()  # a dying worker's dispatcher closes conn, which ends this wait
            if isinstance(message, Shutdown):
                return f"retired: {message.reason}"
            if isinstance(message, RunTask):
                if message.stage_blob is not None:
                    blobs[message.stage_key] = message.stage_blob
                tasks.put(message)
    except (ChannelClosed, OSError):
        return ended[0] if ended else "driver closed the channel"
    finally:
        for _ in threads:
            tasks.put(_STOP)
        for proc, pipe in workers:  # told, not just hung up on: each child holds copies of the others' pipe ends
            try:
                pipe.send(_STOP)
            except (OSError, ValueError):
                pass
        for proc, pipe in workers:
            proc.join(timeout=2)
            pipe.close()
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=2)


def _dispatch(conn: Connection, pipe: Any, proc: Any, tasks: queue.Queue, blobs: dict, ended: list) -> None:
    has: set[str] = set()
    while True:
        task = tasks.get()
        if task is _STOP:
            return
        if task.stage_key not in has:
            task = dataclasses.replace(task, stage_blob=blobs.get(task.stage_key, task.stage_blob))
        try:
            pipe.send(task)
            has.add(task.stage_key)
            result = pipe.recv()
        except (EOFError, OSError) as exc:  # the worker died mid-task: end the executor (see the docstring)
            ended.append(f"slot process {proc.pid} died: {exc!r}")
            conn.close()
            return
        try:
            conn.send(result)
        except (ChannelClosed, OSError):
            return


def _worker(pipe: Any, env: Any, execute: Callable, index: int) -> None:
    env.scratch_dir = os.path.join(env.scratch_dir, f"slot-{index}")
    os.makedirs(env.scratch_dir, exist_ok=True)
    env.stage_cache = {}
    while True:
        try:
            task = pipe.recv()
        except (EOFError, OSError):
            return
        if task is _STOP:
            return
        pipe.send(execute(task, env))
