"""What the rollout controller sees: snapshots of traffic and predictions, and what a window
of them says about a rollout's candidate.

Counters only grow, so a window is the difference of two snapshots. Snapshots are taken on
the controller's monotonic clock and live in memory: after a restart windows start afresh.
The sources are plain callables the control loop wires to the gateway's and the replicas'
metrics, the reconciler's view of replica pools and the feedback log; tests pass scripted
ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ferryman.control.analysis.drift import Classes, grown, jensen_shannon
from ferryman.control.analysis.significance import Arm
from ferryman.control.metrics.feedback import ModelSignals
from ferryman.control.metrics.traffic import Traffic, grown_since, window
from ferryman.control.rollouts.bluegreen import Pool
from ferryman.control.rollouts.client_errors import refused_more
from ferryman.control.rollouts.gates import Analysis, Drift, Gates, Verdict, analyse
from ferryman.control.rollouts.shadow import Mirror
from ferryman.registry import RolloutRecord, VariantSpec
from ferryman.types import Slot

TrafficSource = Callable[[], dict[Slot, Traffic] | None]
"""The gateway's traffic totals now, or None when they cannot be read."""
PredictionSource = Callable[[], dict[Slot, Classes]]
"""Top-1 class counts per (endpoint, variant), summed over its ready replicas."""
SignalSource = Callable[[RolloutRecord], ModelSignals]
"""Accuracy from feedback and input drift of a rollout's candidate and baseline."""
AccuracySource = Callable[[RolloutRecord, datetime | None], dict[str, tuple[float, float]]]
"""(labelled, correct) rows of the rollout's two variants since a time, by variant name."""
PoolSource = Callable[[], dict[Slot, tuple[int, int]]]
"""(ready replicas, failed starts since the last ready one) per (endpoint, variant)."""
ReplicaSource = Callable[[], dict[Slot, Traffic]]
"""Each variant's own totals, summed over its replicas (a shadow's requests and latency)."""


MIN_REQUESTS = Gates().min_requests
"""Fewest candidate requests in a window whose 4xx share an A/B test's guard judges."""


def _nothing() -> dict[Slot, Classes]:
    return {}


