"""Ferryman: take AI models from training to production and keep them current there.

>>> import ferryman
>>> sorted(ferryman.__all__)[:3]
['AliasRecord', 'Client', 'EventRecord']
"""

from __future__ import annotations

from ferryman.errors import FerrymanError
from ferryman.registry import (
    AliasRecord,
    EventRecord,
    ModelRecord,
    VariantRecord,
    VersionRecord,
)
from ferryman.sdk import Client
from ferryman.signature import Signature, TensorSpec
from ferryman.version import __version__

__all__ = [
    "AliasRecord",
    "Client",
    "EventRecord",
    "FerrymanError",
    "ModelRecord",
    "Signature",
    "TensorSpec",
    "VariantRecord",
    "VersionRecord",
    "__version__",
]
