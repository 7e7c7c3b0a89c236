"""The metric history in memory: a bounded ring of samples per (endpoint, variant).

Each ring holds at most ``retention_s / resolution_s`` samples, one column per series
(NaN where a sample has no value), so memory is fixed per variant: about 1.1 MiB for 24 h
at 10 s. Rings of variants that stopped reporting are dropped once their newest sample is
older than the retention. The monitor adds each tick's samples; the API reads the newest
sample and windows of points. :class:`StoredHistory` answers the same questions from the
registry, for an API without a control loop in its process. :func:`downsample` thins long
windows for charts (a day at 10 s is 8,640 points a series).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ferryman.registry import SERIES, MetricHistory, MetricSample
from ferryman.types import Slot

Points = dict[tuple[str, str], list[tuple[float, float]]]
"""(variant, series) → [(unix seconds, value)], oldest first; times without data left out."""

_COLUMNS = {name: index for index, name in enumerate(SERIES)}

PEAK_SERIES = frozenset(
    {"error_rate", "client_error_rate", "p50_ms", "p99_ms", "cpu_pct", "rss_bytes",
     "input_drift_psi", "prediction_drift", "restarts_10m", "ttft_p50_ms", "ttft_p99_ms",
     "tpot_p50_ms", "tpot_p99_ms", "in_flight"}
)  # fmt: skip
"""Series whose buckets keep their largest value: a spike must not be averaged away."""


class HistoryView(Protocol):
    """What the API reads: the newest sample of each variant and windows of points."""

    def latest(self) -> dict[Slot, MetricSample]: ...

    def points(self, endpoint: str, since_s: float, names: Sequence[str]) -> Points: ...


class Ring:
    """A fixed-capacity ring of one variant's samples: a time column and a column per series."""

    def __init__(self, capacity: int) -> None:
        self._times: npt.NDArray[np.float64] = np.full(capacity, np.nan)
        self._values: npt.NDArray[np.float64] = np.full((capacity, len(SERIES)), np.nan)
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, sample: MetricSample) -> None:
        slot = self._next
        self._times[slot] = sample.time_s
        self._values[slot] = np.nan
        for name, value in sample.values.items():
            self._values[slot, _COLUMNS[name]] = value
        self._next = (slot + 1) % len(self._times)
        self._size = min(self._size + 1, len(self._times))

    def newest_s(self) -> float:
        return float(self._times[self._next - 1]) if self._size else -math.inf

    def window(self, since_s: float, names: Sequence[str]) -> dict[str, list[tuple[float, float]]]:
        """Points of ``names`` from ``since_s`` on, oldest first."""
        order = np.roll(np.arange(len(self._times)), -self._next)[-self._size :]
        times, values = self._times[order], self._values[order]
        recent = times >= since_s
        if not recent.any():
            return {}
        times, values = times[recent], values[recent]
        found = {}
        for name in names:
            column = values[:, _COLUMNS[name]]
            present = ~np.isnan(column)
            found[name] = list(zip(times[present].tolist(), column[present].tolist(), strict=True))
        return found


class History:
    """Rings of every (endpoint, variant) that reported within the retention; thread-safe."""

    def __init__(self, retention_s: float, resolution_s: float) -> None:
        self.retention_s = retention_s
        self.resolution_s = resolution_s
        self._capacity = math.ceil(retention_s / resolution_s) + 1
        self._rings: dict[Slot, Ring] = {}
        self._latest: dict[Slot, MetricSample] = {}
        self._lock = threading.Lock()

    def add(self, samples: Iterable[MetricSample]) -> None:
        """Append samples (oldest first); forget variants silent for the whole retention."""
        newest = -math.inf
        with self._lock:
            for sample in samples:
                key = (sample.endpoint, sample.variant)
                ring = self._rings.get(key)
                if ring is None:
                    ring = self._rings[key] = Ring(self._capacity)
                ring.append(sample)
                self._latest[key] = sample
                newest = max(newest, sample.time_s)
            for key, ring in list(self._rings.items()):
                if ring.newest_s() < newest - self.retention_s:
                    del self._rings[key], self._latest[key]

    def latest(self) -> dict[Slot, MetricSample]:
        with self._lock:
            return dict(self._latest)

    def points(self, endpoint: str, since_s: float, names: Sequence[str]) -> Points:
        found: Points = {}
        with self._lock:
            for (ring_endpoint, variant), ring in sorted(self._rings.items()):
                if ring_endpoint == endpoint:
                    for name, points in ring.window(since_s, names).items():
                        found[(variant, name)] = points
        return found

    def variants(self) -> int:
        with self._lock:
            return len(self._rings)


class StoredHistory:
    """A :class:`HistoryView` over the registry's copy of the history."""

    def __init__(self, history: MetricHistory) -> None:
        self._history = history

    def latest(self) -> dict[Slot, MetricSample]:
        return {(s.endpoint, s.variant): s for s in self._history.latest()}

    def points(self, endpoint: str, since_s: float, names: Sequence[str]) -> Points:
        found: Points = {}
        samples = self._history.since(since_s, endpoint)
        for variant in sorted({s.variant for s in samples}):
            mine = [s for s in samples if s.variant == variant]
            for name in names:
                found[(variant, name)] = [
                    (s.time_s, s.values[name]) for s in mine if name in s.values
                ]
        return found


def downsample(points: Points, step_s: float) -> Points:
    """One point per ``step_s`` bucket: the peak of :data:`PEAK_SERIES`, the mean of the rest.

    Buckets are aligned to multiples of ``step_s`` since the epoch, so two reads a few
    seconds apart share their buckets; each point takes the time of its bucket's newest
    sample, so the newest point of a window stays where it was measured.
    """
    thinned: Points = {}
    for (variant, name), series in points.items():
        peak = name in PEAK_SERIES
        buckets: list[tuple[float, float]] = []
        bucket, count = math.nan, 0
        for at_s, value in series:
            index = math.floor(at_s / step_s)
            if buckets and index == bucket:
                last = buckets[-1][1]
                merged = max(last, value) if peak else last + (value - last) / (count + 1)
                buckets[-1] = (at_s, merged)
                count += 1
            else:
                buckets.append((at_s, value))
                bucket, count = index, 1
        thinned[(variant, name)] = buckets
    return thinned
