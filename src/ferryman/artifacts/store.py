"""Content-addressed artifact storage behind one narrow seam.

An artifact is named by the sha256 of its bytes. Writes go to a temporary file on the same
filesystem, are fsynced and renamed into place, so a reader or a crash never sees half a
file under its final name. Every read verifies the digest. The real store is a local
directory; :class:`InMemoryArtifactStore` serves tests; S3 comes through the same seam.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from ferryman.artifacts.staging import NO_SPACE, StagedFile, out_of_space
from ferryman.errors import ArtifactCorrupt, ArtifactNotFound, InvalidInput
from ferryman.names import validate_digest

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class StoredArtifact:
    """What the store knows about an artifact: its digest and size."""

    digest: str
    size_bytes: int


class ArtifactStore(Protocol):
    """Where artifact bytes live. Every implementation verifies digests on read."""

    def put(self, source: BinaryIO) -> StoredArtifact:
        """Store the bytes read from ``source``; storing the same bytes twice is a no-op."""
        ...

    def stage(self, limit_bytes: int) -> StagedFile:
        """A temporary file for an upload, in the store's own folder (see :meth:`put_staged`)."""
        ...

    def put_staged(self, staged: StagedFile) -> StoredArtifact:
        """Store a sealed :class:`StagedFile` under its digest (moved, not copied, if local)."""
        ...

    def read(self, digest: str) -> bytes:
        """Return the bytes of ``digest``, verified; raise ArtifactCorrupt on mismatch."""
        ...

    def exists(self, digest: str) -> bool: ...

    def copy_to(self, digest: str, destination: Path) -> None:
        """Write a verified copy to ``destination`` (atomically: temp file, then rename)."""
        ...


class LocalArtifactStore:
    """Artifacts under ``root/objects/sha256/ab/abcd…``, temporaries under ``root/tmp``."""

    def __init__(self, root: Path) -> None:
        self._root = root.absolute()
        self._objects = self._root / "objects" / "sha256"
        self._tmp = self._root / "tmp"
        for directory in (self._objects, self._tmp):
            directory.mkdir(parents=True, exist_ok=True)
        self._real_root = self._root.resolve(strict=True)

    @property
    def root(self) -> Path:
        return self._root

    def put(self, source: BinaryIO) -> StoredArtifact:
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="put-", suffix=".part")
        tmp_path = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as sink:
                digest, size = _copy_hashing(source, sink)
                sink.flush()
                os.fsync(sink.fileno())
            final = self.path_of(digest)
            if self._has_intact_copy(final, digest):
                return StoredArtifact(digest, size)
            final.parent.mkdir(exist_ok=True)
            os.replace(tmp_path, final)
            _fsync_directory(final.parent)
            logger.debug("stored artifact %s (%d bytes)", digest, size)
            return StoredArtifact(digest, size)
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise out_of_space(self._root.name) from exc
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()

    def stage(self, limit_bytes: int) -> StagedFile:
        return StagedFile(self._tmp, limit_bytes)

    def put_staged(self, staged: StagedFile) -> StoredArtifact:
        """Rename the sealed temporary into place: it is already on this filesystem, fsynced."""
        digest, size = staged.digest, staged.size_bytes
        final = self.path_of(digest)
        if self._has_intact_copy(final, digest):
            return StoredArtifact(digest, size)
        try:
            final.parent.mkdir(exist_ok=True)
            os.replace(staged.path, final)
            _fsync_directory(final.parent)
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise out_of_space(self._root.name) from exc
            raise
        logger.debug("stored uploaded artifact %s (%d bytes)", digest, size)
        return StoredArtifact(digest, size)

    def read(self, digest: str) -> bytes:
        with self._open(digest) as handle:
            data = handle.read()
        _verify(digest, hashlib.sha256(data).hexdigest())
        return data

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def copy_to(self, digest: str, destination: Path) -> None:
        destination = destination.absolute()
        fd, tmp_name = tempfile.mkstemp(dir=destination.parent, prefix=".ferryman-", suffix=".part")
        tmp_path = Path(tmp_name)
        try:
            with self._open(digest) as handle, os.fdopen(fd, "wb") as sink:
                actual, _ = _copy_hashing(handle, sink)
                _verify(digest, actual)
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(tmp_path, destination)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()

    def path_of(self, digest: str) -> Path:
        """The path of ``digest`` in the store, refused if it resolves outside the root."""
        validate_digest(digest)
        path = self._objects / digest[:2] / digest
        real = path.resolve()
        if not real.is_relative_to(self._real_root) or path.is_symlink():
            raise InvalidInput(f"artifact {digest} resolves outside the artifact store; refused")
        return path

    def sweep_temporaries(self, older_than_s: float = 3600.0) -> int:
        """Remove temporaries left by writers that died; returns how many were removed."""
        cutoff = time.time() - older_than_s
        removed = 0
        for leftover in self._tmp.glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
        return removed

    def _open(self, digest: str) -> BinaryIO:
        path = self.path_of(digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise ArtifactNotFound(f"artifact {digest} is not in the store") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidInput(f"artifact {digest} is a symlink; refused") from None
            raise
        return os.fdopen(fd, "rb")

    def _has_intact_copy(self, path: Path, digest: str) -> bool:
        """True if ``path`` already holds the right bytes; a corrupt copy gets replaced."""
        if not path.is_file():
            return False
        with self._open(digest) as handle:
            actual, _ = _copy_hashing(handle, None)
        if actual != digest:
            logger.warning("artifact %s was corrupt on disk; replacing it", digest)
        return actual == digest


class InMemoryArtifactStore:
    """An :class:`ArtifactStore` in a dict, for tests and throwaway sessions."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, source: BinaryIO) -> StoredArtifact:
        data = source.read()
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            self._blobs[digest] = data
        return StoredArtifact(digest, len(data))

    def stage(self, limit_bytes: int) -> StagedFile:
        return StagedFile(Path(tempfile.gettempdir()), limit_bytes)

    def put_staged(self, staged: StagedFile) -> StoredArtifact:
        with staged.path.open("rb") as source:
            return self.put(source)

    def read(self, digest: str) -> bytes:
        validate_digest(digest)
        with self._lock:
            data = self._blobs.get(digest)
        if data is None:
            raise ArtifactNotFound(f"artifact {digest} is not in the store")
        _verify(digest, hashlib.sha256(data).hexdigest())
        return data

    def exists(self, digest: str) -> bool:
        with self._lock:
            return validate_digest(digest) in self._blobs

    def copy_to(self, digest: str, destination: Path) -> None:
        destination.write_bytes(self.read(digest))

    def corrupt(self, digest: str) -> None:
        """Flip one byte of a stored artifact (a fault-injection hook for tests)."""
        with self._lock:
            data = bytearray(self._blobs[digest])
            data[len(data) // 2] ^= 0xFF
            self._blobs[digest] = bytes(data)


def _copy_hashing(source: BinaryIO, sink: BinaryIO | None) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK_BYTES):
        hasher.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return hasher.hexdigest(), size


def _verify(expected: str, actual: str) -> None:
    if actual != expected:
        raise ArtifactCorrupt(
            f"artifact {expected} failed verification (its bytes hash to {actual}); "
            "it was changed or damaged on disk; re-register the file to restore it"
        )


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
