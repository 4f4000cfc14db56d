"""Tiny Lambda handlers for testing the local endpoint itself (imported by its runtime process)."""

from __future__ import annotations

import time


def echo(event, context):
    print(f"echo {event.get('n')} in {context.function_name}")
    return {"event": event, "remaining_ms": context.get_remaining_time_in_millis(),
            "request_id": context.aws_request_id, "memory": int(context.memory_limit_in_mb)}  # a string under awslambdaric, as on Lambda


def fail(event, context):
    raise ValueError("bad input")


def sleep(event, context):
    time.sleep(float(event.get("seconds", 60)))
    return {"slept": True}


def hog(event, context):
    block = bytearray(int(event["mb"]) << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(5)
    return {"held": len(block)}


def tmp_note(event, context):
    """Write a file into /tmp (TMPDIR) and list what is there: it survives warm invocations."""
    import os
    import tempfile

    root = tempfile.gettempdir()
    with open(os.path.join(root, f"note-{event['n']}"), "wb") as f:
        f.write(b"x" * (int(event.get("kb", 1)) << 10))
    return {"files": sorted(n for n in os.listdir(root) if n.startswith("note-")), "pid": os.getpid(), "tmp": root}
