"""The artifact store on S3 (or any S3-compatible store), read through a local cache.

Objects live at ``<prefix>/objects/sha256/ab/abcd…``; the only thing that ever becomes a
key is a digest Ferryman computed or validated, never a name from a request. A write
streams the bytes to a local spool while hashing them, uploads them to a temporary key
(``<prefix>/tmp/<uuid>.part``; multipart above ``multipart_threshold_bytes``), reads the
temporary object back and checks its digest, and only then copies it to its final key, so
no reader sees half an object, or a damaged one, under a digest. Reads go through a
:class:`~ferryman.artifacts.store.LocalArtifactStore` on this node: an object is fetched
once, verified, and shared by every replica of the node; each read verifies it again, and
a cached copy that no longer matches is fetched again.

Credentials come from boto3's standard chain (environment, profile, instance role); they
are never logged, and the endpoint URL is shown only through
:func:`~ferryman.redaction.redact_url`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import uuid
from pathlib import Path
from typing import IO, Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ferryman.artifacts.staging import StagedFile
from ferryman.artifacts.store import CHUNK_BYTES, LocalArtifactStore, StoredArtifact, _verify
from ferryman.errors import ArtifactCorrupt, ArtifactNotFound, InvalidInput, Unavailable
from ferryman.names import validate_digest
from ferryman.redaction import redact_url

logger = logging.getLogger(__name__)

SPOOL_BYTES = 64 * 1024 * 1024
"""Writes up to this size are spooled in memory before the upload; larger ones on disk."""
_MISSING = {"404", "NoSuchKey", "NotFound"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix")``.

    >>> parse_s3_url("s3://models/ferryman/")
    ('models', 'ferryman')
    """
    if not url.startswith("s3://"):
        raise InvalidInput(
            f"artifacts URL {redact_url(url)!r} is not an S3 URL; use s3://BUCKET[/PREFIX]"
        )
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket or "@" in bucket or "?" in url or "#" in url:
        raise InvalidInput(
            f"artifacts URL {redact_url(url)!r} names no bucket; use s3://BUCKET[/PREFIX] "
            "(credentials come from the AWS chain, never the URL)"
        )
    return bucket, prefix.strip("/")


