"""Scripted stand-ins for what the rollout controller observes: gateway totals, a clock."""

from __future__ import annotations

import math
from dataclasses import replace

from ferryman.control.metrics.traffic import Traffic
from ferryman.types import Slot


class Scripted:
    """Gateway totals of endpoint ``digits`` that grow by what the test says happens."""

    def __init__(self) -> None:
        self.totals: dict[Slot, Traffic] = {}
        self.is_down = False

    def serve(
        self,
        variant: str,
        requests: int,
        errors: int = 0,
        latency_s: float = 0.01,
        client_errors: int = 0,
    ) -> None:
        """``requests`` more answers of ``variant``: ``errors`` 5xx, ``client_errors`` 4xx."""
        key = ("digits", variant)
        before = self.totals.get(key, Traffic())
        count = before.requests + requests
        buckets = dict(before.buckets)
        for bound in (0.01, 0.1, 1.0, 10.0, math.inf):
            buckets[bound] = buckets.get(bound, 0.0) + (requests if latency_s <= bound else 0)
        self.totals[key] = replace(
            before, requests=count, errors=before.errors + errors, buckets=buckets,
            client_errors=before.client_errors + client_errors,
        )  # fmt: skip

    def mirror(self, variant: str, outcome: str, count: int) -> None:
        """Count shadow copies of ``variant`` by comparison outcome."""
        key = ("digits", variant)
        before = self.totals.get(key, Traffic())
        shadow = {**before.shadow, outcome: before.shadow.get(outcome, 0.0) + count}
        self.totals[key] = replace(before, shadow=shadow)

    def __call__(self) -> dict[Slot, Traffic] | None:
        return None if self.is_down else dict(self.totals)
