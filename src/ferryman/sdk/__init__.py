"""The SDK: :class:`Client` and the backends it talks through."""

from __future__ import annotations

from ferryman.sdk.backend import LocalBackend, RegistryBackend
from ferryman.sdk.client import Client
from ferryman.sdk.http import HttpBackend

__all__ = ["Client", "HttpBackend", "LocalBackend", "RegistryBackend"]
