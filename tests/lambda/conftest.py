"""Fixtures for the Lambda backend: the Lambda-compatible local endpoint, and moto for deploys.

Every test runs with fake credentials and a region, so nothing can reach real AWS; boto3 is
pointed at the local endpoint (``AWS_ENDPOINT_URL_LAMBDA``) or at a ``ThreadedMotoServer``
(``AWS_ENDPOINT_URL``) by its own endpoint resolution, exactly as a user would point it.
"""

from __future__ import annotations

import urllib.request

import pytest

from lambda_executor.testing.local_endpoint import LocalEndpoint, serve_in_thread

_FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
             "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}


@pytest.fixture
def aws_env(monkeypatch):
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_LAMBDA", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    for key, value in _FAKE_AWS.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def lambda_endpoint(aws_env, monkeypatch):
    """``start(**settings)`` runs a local endpoint and points boto3's Lambda client at it."""
    started: list[LocalEndpoint] = []

    def start(**settings) -> LocalEndpoint:
        endpoint = serve_in_thread(**settings)
        started.append(endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", endpoint.url)
        return endpoint

    yield start
    for endpoint in started:
        endpoint.close()


@pytest.fixture(scope="module")
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto(moto_server, aws_env, monkeypatch):
    """A reset moto server that every boto3 client of the test talks to."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server
