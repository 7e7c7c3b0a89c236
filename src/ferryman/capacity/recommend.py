"""The cheapest way to carry a load: a pure function of capacity results and a catalogue.

A candidate is one measured serving configuration on one instance shape. A replica needs the
cores it used at its capacity (at least one; its intra-op threads when its CPU is unknown)
and its resident memory; an instance holds as many replicas as both allow. The load to carry
is the asked rate plus headroom; replicas = ceil(load / capacity of one replica), instances =
ceil(replicas / replicas per instance), cost = instances x price per hour.

Ranking (ties broken in this order): lower cost per hour, fewer replicas, more spare
capacity, lower measured p99, then names (variant, batch size, delay, threads, shape).
Runners-up are the best candidates of the other configurations, so they say why another
variant or batching loses, not merely that a bigger machine costs more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ferryman.capacity.catalogue import InstanceShape
from ferryman.errors import InvalidInput
from ferryman.registry import CapacityResult, ServingConfig
from ferryman.registry.records import Record

RUNNERS_UP = 2


class Candidate(Record):
    config: ServingConfig
    shape: InstanceShape
    replica_qps: float
    p99_ms: float | None
    cores_per_replica: int
    replicas_per_instance: int
    replicas: int
    instances: int
    cost_per_hour: float
    spare_qps: float


class RunnerUp(Record):
    candidate: Candidate
    why: str


class Recommendation(Record):
    qps: float
    p99_target_ms: float
    headroom: float
    needed_qps: float
    best: Candidate
    runners_up: tuple[RunnerUp, ...]


class AutoscaleBounds(Record):
    p95_qps: float
    peak_qps: float
    min_replicas: int
    max_replicas: int


def recommend(
    results: Sequence[CapacityResult],
    shapes: Sequence[InstanceShape],
    qps: float,
    p99_target_ms: float,
    headroom: float = 0.3,
) -> Recommendation:
    """The cheapest candidate that carries ``qps x (1 + headroom)`` at p99 ≤ the target.

    >>> from ferryman.registry import ServingConfig
    >>> r = CapacityResult(config=ServingConfig(variant="onnx-int8", max_batch_size=8,
    ...     max_delay_ms=2, intra_op_threads=1), p99_target_ms=50, max_qps=100,
    ...     cpu_pct=90, rss_bytes=2**28, stop_reason="", cpu_count=2)
    >>> s = InstanceShape(name="small", vcpus=2, memory_gib=4, price_per_hour=0.1)
    >>> recommend([r], [s], qps=300, p99_target_ms=50).best.instances
    2
    """
    if qps <= 0 or p99_target_ms <= 0 or headroom < 0:
        raise InvalidInput(
            f"qps {qps:g} and p99 {p99_target_ms:g} ms must be positive and headroom "
            f"{headroom:g} at least 0 (e.g. --qps 200 --p99-ms 50 --headroom 0.3)"
        )
    needed_qps = qps * (1 + headroom)
    usable = _usable(results, p99_target_ms)
    candidates = sorted(
        (c for r in usable for s in shapes if (c := _candidate(r, s, needed_qps)) is not None),
        key=_rank,
    )
    if not candidates:
        raise InvalidInput(_no_fit(usable, shapes))
    best = candidates[0]
    others: list[Candidate] = []
    for candidate in candidates[1:]:
        if candidate.config != best.config and all(o.config != candidate.config for o in others):
            others.append(candidate)
    return Recommendation(
        qps=qps,
        p99_target_ms=p99_target_ms,
        headroom=headroom,
        needed_qps=needed_qps,
        best=best,
        runners_up=tuple(
            RunnerUp(candidate=o, why=why_it_loses(o, best)) for o in others[:RUNNERS_UP]
        ),
    )


def why_it_loses(other: Candidate, best: Candidate) -> str:
    """The first ranking rule on which ``other`` is worse than ``best``, in words."""
    if other.cost_per_hour > best.cost_per_hour:
        more = other.cost_per_hour - best.cost_per_hour
        return (
            f"costs {more:.4g}/h more: {other.replicas} replicas of {other.replica_qps:g} qps "
            f"need {other.instances} x {other.shape.name}"
        )
    if other.replicas > best.replicas:
        return f"same cost, but {other.replicas} replicas instead of {best.replicas}"
    if other.spare_qps < best.spare_qps:
        return (
            f"same cost and replicas, but {other.spare_qps:.0f} qps spare instead of "
            f"{best.spare_qps:.0f}"
        )
    return "ties on cost, replicas and spare capacity; loses on p99, then by name"


def autoscale_bounds(
    endpoint_qps: Sequence[float], replica_qps: float, headroom: float = 0.3
) -> AutoscaleBounds:
    """min replicas for the p95 rate, max for the peak, each with headroom."""
    if not endpoint_qps:
        raise InvalidInput(
            "the endpoint has no traffic history to size the autoscaler from; let the control "
            "plane run with traffic, or leave out --autoscale"
        )
    rates = np.asarray(endpoint_qps, dtype=np.float64)
    p95, peak = float(np.percentile(rates, 95)), float(rates.max())
    low = max(1, math.ceil(p95 * (1 + headroom) / replica_qps))
    high = max(low, math.ceil(peak * (1 + headroom) / replica_qps))
    return AutoscaleBounds(p95_qps=p95, peak_qps=peak, min_replicas=low, max_replicas=high)


def _usable(results: Sequence[CapacityResult], p99_target_ms: float) -> list[CapacityResult]:
    """Results measured against this target or a stricter one, that carried some rate."""
    if not results:
        raise InvalidInput("no capacity results for this version; run `ferryman capacity` first")
    within = [r for r in results if r.p99_target_ms <= p99_target_ms]
    if not within:
        closest = min(results, key=lambda r: r.p99_target_ms)
        raise InvalidInput(
            f"no capacity was measured at a p99 target of {p99_target_ms:g} ms or stricter; "
            f"the closest, {closest.config.describe()}, was measured at "
            f"{closest.p99_target_ms:g} ms; run "
            f"`ferryman capacity MODEL@VERSION --p99-ms {p99_target_ms:g}`"
        )
    carried = [r for r in within if r.max_qps > 0]
    if not carried:
        closest = within[0]
        raise InvalidInput(
            f"no measured configuration carried any rate at p99 ≤ {p99_target_ms:g} ms; "
            f"e.g. {closest.config.describe()}: {closest.stop_reason}"
        )
    return carried


def _cores(result: CapacityResult) -> int:
    if result.cpu_pct is not None:
        return max(1, math.ceil(result.cpu_pct / 100 - 1e-9))
    return max(1, result.config.intra_op_threads or result.cpu_count)


def _candidate(result: CapacityResult, shape: InstanceShape, needed_qps: float) -> Candidate | None:
    cores = _cores(result)
    per_instance = shape.vcpus // cores
    if result.rss_bytes:
        per_instance = min(per_instance, int(shape.memory_bytes // result.rss_bytes))
    if per_instance < 1:
        return None
    replicas = math.ceil(needed_qps / result.max_qps - 1e-9)
    instances = math.ceil(replicas / per_instance)
    return Candidate(
        config=result.config,
        shape=shape,
        replica_qps=result.max_qps,
        p99_ms=result.p99_ms,
        cores_per_replica=cores,
        replicas_per_instance=per_instance,
        replicas=replicas,
        instances=instances,
        cost_per_hour=instances * shape.price_per_hour,
        spare_qps=replicas * result.max_qps - needed_qps,
    )


def _rank(c: Candidate) -> tuple[float, int, float, float, str, int, float, int, str]:
    cfg = c.config
    return (
        round(c.cost_per_hour, 9),
        c.replicas,
        -c.spare_qps,
        c.p99_ms if c.p99_ms is not None else math.inf,
        cfg.variant,
        cfg.max_batch_size,
        cfg.max_delay_ms,
        cfg.intra_op_threads,
        c.shape.name,
    )


def _no_fit(usable: Sequence[CapacityResult], shapes: Sequence[InstanceShape]) -> str:
    smallest = min(usable, key=lambda r: (_cores(r), r.rss_bytes or 0))
    gib = (smallest.rss_bytes or 0) / 1024**3
    biggest = max(shapes, key=lambda s: (s.vcpus, s.memory_gib), default=None)
    largest = (
        f"{biggest.name} ({biggest.vcpus} vCPUs, {biggest.memory_gib:g} GiB)" if biggest else "none"
    )
    return (
        f"no instance shape in the catalogue holds one replica; the smallest, "
        f"{smallest.config.describe()}, needs {_cores(smallest)} core(s) and {gib:.2f} GiB; the "
        f"largest shape is {largest}: add a bigger shape to the catalogue"
    )
