"""Create, update, inspect and remove the executor function (``dagrun lambda ...``).

State: none here; every call reads the function's current state from Lambda.

Policy: ``deploy`` is idempotent.  It creates the function when it does not exist, else
uploads the code (only when its CodeSha256 changed) and updates the configuration,
waiting for each change to settle, since Lambda refuses an update while another is in
progress.  The function always gets the handler ``lambda_executor.handler.handler`` and
asynchronous retries off (``MaximumRetryAttempts=0``): dagrun invokes synchronously with
boto3's retries off so every executor runs once, and an asynchronous invocation that Lambda
retried would start a second executor that nobody asked for.  A role that IAM has only just
created may not yet be assumable by Lambda; that one error is retried, at most 6 times.

Promise: ``deploy`` returns what it did ("created", "updated" or "unchanged") and the
resulting configuration; ``status`` returns the configuration or None; ``remove`` reports
whether there was a function to delete.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from lambda_executor.packaging import MAX_DIRECT_UPLOAD, code_sha256

HANDLER = "lambda_executor.handler.handler"
DESCRIPTION = "dagrun executor (lambda_executor.handler)"
_ROLE_NOT_READY = "cannot be assumed by Lambda"


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    role: str
    runtime: str
    memory_mb: int = 2048
    timeout: int = 900
    arch: str = "x86_64"
    ephemeral_mb: int = 512
    layers: tuple[str, ...] = ()
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [(128 <= self.memory_mb <= 10240, f"memory {self.memory_mb} MB must be 128..10240"),
                  (1 <= self.timeout <= 900, f"timeout {self.timeout} s must be 1..900"),
                  (512 <= self.ephemeral_mb <= 10240, f"ephemeral storage {self.ephemeral_mb} MB must be 512..10240"),
                  (self.arch in ("x86_64", "arm64"), f"architecture {self.arch!r} must be x86_64 or arm64"),
                  (bool(self.subnets) == bool(self.security_groups),
                   "a function in a VPC needs both subnets and security groups")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def configuration(self) -> dict[str, Any]:
        """The arguments shared by create_function and update_function_configuration."""
        return {"FunctionName": self.name, "Role": self.role, "Handler": HANDLER, "Runtime": self.runtime,
                "Description": DESCRIPTION, "MemorySize": self.memory_mb, "Timeout": self.timeout,
                "EphemeralStorage": {"Size": self.ephemeral_mb}, "Layers": list(self.layers),
                "VpcConfig": {"SubnetIds": list(self.subnets), "SecurityGroupIds": list(self.security_groups)},
                "Environment": {"Variables": dict(self.environment)}}


def deploy(client: Any, spec: FunctionSpec, code: bytes, *, s3: Any = None, code_bucket: str | None = None,
           say: Callable[[str], None] = print) -> dict[str, Any]:
    """Create or update the function so that it runs ``code`` with ``spec``."""
    sha = code_sha256(code)
    location = _code_location(code, sha, spec.name, s3, code_bucket, say)
    current = status(client, spec.name)
    if current is None:
        say(f"creating {spec.name} ({len(code) / 1e6:.1f} MB zip, {spec.runtime}, {spec.arch})")
        _role_retry(lambda: client.create_function(**spec.configuration(), Code=location,
                                                   Architectures=[spec.arch], PackageType="Zip"), say)
        _wait(client, "function_active_v2", spec.name)
        action = "created"
    else:
        action = "unchanged"
        if current.get("CodeSha256") != sha or current.get("Architectures", ["x86_64"]) != [spec.arch]:
            say(f"uploading new code to {spec.name} ({len(code) / 1e6:.1f} MB zip)")
            # update_function_code takes the same code keys (ZipFile | S3Bucket, S3Key) at its top level
            client.update_function_code(FunctionName=spec.name, Architectures=[spec.arch], **location)
            _wait(client, "function_updated_v2", spec.name)
            action = "updated"
        if _differs(current, spec):
            say(f"updating the configuration of {spec.name}")
            _role_retry(lambda: client.update_function_configuration(**spec.configuration()), say)
            _wait(client, "function_updated_v2", spec.name)
            action = "updated"
    client.put_function_event_invoke_config(FunctionName=spec.name, MaximumRetryAttempts=0)
    return {"action": action, "configuration": status(client, spec.name)}


def status(client: Any, name: str) -> dict[str, Any] | None:
    """The function's configuration (``get_function``'s), or None when it does not exist."""
    try:
        return client.get_function(FunctionName=name)["Configuration"]
    except client.exceptions.ResourceNotFoundException:
        return None


def event_invoke_config(client: Any, name: str) -> dict[str, Any] | None:
    try:
        return client.get_function_event_invoke_config(FunctionName=name)
    except client.exceptions.ResourceNotFoundException:
        return None


def remove(client: Any, name: str) -> bool:
    """Delete the function; False when there was none."""
    try:
        client.delete_function(FunctionName=name)
    except client.exceptions.ResourceNotFoundException:
        return False
    return True


def _differs(current: dict[str, Any], spec: FunctionSpec) -> bool:
    have = {"Role": current.get("Role"), "Handler": current.get("Handler"), "Runtime": current.get("Runtime"),
            "MemorySize": current.get("MemorySize"), "Timeout": current.get("Timeout"),
            "Ephemeral": (current.get("EphemeralStorage") or {}).get("Size", 512),
            "Layers": sorted(layer["Arn"] for layer in current.get("Layers") or []),
            "Subnets": sorted((current.get("VpcConfig") or {}).get("SubnetIds") or []),
            "Groups": sorted((current.get("VpcConfig") or {}).get("SecurityGroupIds") or []),
            "Env": ((current.get("Environment") or {}).get("Variables") or {})}
    want = {"Role": spec.role, "Handler": HANDLER, "Runtime": spec.runtime, "MemorySize": spec.memory_mb,
            "Timeout": spec.timeout, "Ephemeral": spec.ephemeral_mb, "Layers": sorted(spec.layers),
            "Subnets": sorted(spec.subnets), "Groups": sorted(spec.security_groups), "Env": dict(spec.environment)}
    return have != want


def _code_location(code: bytes, sha: str, name: str, s3: Any, bucket: str | None,
                   say: Callable[[str], None]) -> dict[str, Any]:
    if bucket is None:
        if len(code) > MAX_DIRECT_UPLOAD:
            raise ValueError(f"the zip is {len(code) / 1e6:.1f} MB, over Lambda's 50 MB direct upload limit; "
                             "pass --code-bucket BUCKET to upload it through S3")
        return {"ZipFile": code}
    key = f"dagrun-code/{name}/{sha.replace('/', '_').replace('+', '-')}.zip"
    say(f"uploading the zip to s3://{bucket}/{key}")
    s3.put_object(Bucket=bucket, Key=key, Body=code)
    return {"S3Bucket": bucket, "S3Key": key}


def _wait(client: Any, waiter: str, name: str) -> None:
    client.get_waiter(waiter).wait(FunctionName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 150})


def _role_retry(call: Callable[[], Any], say: Callable[[str], None], attempts: int = 6) -> Any:
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - only the one IAM-propagation error is retried
            code = getattr(exc, "response", {}).get("Error", {})
            if _ROLE_NOT_READY not in str(code.get("Message", "")) or attempt == attempts - 1:
                raise
            delay = min(20.0, 2.0 * 2 ** attempt) * random.uniform(0.5, 1.0)
            say(f"the role is not assumable by Lambda yet (new roles take a few seconds); retrying in {delay:.0f}s")
            time.sleep(delay)
    raise AssertionError("unreachable")


def clients(region: str | None) -> tuple[Any, Any]:
    """Lambda and S3 clients with boto3's standard resolution of credentials and endpoints."""
    import boto3
    from botocore.exceptions import NoRegionError

    session = boto3.session.Session(region_name=region)
    try:
        return session.client("lambda"), session.client("s3")
    except NoRegionError as exc:
        raise ValueError("no AWS region: pass --region, or set lambda.region or AWS_DEFAULT_REGION") from exc
