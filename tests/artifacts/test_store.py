"""The artifact store: content addressing, atomic writes, verification, containment."""

from __future__ import annotations

import io
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferryman.artifacts import ArtifactStore, InMemoryArtifactStore, LocalArtifactStore
from ferryman.errors import (
    ArtifactCorrupt,
    ArtifactNotFound,
    FerrymanError,
    PayloadTooLarge,
    StorageFull,
)

SHA_OF_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.fixture(params=["local", "memory"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "store")
    return InMemoryArtifactStore()


def test_put_is_content_addressed_and_idempotent(any_store: ArtifactStore) -> None:
    first = any_store.put(io.BytesIO(b"model bytes"))
    again = any_store.put(io.BytesIO(b"model bytes"))
    empty = any_store.put(io.BytesIO(b""))

    assert first == again
    assert first.size_bytes == 11
    assert empty.digest == SHA_OF_EMPTY
    assert any_store.read(first.digest) == b"model bytes"
    assert any_store.exists(first.digest)
    assert not any_store.exists("0" * 64)


def test_missing_artifacts_are_reported(any_store: ArtifactStore) -> None:
    with pytest.raises(ArtifactNotFound):
        any_store.read("ab" * 32)


def test_copy_to_writes_a_verified_copy(any_store: ArtifactStore, tmp_path: Path) -> None:
    stored = any_store.put(io.BytesIO(b"x" * 3_000_000))
    destination = tmp_path / "copy.onnx"
    any_store.copy_to(stored.digest, destination)
    assert destination.read_bytes() == b"x" * 3_000_000


def test_a_flipped_byte_is_detected_on_read(tmp_path: Path) -> None:
    """RELIABILITY F8."""
    store = LocalArtifactStore(tmp_path / "store")
    stored = store.put(io.BytesIO(b"weights" * 1000))
    path = store.path_of(stored.digest)
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))

    with pytest.raises(ArtifactCorrupt, match="failed verification"):
        store.read(stored.digest)
    with pytest.raises(ArtifactCorrupt):
        store.copy_to(stored.digest, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
    # Registering the same bytes again heals the store.
    store.put(io.BytesIO(b"weights" * 1000))
    assert store.read(stored.digest) == b"weights" * 1000


def test_a_truncated_artifact_is_detected(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    stored = store.put(io.BytesIO(b"weights" * 1000))
    path = store.path_of(stored.digest)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ArtifactCorrupt):
        store.read(stored.digest)


def test_in_memory_corruption_is_detected_too() -> None:
    store = InMemoryArtifactStore()
    stored = store.put(io.BytesIO(b"weights"))
    store.corrupt(stored.digest)
    with pytest.raises(ArtifactCorrupt):
        store.read(stored.digest)


def test_a_symlinked_object_is_refused(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    secret = tmp_path / "secret"
    secret.write_bytes(b"outside")
    digest = "ab" * 32
    target = store.root / "objects" / "sha256" / "ab"
    target.mkdir(parents=True)
    (target / digest).symlink_to(secret)
    with pytest.raises(FerrymanError, match=r"outside the artifact store|symlink"):
        store.read(digest)


def test_a_symlinked_fan_out_directory_is_refused(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (store.root / "objects" / "sha256" / "cd").symlink_to(outside)
    with pytest.raises(FerrymanError, match="outside the artifact store"):
        store.read("cd" * 32)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(digest=st.text(min_size=0, max_size=80))
def test_any_accepted_digest_resolves_inside_the_store(tmp_path: Path, digest: str) -> None:
    """RELIABILITY B6 (property): whatever the input, a stored path stays under the root."""
    store = LocalArtifactStore(tmp_path / "store")
    try:
        path = store.path_of(digest)
    except FerrymanError:
        return
    assert path.resolve().is_relative_to(store.root.resolve())


def test_temporaries_of_dead_writers_are_swept(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    leftover = store.root / "tmp" / "put-dead.part"
    leftover.write_bytes(b"half")
    os.utime(leftover, (0, 0))
    fresh = store.root / "tmp" / "put-alive.part"
    fresh.write_bytes(b"in progress")
    assert store.sweep_temporaries(older_than_s=3600) == 1
    assert not leftover.exists()
    assert fresh.exists()


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_fails_cleanly(tiny_filesystem: Path) -> None:
    """RELIABILITY F7: out of space → StorageFull (507); no final file, no temporary left."""
    store = LocalArtifactStore(tiny_filesystem / "store")
    small = store.put(io.BytesIO(b"fits"))
    with pytest.raises(StorageFull, match="out of space") as raised:
        store.put(io.BytesIO(os.urandom(2 << 20)))

    assert raised.value.status_code == 507
    assert list((store.root / "tmp").iterdir()) == []
    objects = [p for p in (store.root / "objects").rglob("*") if p.is_file()]
    assert objects == [store.path_of(small.digest)]
    assert store.read(small.digest) == b"fits"


def test_a_staged_upload_is_stored_as_put_stores_it(any_store: ArtifactStore) -> None:
    expected = any_store.put(io.BytesIO(b"model bytes" * 1000))
    with any_store.stage(limit_bytes=1 << 20) as staged:
        for _ in range(1000):
            staged.write(b"model bytes")
        assert staged.seal() == expected.digest
        assert any_store.put_staged(staged) == expected
    assert not staged.path.exists()
    assert any_store.read(expected.digest) == b"model bytes" * 1000


def test_a_staged_upload_is_moved_into_place_not_copied(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    with store.stage(limit_bytes=1 << 20) as staged:
        assert staged.path.parent == store.root / "tmp"
        staged.write(b"weights")
        staged.seal()
        inode = staged.path.stat().st_ino
        stored = store.put_staged(staged)
    assert store.path_of(stored.digest).stat().st_ino == inode
    assert list((store.root / "tmp").iterdir()) == []


def test_a_staged_upload_past_its_limit_is_refused_and_removed(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    with pytest.raises(PayloadTooLarge, match="passed 1024 bytes"):
        _stage(store, 1024, [b"x" * 1024, b"x"])
    assert list((store.root / "tmp").iterdir()) == []
    assert [p for p in (store.root / "objects").rglob("*") if p.is_file()] == []


def test_a_full_disk_fails_a_staged_upload_cleanly(tiny_filesystem: Path) -> None:
    """RELIABILITY F7 for uploads: the disk fills while the upload streams."""
    store = LocalArtifactStore(tiny_filesystem / "store")
    with pytest.raises(StorageFull, match="out of space"):
        _stage(store, 4 << 20, [os.urandom(64 << 10) for _ in range(32)])
    assert list((store.root / "tmp").iterdir()) == []
    assert [p for p in (store.root / "objects").rglob("*") if p.is_file()] == []


def _stage(store: ArtifactStore, limit_bytes: int, chunks: list[bytes]) -> None:
    """Stage ``chunks`` as an upload does, and store them."""
    with store.stage(limit_bytes) as staged:
        for chunk in chunks:
            staged.write(chunk)
        staged.seal()
        store.put_staged(staged)
