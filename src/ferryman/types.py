"""Aliases shared by the parts: one name for one concept of DESIGN.md's vocabulary."""

from __future__ import annotations

from collections.abc import Callable

Slot = tuple[str, str]
"""A variant of an endpoint, ``(endpoint, variant)``: what replicas, traffic, samples and
alerts are counted by."""

Clock = Callable[[], float]
"""Seconds now. Monotonic unless the parameter's name says wall; injected so that tests
step time instead of sleeping."""
