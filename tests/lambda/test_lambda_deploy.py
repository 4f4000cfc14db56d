"""``dagrun lambda deploy | status | remove`` against moto (a ThreadedMotoServer on 127.0.0.1).

The zip is built with ``--no-deps`` (dagrun's own code; the dependencies would come from a
layer): fetching Lambda's manylinux wheels needs PyPI, which tests do not reach.
"""

from __future__ import annotations

import io
import json
import zipfile

import boto3
import pytest

from dagrun.cli.main import main
from lambda_executor import deploy as d
from lambda_executor.packaging import PackagingError, build_zip, code_sha256, default_runtime

TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}]}


@pytest.fixture
def role(moto) -> str:
    iam = boto3.client("iam")
    return iam.create_role(RoleName="dagrun-exec", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]


@pytest.fixture
def one_build(monkeypatch):
    """Build the zip once per test: the shared working tree may change under a long test run."""
    import lambda_executor.packaging as packaging

    built: dict = {}
    real = packaging.build_zip
    monkeypatch.setattr(packaging, "build_zip", lambda **kw: built.setdefault(repr(sorted(kw.items())), real(**kw)))


def test_deploy_creates_then_updates_the_function(role, one_build, capsys):
    # (moto ignores EphemeralStorage in update_function_configuration, so it stays 1024 throughout)
    base = ["lambda", "deploy", "--function", "dagrun-test", "--role", role, "--no-deps", "--ephemeral-mb", "1024"]
    assert main([*base, "--memory", "1024", "--timeout", "120"]) == 0
    assert capsys.readouterr().out.startswith("created: arn:aws:lambda:us-east-1:")
    client = boto3.client("lambda")
    conf = client.get_function(FunctionName="dagrun-test")["Configuration"]
    assert (conf["Handler"], conf["Runtime"], conf["MemorySize"], conf["Timeout"]) == \
        ("lambda_executor.handler.handler", default_runtime(), 1024, 120)
    assert conf["Role"] == role and conf["EphemeralStorage"] == {"Size": 1024}
    assert client.get_function_event_invoke_config(FunctionName="dagrun-test")["MaximumRetryAttempts"] == 0

    assert main([*base, "--memory", "2048", "--timeout", "300"]) == 0  # the second run updates in place
    assert capsys.readouterr().out.startswith("updated: ")
    conf2 = client.get_function(FunctionName="dagrun-test")["Configuration"]
    assert (conf2["MemorySize"], conf2["Timeout"]) == (2048, 300)
    assert conf2["FunctionArn"] == conf["FunctionArn"] and conf2["CodeSha256"] == conf["CodeSha256"]

    assert main([*base, "--memory", "2048", "--timeout", "300"]) == 0
    assert capsys.readouterr().out.startswith("unchanged: ")  # same zip (reproducible), same settings


def test_deploy_uploads_changed_code(role):
    client = boto3.client("lambda")
    spec = d.FunctionSpec(name="dagrun-code", role=role, runtime="python3.11", memory_mb=512, timeout=60)
    first = build_zip(with_deps=False)
    assert d.deploy(client, spec, first, say=lambda _: None)["action"] == "created"
    second = _with_extra_file(first)
    result = d.deploy(client, spec, second, say=lambda _: None)
    assert result["action"] == "updated"
    assert result["configuration"]["CodeSha256"] == code_sha256(second) != code_sha256(first)


def test_status_and_remove(role, capsys):
    assert main(["lambda", "status", "--function", "dagrun-gone"]) == 1
    assert "not deployed" in capsys.readouterr().out
    assert main(["lambda", "deploy", "--function", "dagrun-x", "--role", role, "--no-deps"]) == 0
    capsys.readouterr()
    assert main(["lambda", "status", "--function", "dagrun-x"]) == 0
    out = capsys.readouterr().out
    assert "lambda_executor.handler.handler" in out and "async retries: 0" in out
    assert main(["lambda", "remove", "--function", "dagrun-x"]) == 0
    assert capsys.readouterr().out.strip() == "removed dagrun-x"
    assert main(["lambda", "remove", "--function", "dagrun-x"]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_deploy_reports_aws_errors_in_one_line(moto, capsys):
    code = main(["lambda", "deploy", "--function", "f", "--role", "not-a-role-arn", "--no-deps", "--timeout", "60"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("dagrun lambda deploy: error: ") and "role" in err


def test_the_zip_holds_dagrun_and_is_reproducible():
    data = build_zip(with_deps=False)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "lambda_executor/handler.py" in names and "dagrun/__init__.py" in names
    assert {n.split("/")[0] for n in names} == {"dagrun", "shuffle", "scheduler", "lambda_executor"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert build_zip(with_deps=False) == data


def test_missing_lambda_wheels_fail_the_build_clearly():
    with pytest.raises(PackagingError, match="--no-deps"):
        build_zip(pip_args=("--index-url", "http://127.0.0.1:9/simple", "--retries", "0", "--timeout", "1"))


def _with_extra_file(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("dagrun_build.txt", "2")
    return out.getvalue()


def test_requirements_add_the_jobs_dependencies_as_lambda_wheels(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.17.0\n")
    data = build_zip(with_deps=False, user_requirements=requirements)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "six.py" in names and "dagrun/__init__.py" in names
    assert not [n for n in names if n.startswith("bin/")]
    with pytest.raises(PackagingError, match="does not exist"):
        build_zip(with_deps=False, user_requirements=tmp_path / "missing.txt")


def test_deploy_takes_a_requirements_file(role, tmp_path, capsys):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.17.0\n")
    out = tmp_path / "function.zip"
    assert main(["lambda", "deploy", "--function", "dagrun-req", "--role", role, "--no-deps",
                 "--requirements", str(requirements), "--zip-out", str(out)]) == 0
    assert "six.py" in zipfile.ZipFile(out).namelist()
    assert capsys.readouterr().out.startswith("created: ")
