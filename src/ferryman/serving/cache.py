"""The optional response cache of deterministic variants, keyed by the request's tensors.

Off by default. :class:`LruCache` keeps entries in the replica's memory; a shared cache
(Redis) plugs in behind the same :class:`ResponseCache` seam.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Protocol

import numpy as np

from ferryman.protocol import strings

Arrays = dict[str, np.ndarray]


def tensor_key(scope: str, inputs: Arrays) -> str:
    """A digest of ``scope`` (who answers) and the inputs' names, datatypes, shapes and bytes."""
    digest = hashlib.sha256(scope.encode())
    for name in sorted(inputs):
        array = np.ascontiguousarray(inputs[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        # text elements by their length-prefixed bytes (an object array's own are pointers)
        is_text = array.dtype.kind in strings.TEXT_KINDS
        digest.update(strings.to_binary(array) if is_text else array.tobytes())
    return digest.hexdigest()


class ResponseCache(Protocol):
    """Outputs of earlier requests, by the digest of their inputs (see :func:`tensor_key`)."""

    async def get(self, key: str) -> Arrays | None:
        """The outputs stored under ``key``, or None."""

    async def put(self, key: str, outputs: Arrays) -> None:
        """Store ``outputs`` under ``key``."""

    async def close(self) -> None:
        """Release connections and memory."""


class LruCache:
    """At most ``max_entries`` responses in memory, least recently used out first.

    >>> import asyncio
    >>> cache = LruCache(max_entries=1)
    >>> asyncio.run(cache.get("missing")) is None
    True
    """

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[str, Arrays] = OrderedDict()
        self._max_entries = max_entries

    async def get(self, key: str) -> Arrays | None:
        outputs = self._entries.get(key)
        if outputs is not None:
            self._entries.move_to_end(key)
        return outputs

    async def put(self, key: str, outputs: Arrays) -> None:
        frozen = {name: _read_only(array) for name, array in outputs.items()}
        self._entries[key] = frozen
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _read_only(array: np.ndarray) -> np.ndarray:
    copy = np.array(array, copy=True)
    copy.flags.writeable = False
    return copy
