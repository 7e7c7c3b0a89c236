"""moto's S3 as a real HTTP server on a free loopback port, for the S3 artifact store's tests.

No real S3 can be reached from the test machines; moto's server speaks S3's HTTP API, so
boto3 goes through its whole client stack (signing, retries, multipart) against it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from ferryman.artifacts.s3 import S3ArtifactStore
from tests.support import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto accepts any key
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def client(self) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def bucket(self) -> str:
        """A new empty bucket."""
        name = f"ferryman-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name

    def store(self, cache_dir: Path, bucket: str | None = None) -> S3ArtifactStore:
        """A store in ``bucket`` (a new one by default) with its cache in ``cache_dir``."""
        url = f"s3://{bucket or self.bucket()}/ferryman"
        return S3ArtifactStore.connect(url, cache_dir, endpoint_url=self.endpoint_url)


@contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """moto's S3 on 127.0.0.1 (credentials in the environment, as the AWS chain reads them);
    the ``s3_server`` fixture of tests/conftest.py."""
    patch = pytest.MonkeyPatch()
    for key, value in CREDENTIALS.items():
        patch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()
        patch.undo()