@dataclass(frozen=True)
class Sources:
    """Where the controller looks. Only ``traffic`` is required."""

    traffic: TrafficSource
    predictions: PredictionSource = _nothing
    signals: SignalSource | None = None
    accuracy: AccuracySource | None = None
    pools: PoolSource | None = None
    replicas: ReplicaSource | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything the controller counts, read at one moment of the monotonic clock."""

    at_s: float
    totals: dict[Slot, Traffic] | None
    classes: dict[Slot, Classes] = field(default_factory=dict)
    replicas: dict[Slot, Traffic] = field(default_factory=dict)


class Observer:
    def __init__(self, sources: Sources) -> None:
        self._sources = sources

    def snapshot(self, now_s: float, with_replicas: bool = False) -> Snapshot:
        sources = self._sources
        replicas = sources.replicas() if with_replicas and sources.replicas else {}
        return Snapshot(now_s, sources.traffic(), sources.predictions(), replicas)

    def analysis(
        self, rollout: RolloutRecord, gates: Gates, opened: Snapshot, closing: Snapshot
    ) -> Analysis:
        """The candidate's window judged against ``gates`` (no metrics: inconclusive)."""
        if opened.totals is None or closing.totals is None:
            return Analysis(Verdict.INCONCLUSIVE, ("metrics unavailable",), 0, None, None)
        windowed = window(closing.totals, opened.totals)
        candidate = windowed.get((rollout.endpoint, rollout.candidate.name), Traffic())
        baseline = _reference(rollout, windowed, closing.totals, gates.min_requests)
        wants_signals = (
            gates.judges_accuracy or gates.judges_thumbs or gates.max_input_drift_psi is not None
        )
        signals = self._sources.signals
        model = signals(rollout) if wants_signals and signals else None
        return analyse(gates, candidate, _drift(rollout, opened, closing), model, baseline)

    def clients_refused(
        self, rollout: RolloutRecord, limit: float, opened: Snapshot, closing: Snapshot
    ) -> str | None:
        """Why the candidate refused more clients than the baseline over the window, or None
        (an A/B test's guard: both arms serve clients)."""
        if opened.totals is None or closing.totals is None:
            return None
        windowed = window(closing.totals, opened.totals)
        candidate = windowed.get((rollout.endpoint, rollout.candidate.name), Traffic())
        baseline = _reference(rollout, windowed, closing.totals, MIN_REQUESTS)
        return refused_more(limit, candidate, baseline, MIN_REQUESTS)

    def ready(self, endpoint: str, variant: VariantSpec) -> int:
        """Ready replicas of ``variant`` as the reconciler sees them (none known: 0)."""
        return self._replicas(endpoint, variant)[0]

    def pool(self, rollout: RolloutRecord, wanted: int) -> Pool:
        """The candidate's replicas as the reconciler sees them (none known: none ready)."""
        ready, failures = self._replicas(rollout.endpoint, rollout.candidate)
        return Pool(wanted=wanted, ready=ready, failures=failures)

    def _replicas(self, endpoint: str, variant: VariantSpec) -> tuple[int, int]:
        """(ready, failed since last ready) of ``variant``; (0, 0) when none are known."""
        found = self._sources.pools() if self._sources.pools else {}
        return found.get((endpoint, variant.name), (0, 0))

    def success_arms(
        self, rollout: RolloutRecord, began: dict[str, list[float]], now: Snapshot
    ) -> tuple[Arm, Arm] | None:
        """(baseline, candidate) answers without a 5xx per request since ``began``."""
        if now.totals is None:
            return None
        arms = []
        for variant in (rollout.baseline, rollout.candidate):
            start = began.get(variant.name, [0.0, 0.0])
            before = Traffic(start[0], start[1])
            seen = grown_since(now.totals.get((rollout.endpoint, variant.name), Traffic()), before)
            arms.append(Arm(seen.requests, seen.requests - seen.errors))
        return arms[0], arms[1]

    def accuracy_arms(self, rollout: RolloutRecord, since: datetime | None) -> tuple[Arm, Arm]:
        """(baseline, candidate) correct answers per feedback label since ``since``."""
        source = self._sources.accuracy
        found = source(rollout, since) if source else {}
        arms = [Arm(*found.get(v.name, (0.0, 0.0))) for v in (rollout.baseline, rollout.candidate)]
        return arms[0], arms[1]

    def mirror(self, rollout: RolloutRecord, began: Snapshot, now: Snapshot) -> Mirror:
        """What the shadow did between two snapshots."""
        key = (rollout.endpoint, rollout.candidate.name)
        gateway = grown_since(
            (now.totals or {}).get(key, Traffic()), (began.totals or {}).get(key, Traffic())
        )
        replicas = grown_since(now.replicas.get(key, Traffic()), began.replicas.get(key, Traffic()))
        return Mirror(outcomes=gateway.shadow, replicas=replicas)


def totals_of(rollout: RolloutRecord, snapshot: Snapshot) -> dict[str, list[float]]:
    """[requests, errors] of both variants now, to count an A/B test's arms from (persisted)."""
    totals = snapshot.totals or {}
    found = {}
    for variant in (rollout.baseline, rollout.candidate):
        seen = totals.get((rollout.endpoint, variant.name), Traffic())
        found[variant.name] = [seen.requests, seen.errors]
    return found


def _reference(
    rollout: RolloutRecord, windowed: dict[Slot, Traffic], totals: dict[Slot, Traffic],
    min_requests: int,
) -> Traffic:  # fmt: skip
    """The baseline's traffic to hold the candidate's 4xx share against: the window's, or —
    when it served too little in it (a blue-green's old pool during the bake) — all it has
    served since the gateway started."""
    key = (rollout.endpoint, rollout.baseline.name)
    served = windowed.get(key, Traffic())
    return served if served.requests >= min_requests else totals.get(key, Traffic())


def _drift(rollout: RolloutRecord, opened: Snapshot, closing: Snapshot) -> Drift | None:
    """The candidate's prediction drift from the baseline over the window, if both answered."""
    by_variant = {
        name: grown(closing.classes.get((rollout.endpoint, name), {}),
                    opened.classes.get((rollout.endpoint, name), {}))
        for name in (rollout.candidate.name, rollout.baseline.name)
    }  # fmt: skip
    candidate, baseline = by_variant[rollout.candidate.name], by_variant[rollout.baseline.name]
    if not sum(candidate.values()) or not sum(baseline.values()):
        return None
    return Drift(jensen_shannon(candidate, baseline), sum(candidate.values()))
