"""``dagrun lambda deploy | status | remove | check``: the executor function's lifecycle, from the shell.

Only argument parsing and printing live here; the work is ``lambda_executor.deploy`` and
``lambda_executor.packaging``, imported when a subcommand runs so that ``import dagrun``
never imports boto3.  Defaults for the function name and region come from the resolved
dagrun config (``lambda.function``, ``lambda.region``), as a job would use them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dagrun.config import Config


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("lambda", help="deploy, inspect or remove the AWS Lambda executor function")
    commands = parser.add_subparsers(dest="lambda_command", required=True)

    deploy = commands.add_parser("deploy", help="create or update the executor function (idempotent)")
    _common(deploy)
    deploy.add_argument("--role", required=True, help="ARN of the function's execution role (see the README section 'Running on AWS Lambda')")
    deploy.add_argument("--memory", type=int, default=None, metavar="MB", help="default: lambda.memory_mb (2048)")
    deploy.add_argument("--timeout", type=int, default=None, metavar="S",
                        help="the function's timeout, 1..900 s; default: executor_timeout (900)")
    deploy.add_argument("--arch", choices=["x86_64", "arm64"], default=None, help="default: lambda.arch (x86_64)")
    deploy.add_argument("--ephemeral-mb", type=int, default=512, metavar="N", help="/tmp size for spills, 512..10240")
    deploy.add_argument("--runtime", default=None, help="pythonX.Y; default: this interpreter's (pickles must match)")
    deploy.add_argument("--layer", action="append", default=[], metavar="ARN", help="a layer to attach (repeatable)")
    deploy.add_argument("--subnet", action="append", default=[], metavar="ID",
                        help="run in this VPC subnet, to reach a driver there (repeatable)")
    deploy.add_argument("--security-group", action="append", default=[], metavar="ID", help="(repeatable)")
    deploy.add_argument("--no-deps", action="store_true",
                        help="ship only dagrun's code; the dependencies must come from a --layer")
    deploy.add_argument("--no-s3", action="store_true", help="leave s3fs out (stores on EFS only)")
    deploy.add_argument("--code-bucket", default=None, help="upload the zip through this S3 bucket (zips > 50 MB)")
    deploy.add_argument("--pip-arg", action="append", default=[], metavar="ARG",
                        help="passed to pip when fetching Lambda wheels, e.g. --pip-arg=--index-url=URL")
    deploy.add_argument("--requirements", default=None, metavar="FILE",
                        help="also ship these dependencies of your job (a requirements.txt), as manylinux "
                             "wheels for the function's architecture")
    deploy.add_argument("--zip-out", default=None, metavar="PATH", help="also write the zip here")
    deploy.set_defaults(func=_deploy)

    status = commands.add_parser("status", help="show the executor function's configuration")
    _common(status)
    status.add_argument("--json", action="store_true", help="print get_function's configuration as JSON")
    status.set_defaults(func=_status)

    check = commands.add_parser("check", help="one invocation writes, reads and deletes a block in the store "
                                              "(and, for the connect transport, reaches this machine)")
    _common(check)
    check.add_argument("--store", required=True, help="the store jobs will use: s3://bucket/prefix or an EFS path")
    check.add_argument("--transport", choices=["auto", "invoke", "connect"], default=None,
                       help="default: lambda.transport; connect also checks that the function reaches --driver-host")
    check.add_argument("--driver-host", default=None, help="default: driver_host (for the connect transport)")
    check.set_defaults(func=_check)

    remove = commands.add_parser("remove", help="delete the executor function")
    _common(remove)
    remove.set_defaults(func=_remove)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--function", default=None, help="default: lambda.function (dagrun-executor)")
    parser.add_argument("--region", default=None, help="default: lambda.region, else boto3's (AWS_DEFAULT_REGION)")


def _settings(args: argparse.Namespace) -> tuple[Config, str, str | None]:
    config = Config.resolve()
    return config, args.function or config.lambda_function, args.region or config.lambda_region


def _deploy(args: argparse.Namespace) -> int:
    from lambda_executor import deploy as d
    from lambda_executor.packaging import build_zip, default_runtime

    config, name, region = _settings(args)
    return _guard("deploy", lambda: _do_deploy(args, config, name, region, d, build_zip, default_runtime))


def _do_deploy(args, config, name, region, d, build_zip, default_runtime) -> int:
    arch = args.arch or config.lambda_arch
    spec = d.FunctionSpec(name=name, role=args.role, runtime=args.runtime or default_runtime(),
                          memory_mb=args.memory or config.lambda_memory_mb,
                          timeout=args.timeout or int(min(900, config.executor_timeout)), arch=arch,
                          ephemeral_mb=args.ephemeral_mb, layers=tuple(args.layer), subnets=tuple(args.subnet),
                          security_groups=tuple(args.security_group))
    lam, s3 = d.clients(region)
    print(f"building the zip ({'dagrun only' if args.no_deps else 'dagrun and Lambda wheels'}, "
          f"{spec.runtime}, {arch})", file=sys.stderr)
    code = build_zip(arch=arch, runtime=spec.runtime, with_deps=not args.no_deps, include_s3=not args.no_s3,
                     pip_args=tuple(args.pip_arg), user_requirements=args.requirements)
    if args.zip_out:
        with open(args.zip_out, "wb") as f:
            f.write(code)
    result = d.deploy(lam, spec, code, s3=s3, code_bucket=args.code_bucket,
                      say=lambda line: print(line, file=sys.stderr))
    c = result["configuration"] or {}
    print(f"{result['action']}: {c.get('FunctionArn', name)} ({c.get('MemorySize')} MB, {c.get('Timeout')} s, "
          f"{','.join(c.get('Architectures') or [arch])}, {c.get('CodeSize', len(code))} bytes)")
    return 0


def _status(args: argparse.Namespace) -> int:
    from lambda_executor import deploy as d

    _, name, region = _settings(args)

    def show() -> int:
        lam, _ = d.clients(region)
        conf = d.status(lam, name)
        if conf is None:
            print(f"{name}: not deployed (dagrun lambda deploy --function {name} --role ARN)")
            return 1
        retries = (d.event_invoke_config(lam, name) or {}).get("MaximumRetryAttempts", "default (2)")
        if args.json:
            print(json.dumps({**conf, "MaximumRetryAttempts": retries}, indent=2, default=str))
            return 0
        rows = [("function", conf.get("FunctionArn")), ("state", f"{conf.get('State')} "
                 f"(last update: {conf.get('LastUpdateStatus')})"), ("runtime", conf.get("Runtime")),
                ("handler", conf.get("Handler")), ("memory", f"{conf.get('MemorySize')} MB"),
                ("timeout", f"{conf.get('Timeout')} s"), ("arch", ",".join(conf.get("Architectures") or [])),
                ("ephemeral", f"{(conf.get('EphemeralStorage') or {}).get('Size', 512)} MB"),
                ("code", f"{conf.get('CodeSize')} bytes, sha256 {conf.get('CodeSha256')}"),
                ("vpc", ",".join((conf.get("VpcConfig") or {}).get("SubnetIds") or []) or "none"),
                ("async retries", retries), ("modified", conf.get("LastModified"))]
        for key, value in rows:
            print(f"{key:>14}: {value}")
        return 0

    return _guard("status", show)


def _remove(args: argparse.Namespace) -> int:
    from lambda_executor import deploy as d

    _, name, region = _settings(args)

    def run() -> int:
        lam, _ = d.clients(region)
        print(f"removed {name}" if d.remove(lam, name) else f"{name}: nothing to remove")
        return 0

    return _guard("remove", run)


def _check(args: argparse.Namespace) -> int:
    from lambda_executor.backend import LambdaBackend, resolve_transport
    from lambda_executor.check import check

    config, name, region = _settings(args)
    config = config.replace(store=args.store, lambda_function=name, lambda_region=region,
                            **({"lambda_transport": args.transport} if args.transport else {}),
                            **({"driver_host": args.driver_host} if args.driver_host else {}))

    def run() -> int:
        backend = LambdaBackend(config)
        backend.notify = lambda event: None  # no driver: what matters comes back in the outcome
        transport = resolve_transport(config)
        print(f"checking {name} with store {args.store} ({transport} transport)", file=sys.stderr)
        steps = check(backend, args.store, dict(config.storage_options),
                      driver_host=config.driver_host if transport == "connect" else None)
        for step, ok, detail in steps:
            print(f"{step:>7}: {'ok' if ok else 'FAILED'}: {detail}")
        return 0 if all(ok for _, ok, _ in steps) else 1

    return _guard("check", run)


def _guard(command: str, run) -> int:
    """Turn the expected failures (AWS errors, packaging, bad values) into one line and exit code 1."""
    from botocore.exceptions import BotoCoreError, ClientError

    from lambda_executor.packaging import PackagingError

    try:
        return run()
    except (ClientError, BotoCoreError, PackagingError, ValueError) as exc:
        print(f"dagrun lambda {command}: error: {exc}", file=sys.stderr)
        return 1
