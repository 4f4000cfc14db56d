"""The AWS Lambda entry point (``lambda_executor.handler.handler``): one invocation, one executor.

State: none beyond the invocation.  Policy: an event with ``"transport": "invoke"`` carries
one task, run by ``lambda_executor.invoked`` (the result is the response).  Otherwise connect back to the driver named in the event
(TLS unless the address is loopback, or as ``tls`` says), then run the same executor loop as
a local process, reporting the invocation's remaining time as the executor's lifetime and
running as many tasks at once as the function has vCPUs (``scheduler.slots``).  The
process is shared with later (warm) invocations, so the loop never exits it
(``can_exit=False``).

Promise: returns a small JSON-able dict saying why the executor ended, also when the driver
cannot be reached (it has finished, or the network is wrong): a late launch is not an error.
Event::

    {"driver_host": "10.0.1.5", "driver_port": 41234, "secret": "<hex>",
     "executor_id": "x7", "tls": true, "heartbeat": 2.0}
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from scheduler.wire.channel import connect, is_loopback

from scheduler.executor import run_executor
from scheduler.slots import lambda_vcpus


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.time()
    importlib.import_module("dagrun.runtime.task")  # the task runtime, imported before the first task arrives
    if "check" in event:  # `dagrun lambda check`: probe the store (and the driver's address), run no task
        return importlib.import_module("lambda_executor.check").probe(event["check"])
    if event.get("transport") == "invoke":
        return importlib.import_module("lambda_executor.invoked").run_invoked(event, context)
    executor_id = str(event["executor_id"])
    address = (str(event["driver_host"]), int(event["driver_port"]))
    tls = event.get("tls")
    tls = not is_loopback(address[0]) if tls is None else bool(tls)
    try:
        conn = connect(address, bytes.fromhex(event["secret"]), tls=tls)
    except OSError as exc:  # the driver has finished (a late launch), or it is unreachable: the reason says which
        print(f"dagrun executor {executor_id}: cannot reach the driver at {address[0]}:{address[1]}: {exc}", flush=True)
        return {"executor_id": executor_id, "reason": f"driver unreachable: {exc}", "seconds": round(time.time() - started, 3)}
    print(f"dagrun executor {executor_id}: connected to {address[0]}:{address[1]} over {'TLS' if tls else 'TCP'}",
          flush=True)
    reason = run_executor(conn, executor_id, remaining=lambda: context.get_remaining_time_in_millis() / 1000,
                          heartbeat_interval=float(event.get("heartbeat", 2.0)), can_exit=False,
                          slots=int(event.get("slots") or lambda_vcpus(int(context.memory_limit_in_mb))))
    print(f"dagrun executor {executor_id}: {reason}", flush=True)
    return {"executor_id": executor_id, "reason": reason, "seconds": round(time.time() - started, 3)}
