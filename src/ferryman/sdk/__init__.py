"""The SDK: :class:`Client` and the backends it talks through."""

from __future__ import annotations

from ferryman.sdk.backend import LocalBackend, RegistryBackend
from ferryman.sdk.client import Client

__all__ = ["Client", "LocalBackend", "RegistryBackend"]
