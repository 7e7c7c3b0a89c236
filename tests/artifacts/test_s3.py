"""The artifact store on S3: content addressing, verification, the node cache, keys.

No real S3 can be had here: these tests run boto3 against moto's S3 server, a real HTTP
server on a free 127.0.0.1 port (tests/s3server.py).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ferryman.artifacts import create_store
from ferryman.artifacts.s3 import S3ArtifactStore, parse_s3_url
from ferryman.config import load_settings
from ferryman.errors import ArtifactCorrupt, ArtifactNotFound, InvalidInput, InvalidName
from tests.s3server import S3Server

WEIGHTS = b"weights" * 100_000


def _objects(server: S3Server, bucket: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_put_read_copy_and_keys_are_content_addressed(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.bucket()
    store = s3_server.store(tmp_path / "cache", bucket)
    first = store.put(io.BytesIO(WEIGHTS))
    again = store.put(io.BytesIO(WEIGHTS))

    assert first == again
    assert first.size_bytes == len(WEIGHTS)
    # one object at its digest's key; the temporary of each write is gone
    assert _objects(s3_server, bucket) == [store.key_of(first.digest)]
    assert store.key_of(first.digest).startswith(f"ferryman/objects/sha256/{first.digest[:2]}/")

    other_node = s3_server.store(tmp_path / "other-cache", bucket)
    assert other_node.exists(first.digest)
    assert not other_node.exists("0" * 64)
    assert other_node.read(first.digest) == WEIGHTS
    destination = tmp_path / "model.onnx"
    other_node.copy_to(first.digest, destination)
    assert destination.read_bytes() == WEIGHTS
    assert other_node.cache.exists(first.digest)  # fetched once into that node's cache


def test_a_flipped_byte_in_the_bucket_is_refused_on_read(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """RELIABILITY F8 on S3: a damaged object never reaches a replica, nor the cache."""
    bucket = s3_server.bucket()
    stored = s3_server.store(tmp_path / "writer", bucket).put(io.BytesIO(WEIGHTS))
    damaged = bytearray(WEIGHTS)
    damaged[1234] ^= 0x01
    key = f"ferryman/objects/sha256/{stored.digest[:2]}/{stored.digest}"
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=bytes(damaged))  # type: ignore[attr-defined]

    reader = s3_server.store(tmp_path / "reader", bucket)
    with pytest.raises(ArtifactCorrupt, match="failed verification"):
        reader.read(stored.digest)
    with pytest.raises(ArtifactCorrupt):
        reader.copy_to(stored.digest, tmp_path / "model.onnx")
    assert not reader.cache.exists(stored.digest)
    assert not (tmp_path / "model.onnx").exists()


def test_a_damaged_cached_copy_is_fetched_again(s3_server: S3Server, tmp_path: Path) -> None:
    store = s3_server.store(tmp_path / "cache")
    stored = store.put(io.BytesIO(WEIGHTS))
    assert store.read(stored.digest) == WEIGHTS
    cached = store.cache.path_of(stored.digest)
    data = bytearray(cached.read_bytes())
    data[10] ^= 0xFF
    cached.write_bytes(bytes(data))

    assert store.read(stored.digest) == WEIGHTS
    assert cached.read_bytes() == WEIGHTS


def test_missing_artifacts_and_bad_digests(s3_server: S3Server, tmp_path: Path) -> None:
    store = s3_server.store(tmp_path / "cache")
    with pytest.raises(ArtifactNotFound):
        store.read("ab" * 32)
    with pytest.raises(InvalidName):
        store.read("../../etc/passwd")


def test_a_large_artifact_goes_up_in_parts(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.bucket()
    store = S3ArtifactStore.connect(
        f"s3://{bucket}", tmp_path / "cache", endpoint_url=s3_server.endpoint_url,
        multipart_threshold_bytes=5 * 1024 * 1024,
    )  # fmt: skip
    data = bytes(range(256)) * (12 * 1024 * 1024 // 256)  # 12 MiB: three parts
    stored = store.put(io.BytesIO(data))

    head = s3_server.client().head_object(Bucket=bucket, Key=store.key_of(stored.digest))  # type: ignore[attr-defined]
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object's ETag counts its parts
    other_node = S3ArtifactStore.connect(
        f"s3://{bucket}", tmp_path / "other", endpoint_url=s3_server.endpoint_url
    )
    assert other_node.read(stored.digest) == data


def test_the_settings_choose_s3(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.bucket()
    settings = load_settings(
        data_dir=tmp_path,
        artifacts={"url": f"s3://{bucket}/p", "endpoint_url": s3_server.endpoint_url},
    )
    store = create_store(settings)
    assert isinstance(store, S3ArtifactStore)
    assert store.cache.root == (tmp_path / "artifact-cache").absolute()


@pytest.mark.parametrize(
    "url", ["http://bucket/p", "s3://", "s3://key:secret@bucket/p", "s3://bucket/p?x=1"]
)
def test_a_bad_artifacts_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput, match=r"s3://BUCKET\[/PREFIX\]"):
        parse_s3_url(url)


def test_publish_copies_beside_the_objects_and_refuses_a_key_that_climbs(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """For a layout another tool reads (KServe's Triton): copies server-side, unchanged."""
    bucket = s3_server.bucket()
    store = s3_server.store(tmp_path / "cache", bucket)
    stored = store.put(io.BytesIO(WEIGHTS))
    where = store.publish({"kserve/m/config.pbtxt": "name: \"m\"\n"},
                          {"kserve/m/1/model.onnx": stored.digest})  # fmt: skip
    assert where == f"s3://{bucket}/ferryman"
    client = s3_server.client()
    body = client.get_object(Bucket=bucket, Key="ferryman/kserve/m/1/model.onnx")  # type: ignore[attr-defined]
    assert body["Body"].read() == WEIGHTS
    for key in ("../outside", "/absolute", "a//b", "kserve/../../x"):
        with pytest.raises(InvalidInput, match="plain relative key"):
            store.publish({key: "x"}, {})
    assert "ferryman/outside" not in _objects(s3_server, bucket)


def test_a_staged_upload_goes_up_from_its_file(s3_server: S3Server, tmp_path: Path) -> None:
    """An upload staged in the cache's folder is sent from its file, verified, and the
    temporary is removed locally and in the bucket."""
    bucket = s3_server.bucket()
    store = s3_server.store(tmp_path / "cache", bucket)
    with store.stage(limit_bytes=len(WEIGHTS)) as staged:
        assert staged.path.parent == store.cache.root / "tmp"
        staged.write(WEIGHTS)
        staged.seal()
        stored = store.put_staged(staged)
    assert stored == store.put(io.BytesIO(WEIGHTS))
    assert not staged.path.exists()
    assert _objects(s3_server, bucket) == [store.key_of(stored.digest)]
    assert s3_server.store(tmp_path / "other-cache", bucket).read(stored.digest) == WEIGHTS
