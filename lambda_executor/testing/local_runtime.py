"""One invocation of a handler in its own process, as the local endpoint's "Lambda runtime".

State: the event (read from stdin) and a ``LambdaContext`` built from the command line.

Policy: import the handler named ``module.function``, call it with the event and context,
and write the outcome as JSON to the ``--result`` file: ``{"payload": ...}`` or Lambda's
error shape ``{"errorMessage", "errorType", "stackTrace"}``.  Anything the handler prints
goes to stdout/stderr, which the endpoint turns into the invocation's log.  Limits (timeout,
memory) are enforced from outside by ``local_endpoint``, which kills this process.

Promise: the handler sees the context attributes it would see on Lambda:
``get_remaining_time_in_millis()``, ``aws_request_id``, ``memory_limit_in_mb``,
``function_name``, ``function_version`` and ``invoked_function_arn``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass


@dataclass(frozen=True)
class LambdaContext:
    aws_request_id: str
    function_name: str
    memory_limit_in_mb: int
    deadline: float  # epoch seconds
    function_version: str = "$LATEST"
    region: str = "us-east-1"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambda_executor.testing.local_runtime")
    parser.add_argument("--handler", required=True, help="module.function, as in Lambda's handler setting")
    parser.add_argument("--request-id", required=True)
    parser.add_argument("--function", required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--deadline", type=float, required=True, help="epoch seconds when the invocation times out")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--result", required=True, help="file to write the outcome to, as JSON")
    args = parser.parse_args(argv)
    context = LambdaContext(args.request_id, args.function, args.memory_mb, args.deadline, region=args.region)
    try:
        module, _, name = args.handler.rpartition(".")
        func = getattr(importlib.import_module(module), name)
        event = json.loads(sys.stdin.buffer.read() or b"{}")
        outcome = {"payload": func(event, context)}
        text = json.dumps(outcome)
    except Exception as exc:  # noqa: BLE001 - every handler failure becomes Lambda's error payload
        traceback.print_exc()
        kind = "Runtime.MarshalError" if "outcome" in locals() else type(exc).__name__
        text = json.dumps({"errorMessage": str(exc), "errorType": kind,
                           "stackTrace": traceback.format_tb(exc.__traceback__)})
    with open(args.result, "w") as f:
        f.write(text)
    sys.stdout.flush()
    sys.stderr.flush()
    return 0


if __name__ == "__main__":
    code = main()
    os._exit(code)  # like Lambda freezing the sandbox: lingering threads do not stretch the duration
