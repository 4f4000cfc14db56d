"""``lambda.profile`` (and ``dagrun run --profile``) chooses the AWS profile of the Lambda client."""

from __future__ import annotations

import pytest

from dagrun.config import Config
from scheduler.backends import get_backend_class


@pytest.fixture
def aws_config(tmp_path, monkeypatch):
    path = tmp_path / "config"
    path.write_text("[profile dev]\nregion = eu-west-3\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return path


def test_the_profile_gives_the_client_its_region(aws_config, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    backend = get_backend_class("lambda")(Config.resolve(executor="lambda", lambda_profile="dev", driver_host="10.0.0.5"))
    assert backend._client.meta.region_name == "eu-west-3"


def test_an_unknown_profile_is_a_clear_error(aws_config):
    with pytest.raises(ValueError, match=r"setting lambda_profile: no AWS profile 'nope'"):
        get_backend_class("lambda")(Config.resolve(executor="lambda", lambda_profile="nope", driver_host="10.0.0.5"))
