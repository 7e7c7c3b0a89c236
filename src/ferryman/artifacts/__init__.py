"""Artifact bytes: the content-addressed store and the format gate in front of it."""

from __future__ import annotations

from ferryman.artifacts.formats import ArtifactFormat, InspectedArtifact, inspect_artifact
from ferryman.artifacts.store import (
    ArtifactStore,
    InMemoryArtifactStore,
    LocalArtifactStore,
    StoredArtifact,
)

__all__ = [
    "ArtifactFormat",
    "ArtifactStore",
    "InMemoryArtifactStore",
    "InspectedArtifact",
    "LocalArtifactStore",
    "StoredArtifact",
    "inspect_artifact",
]
