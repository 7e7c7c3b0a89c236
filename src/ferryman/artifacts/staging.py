"""An upload on its way into the store: written to a temporary file as its bytes arrive.

A model upload can be gigabytes; held in memory, a few at once would exhaust the control
plane. A :class:`StagedFile` writes each chunk to a temporary file in the store's own
temporary folder (on the store's filesystem, so publishing it is a rename), hashes and
counts it on the way, and refuses the chunk that passes the size cap with 413 at once. The
store then publishes the file under its digest (:meth:`ArtifactStore.put_staged`); if
anything fails first, leaving the ``with`` block removes the temporary.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path
from types import TracebackType

from ferryman.errors import PayloadTooLarge, StorageFull

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def out_of_space(where: str) -> StorageFull:
    """The 507 for a store that ran out of space while writing (RELIABILITY F7)."""
    return StorageFull(
        f"the artifact store at {where!r} is out of space; "
        "free some space or move the data dir, then retry"
    )


class StagedFile:
    """Bytes written to a temporary ``*.part`` file under a size cap, hashed as they arrive.

    >>> import tempfile; folder = Path(tempfile.mkdtemp())
    >>> with StagedFile(folder, limit_bytes=1024) as staged:
    ...     staged.write(b"abc")
    ...     staged.seal()[:12], staged.size_bytes
    ('ba7816bf8f01', 3)
    >>> list(folder.iterdir())
    []
    """

    def __init__(self, directory: Path, limit_bytes: int) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix="upload-", suffix=".part")
        self.path = Path(name)
        self._sink = os.fdopen(fd, "wb")
        self._hasher = hashlib.sha256()
        self._limit_bytes = limit_bytes
        self._where = directory.parent.name
        self.size_bytes = 0

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; 413 as soon as the total passes the cap, 507 if the disk is full."""
        self.size_bytes += len(chunk)
        if self.size_bytes > self._limit_bytes:
            raise PayloadTooLarge(
                f"the upload passed {self._limit_bytes} bytes, the limit "
                "(control.max_upload_bytes); refused and nothing was kept"
            )
        self._hasher.update(chunk)
        try:
            self._sink.write(chunk)
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise out_of_space(self._where) from exc
            raise

    def seal(self) -> str:
        """Flush and fsync the file, close it, and return the sha256 of its bytes."""
        try:
            self._sink.flush()
            os.fsync(self._sink.fileno())
            self._sink.close()
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise out_of_space(self._where) from exc
            raise
        return self.digest

    @property
    def digest(self) -> str:
        return self._hasher.hexdigest()

    def discard(self) -> None:
        """Close and remove the temporary (a no-op once the store moved it into place)."""
        with contextlib.suppress(OSError):
            self._sink.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.discard()
