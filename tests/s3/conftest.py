"""S3 fixtures: a ThreadedMotoServer on 127.0.0.1 behind a counting proxy.

State: per test module, one moto server and one :class:`~s3proxy.CountingProxy` in front
of it, and the boto3 environment pointing at the proxy: ``AWS_ENDPOINT_URL_S3``, fake
credentials and a region, set in ``os.environ`` so that executor subprocesses inherit
them.  Nothing dagrun-specific is configured: the endpoint reaches s3fs the way it
reaches any boto3 client.

Policy: every test starts from an empty moto (``POST /moto-api/reset``), the two buckets
``dagrun-store`` and ``dagrun-input``, and an empty proxy log with nothing injected.
"""

from __future__ import annotations

import logging
import os
import sys
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # s3proxy; tests/s3 is not a package

from s3proxy import CountingProxy  # noqa: E402

STORE_BUCKET = "dagrun-store"
INPUT_BUCKET = "dagrun-input"
_AWS_ENV = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")


@dataclass
class S3:
    """What a test gets: the moto URL (bypassing the proxy), the proxy, and the buckets."""

    moto_url: str
    proxy: CountingProxy
    store_bucket: str = STORE_BUCKET
    input_bucket: str = INPUT_BUCKET

    def store_url(self, name: str | None = None) -> str:
        return f"s3://{self.store_bucket}/{name or 'shuffle-' + uuid.uuid4().hex[:8]}"

    client: Any = None  # a boto3 S3 client for setup and checks (its requests are logged too)

    def put_input(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.input_bucket, Key=key, Body=data)
        return f"s3://{self.input_bucket}/{key}"

    def keys(self, bucket: str | None = None, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket or self.store_bucket,
                                                                       Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    proxy = CountingProxy(f"http://{host}:{port}").start()
    with pytest.MonkeyPatch.context() as mp:
        for name in _AWS_ENV:
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        import boto3

        _forget_clients()
        try:
            yield S3(f"http://{host}:{port}", proxy, client=boto3.client("s3"))
        finally:
            _forget_clients()
            proxy.stop()
            server.stop()


def _forget_clients() -> None:
    """Drop s3fs instances (and the executor-side stores holding them) made for another
    module's server: fsspec caches filesystems by their options, and the endpoint, which
    comes from the environment here, is not one of them."""
    import s3fs

    import dagrun.runtime.task

    s3fs.S3FileSystem.clear_instance_cache()
    dagrun.runtime.task._stores.clear()


@pytest.fixture
def s3(s3_server: S3) -> Iterator[S3]:
    """An empty moto with the two buckets, and an empty proxy log."""
    s3_server.proxy.reset()  # no injected answers left over from the previous test
    request = urllib.request.Request(f"{s3_server.moto_url}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, response.read().decode()
    for bucket in (STORE_BUCKET, INPUT_BUCKET):
        s3_server.client.create_bucket(Bucket=bucket)
    s3_server.proxy.reset()
    yield s3_server


@pytest.fixture
def unused_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
