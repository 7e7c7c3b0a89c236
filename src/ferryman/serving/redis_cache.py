"""The shared response cache on Redis, behind the same seam as the in-process LRU."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ferryman.serving.cache import Arrays

DEFAULT_TTL_S = 3600


class RedisCache:
    """Responses in Redis, as ``.npz`` archives loaded without pickle."""

    def __init__(self, url: str, ttl_s: int = DEFAULT_TTL_S, prefix: str = "ferryman:") -> None:
        import redis.asyncio  # noqa: PLC0415 (optional: only replicas with a shared cache)

        self._client: Any = redis.asyncio.Redis.from_url(url)
        self._ttl_s = ttl_s
        self._prefix = prefix

    async def get(self, key: str) -> Arrays | None:
        raw = await self._client.get(self._prefix + key)
        if raw is None:
            return None
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}

    async def put(self, key: str, outputs: Arrays) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **outputs)
        await self._client.set(self._prefix + key, buffer.getvalue(), ex=self._ttl_s)

    async def close(self) -> None:
        await self._client.aclose()
