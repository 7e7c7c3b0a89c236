"""Artifact bytes: the content-addressed store and the format gate in front of it.

:func:`create_store` is the one place that picks the store the settings name: the data
dir's directory, or S3 (:mod:`ferryman.artifacts.s3`, which needs boto3) when
``artifacts.url`` is an ``s3://`` URL.
"""

from __future__ import annotations

from ferryman.artifacts.formats import (
    ArtifactFormat,
    InspectedArtifact,
    inspect_artifact,
    inspect_file,
)
from ferryman.artifacts.staging import StagedFile
from ferryman.artifacts.store import (
    ArtifactStore,
    InMemoryArtifactStore,
    LocalArtifactStore,
    StoredArtifact,
)
from ferryman.config import Settings
from ferryman.errors import InvalidInput


def create_store(settings: Settings) -> ArtifactStore:
    """The artifact store ``settings.artifacts`` names; a local one is swept of temporaries."""
    artifacts = settings.artifacts
    if artifacts.url is None:
        store = LocalArtifactStore(settings.artifacts_dir)
        store.sweep_temporaries()
        return store
    try:
        from ferryman.artifacts.s3 import S3ArtifactStore  # noqa: PLC0415 - boto3 is optional
    except ImportError as exc:
        raise InvalidInput(
            f"artifacts on S3 need boto3 ({exc.name} cannot be imported); install the extra: "
            "pip install 'ferryman[s3]'"
        ) from None

    return S3ArtifactStore.connect(
        artifacts.url,
        settings.artifact_cache_dir,
        endpoint_url=artifacts.endpoint_url,
        region=artifacts.region,
        multipart_threshold_bytes=artifacts.multipart_threshold_bytes,
    )


__all__ = [
    "ArtifactFormat",
    "ArtifactStore",
    "InMemoryArtifactStore",
    "InspectedArtifact",
    "LocalArtifactStore",
    "StagedFile",
    "StoredArtifact",
    "create_store",
    "inspect_artifact",
    "inspect_file",
]
