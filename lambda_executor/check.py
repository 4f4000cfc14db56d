"""``dagrun lambda check``: can the deployed function do a job's work? One invocation says.

State: none kept; a check writes one probe object into the store and deletes it.

Policy: the driver side invokes the function once with ``{"check": {...}}``; the function
(``probe``) writes a small block into the store and reads it back (the driver deletes it, as
it deletes a job's blocks, so the function's role needs no delete permission), and for
the "connect" transport also opens a TCP connection to the address the driver listens on
for the check.  Every step is reported ok or failed with its error, and the driver side adds
what to do: IAM for access denied, the bucket and region for a missing bucket, the VPC and
security group for a driver it cannot reach.  The invocation itself is the first step (no
such function, no permission to invoke it), and the second is whether the function runs this
driver's build of dagrun (``scheduler.build``: a function deployed from another one).

Promise: ``check`` returns the steps as ``(name, ok, detail)`` and never raises for a
failure of the thing it checks; nothing is left in the store when the delete step succeeds.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Any

from scheduler.build import build_id
from shuffle.layout import transport_key
from shuffle.store import BlockStore

_PROBE = b"dagrun lambda check\n" * 64
_HINTS = {
    "write": "the function's execution role needs s3:PutObject on the bucket (for EFS: the mount and its "
             "permissions); check the bucket name and that it is in the function's region",
    "read": "the role needs s3:GetObject on the bucket",
    "delete": "the driver's credentials need s3:DeleteObject on the store (it deletes every job's blocks)",
    "driver": "the function cannot reach the driver: run the function in the driver's VPC (dagrun lambda deploy "
              "--subnet ... --security-group ...), let the security group reach the driver on TCP, or use the "
              "'invoke' transport, which needs no inbound network",
}


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    """The function side: run the store steps (and the driver step); see the module docstring."""
    steps = []
    store = BlockStore(spec["store"], spec.get("storage_options") or {})
    key = transport_key("dagrun-check", f"probe-{uuid.uuid4().hex}")

    def step(name: str, action) -> bool:
        started = time.time()
        try:
            detail = action() or "ok"
            steps.append({"step": name, "ok": True, "detail": f"{detail} ({(time.time() - started) * 1000:.0f} ms)"})
            return True
        except Exception as exc:  # noqa: BLE001 - every failure is a finding to report, not a crash
            steps.append({"step": name, "ok": False, "detail": f"{type(exc).__name__}: {exc}"})
            return False

    def read() -> str:
        if store.get(key) != _PROBE:
            raise ValueError("the block read back differs from the one written")
        return "read back what was written"

    wrote = step("write", lambda: store.put(key, _PROBE))
    if wrote:
        step("read", read)
    driver = spec.get("driver")
    if driver:
        def reach() -> str:
            with socket.create_connection((driver[0], int(driver[1])), timeout=float(spec.get("connect_timeout", 5))):
                return f"reached {driver[0]}:{driver[1]}"
        step("driver", reach)
    return {"steps": steps, "host": socket.gethostname(), "pid": os.getpid(), "key": key if wrote else None,
            "build": build_id()}


def _build_step(theirs: str) -> tuple[str, bool, str]:
    """Whether the function runs this driver's code (``scheduler.build``), as a step."""
    ours = build_id()
    if theirs == ours:
        return "build", True, f"the function runs this driver's dagrun (build {ours})"
    what = f"build {theirs}" if theirs else "an older one, which does not say its build"
    return "build", False, (f"the function runs another dagrun ({what}; this driver's is build {ours}); "
                            "redeploy it with `dagrun lambda deploy` from this installation")


def check(backend: Any, store: str, storage_options: dict, driver_host: str | None = None,
          connect_timeout: float = 5.0) -> list[tuple[str, bool, str]]:
    """The driver side: one invocation through ``backend.invoke_once``; see the module docstring."""
    spec: dict[str, Any] = {"store": store, "storage_options": storage_options, "connect_timeout": connect_timeout}
    listener = None
    if driver_host:
        listener = socket.create_server((driver_host, 0))
        listener.settimeout(connect_timeout + 30)
        spec["driver"] = [driver_host, listener.getsockname()[1]]
    try:
        outcome = backend.invoke_once("check", json.dumps({"check": spec}).encode())
    finally:
        if listener is not None:
            listener.close()
    if outcome.kind != "ok" or not isinstance(outcome.body, dict) or "steps" not in outcome.body:
        why = outcome.reason if outcome.kind != "ok" else f"unexpected answer {str(outcome.body)[:200]}"
        return [("invoke", False, f"{why}; deploy the function with `dagrun lambda deploy` (this dagrun's version), "
                                  "and give the caller lambda:InvokeFunction on it")]
    report = outcome.body
    if report.get("key"):  # the driver deletes, as it deletes a job's blocks: the function's role needs no delete
        started = time.time()
        try:
            BlockStore(store, storage_options).delete(report["key"])
            report["steps"].append({"step": "delete", "ok": True,
                                    "detail": f"deleted by the driver ({(time.time() - started) * 1000:.0f} ms)"})
        except Exception as exc:  # noqa: BLE001 - a finding to report
            report["steps"].append({"step": "delete", "ok": False, "detail": f"{type(exc).__name__}: {exc}"})
    steps = [("invoke", True, f"function ran on {report.get('host')}")]
    steps.append(_build_step(str(report.get("build") or "")))
    for item in report["steps"]:
        detail = item["detail"] if item["ok"] else f"{item['detail']}; {_HINTS.get(item['step'], '')}".rstrip("; ")
        steps.append((item["step"], bool(item["ok"]), detail))
    return steps
