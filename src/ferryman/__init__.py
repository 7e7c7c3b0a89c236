"""Ferryman: take AI models from training to production and keep them current there.

>>> import ferryman
>>> sorted(ferryman.__all__)[:3]
['AliasRecord', 'Client', 'EventRecord']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ferryman.version import __version__

if TYPE_CHECKING:
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

_HOMES = {
    "AliasRecord": "ferryman.registry",
    "Client": "ferryman.sdk",
    "EventRecord": "ferryman.registry",
    "FerrymanError": "ferryman.errors",
    "ModelRecord": "ferryman.registry",
    "Signature": "ferryman.signature",
    "TensorSpec": "ferryman.signature",
    "VariantRecord": "ferryman.registry",
    "VersionRecord": "ferryman.registry",
}
"""Where each public name lives. They load on first use: every ``import ferryman.x`` runs
this file first, and a replica must not pay for the SDK and the registry it does not use."""


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ferryman' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


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