class S3ArtifactStore:
    """An :class:`~ferryman.artifacts.store.ArtifactStore` on S3 with a verified local cache."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str,
        cache: LocalArtifactStore,
        multipart_threshold_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self._s3 = client
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self._cache = cache
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold_bytes,
            multipart_chunksize=max(multipart_threshold_bytes, 5 * 1024 * 1024),
        )

    @classmethod
    def connect(
        cls,
        url: str,
        cache_dir: Path,
        endpoint_url: str | None = None,
        region: str | None = None,
        multipart_threshold_bytes: int = 64 * 1024 * 1024,
    ) -> S3ArtifactStore:
        """The store at ``url`` (``s3://bucket/prefix``), caching under ``cache_dir``."""
        bucket, prefix = parse_s3_url(url)
        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )
        where = redact_url(endpoint_url) if endpoint_url else "AWS"
        logger.info("artifacts on s3://%s/%s at %s", bucket, prefix, where)
        return cls(client, bucket, prefix, LocalArtifactStore(cache_dir), multipart_threshold_bytes)

    @property
    def cache(self) -> LocalArtifactStore:
        return self._cache

    def key_of(self, digest: str) -> str:
        """The object key of ``digest`` (validated: nothing else becomes a key)."""
        validate_digest(digest)
        return f"{self._prefix}objects/sha256/{digest[:2]}/{digest}"

    def put(self, source: BinaryIO) -> StoredArtifact:
        with tempfile.SpooledTemporaryFile(SPOOL_BYTES, dir=str(self._cache.root / "tmp")) as spool:
            hasher = hashlib.sha256()
            size = 0
            while chunk := source.read(CHUNK_BYTES):
                hasher.update(chunk)
                size += len(chunk)
                spool.write(chunk)
            spool.seek(0)
            return self._upload(spool, hasher.hexdigest(), size)

    def stage(self, limit_bytes: int) -> StagedFile:
        return self._cache.stage(limit_bytes)

    def put_staged(self, staged: StagedFile) -> StoredArtifact:
        with staged.path.open("rb") as source:
            return self._upload(source, staged.digest, staged.size_bytes)

    def _upload(self, source: IO[bytes], digest: str, size: int) -> StoredArtifact:
        """Upload ``source`` (``size`` bytes hashing to ``digest``) to a temporary key, check
        the object's digest, then copy it to its final key."""
        final = self.key_of(digest)
        if self._has_object(final, size):
            return StoredArtifact(digest, size)
        temporary = f"{self._prefix}tmp/{uuid.uuid4().hex}.part"
        try:
            self._call(self._s3.upload_fileobj, source, self._bucket, temporary,
                       Config=self._transfer)  # fmt: skip
            _verify(digest, self._digest_of(temporary))
            source_ref = {"Bucket": self._bucket, "Key": temporary}
            self._call(self._s3.copy, source_ref, self._bucket, final, Config=self._transfer)
        finally:
            with contextlib.suppress(ClientError, BotoCoreError):
                self._s3.delete_object(Bucket=self._bucket, Key=temporary)
        logger.debug("stored artifact %s (%d bytes) on S3", digest, size)
        return StoredArtifact(digest, size)

    def read(self, digest: str) -> bytes:
        self._fetch(digest)
        try:
            return self._cache.read(digest)
        except ArtifactCorrupt:
            self._fetch(digest, is_cached_copy_bad=True)
            return self._cache.read(digest)

    def exists(self, digest: str) -> bool:
        return self._cache.exists(digest) or self._has_object(self.key_of(digest))

    def copy_to(self, digest: str, destination: Path) -> None:
        self._fetch(digest)
        try:
            self._cache.copy_to(digest, destination)
        except ArtifactCorrupt:
            self._fetch(digest, is_cached_copy_bad=True)
            self._cache.copy_to(digest, destination)

    @property
    def url(self) -> str:
        """``s3://bucket/prefix`` of the store (no trailing ``/``)."""
        return f"s3://{self._bucket}/{self._prefix}".rstrip("/")

    def publish(self, files: dict[str, str], digests: dict[str, str]) -> str:
        """Write files beside the store, outside its objects: ``files`` (relative key → text)
        and ``digests`` (relative key → the artifact copied there, server-side, unchanged).

        For tools that need a layout of their own (KServe's Triton reads a model repository).
        Keys are made by the caller from validated names; none may climb or be absolute.
        Returns the URL they are under.
        """
        for key in [*files, *digests]:
            if key.startswith("/") or ".." in key.split("/") or "//" in key:
                raise InvalidInput(f"key {key!r} is not a plain relative key")
        for key, text in files.items():
            self._call(self._s3.put_object, Bucket=self._bucket, Key=self._prefix + key,
                       Body=text.encode())  # fmt: skip
        for key, digest in digests.items():
            source = {"Bucket": self._bucket, "Key": self.key_of(digest)}
            self._call(self._s3.copy, source, self._bucket, self._prefix + key,
                       Config=self._transfer)  # fmt: skip
        return self.url

    def _fetch(self, digest: str, *, is_cached_copy_bad: bool = False) -> None:
        """Bring ``digest`` into the node's cache, verified, unless it is there already."""
        path = self._cache.path_of(digest)
        if path.is_file() and not is_cached_copy_bad:
            return
        if is_cached_copy_bad:
            logger.warning("cached artifact %s was damaged; fetching it again", digest)
        fd, tmp_name = tempfile.mkstemp(dir=self._cache.root / "tmp", prefix="get-", suffix=".part")
        tmp_path = Path(tmp_name)
        try:
            answer = self._call(self._s3.get_object, Bucket=self._bucket, Key=self.key_of(digest))
            hasher = hashlib.sha256()
            with os.fdopen(fd, "wb") as sink:
                for chunk in answer["Body"].iter_chunks(CHUNK_BYTES):
                    hasher.update(chunk)
                    sink.write(chunk)
                sink.flush()
                os.fsync(sink.fileno())
            _verify(digest, hasher.hexdigest())
            path.parent.mkdir(exist_ok=True)
            os.replace(tmp_path, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()

    def _digest_of(self, key: str) -> str:
        answer = self._call(self._s3.get_object, Bucket=self._bucket, Key=key)
        hasher = hashlib.sha256()
        for chunk in answer["Body"].iter_chunks(CHUNK_BYTES):
            hasher.update(chunk)
        return hasher.hexdigest()

    def _has_object(self, key: str, size_bytes: int | None = None) -> bool:
        try:
            head = self._call(self._s3.head_object, Bucket=self._bucket, Key=key)
        except ArtifactNotFound:
            return False
        return size_bytes is None or int(head["ContentLength"]) == size_bytes

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the S3 client; a missing object is ArtifactNotFound, anything else Unavailable."""
        try:
            return method(*args, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                key = str(kwargs.get("Key", ""))
                raise ArtifactNotFound(
                    f"artifact {key.rsplit('/', 1)[-1]} is not in bucket {self._bucket!r}"
                ) from None
            raise Unavailable(
                f"S3 refused a request on bucket {self._bucket!r} ({code}); check the bucket, "
                "its permissions and the credentials of the AWS chain"
            ) from None
        except BotoCoreError as exc:
            raise Unavailable(
                f"S3 bucket {self._bucket!r} cannot be reached ({type(exc).__name__}); check "
                "artifacts.endpoint_url and the network"
            ) from None
