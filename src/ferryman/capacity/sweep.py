"""The capacity sweep: each serving configuration of each variant, at rising open-loop rates.

For one configuration the rate grows by ``rate_factor`` from ``start_qps`` until a step is not
carried (an error, < 99% achieved, or p99 over the target), then bisects between the last rate
carried and the first one not carried ``refine_steps`` times. The highest rate carried is the
configuration's capacity, with the replica's CPU and memory during that step.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from ferryman.capacity.load import is_carried, open_loop, why_not_carried
from ferryman.capacity.replica import Usage, running_replica
from ferryman.config import Settings
from ferryman.errors import InvalidInput
from ferryman.reference import ReferenceData
from ferryman.registry import (
    CapacityResult,
    LoadStep,
    Registry,
    ServingConfig,
    VariantStatus,
)
from ferryman.registry.records import Record

MAX_CONFIGURATIONS = 64
BASE_VARIANT = "onnx"
"""The variant name of a version's own registered ONNX file (as ``ferryman serve`` says)."""
MAX_REQUESTS_PER_STEP = 50_000


class SweepPlan(Record):
    """What to measure and how hard; the defaults are a small grid for a laptop."""

    p99_target_ms: float = 50.0
    batch_sizes: tuple[int, ...] = (1, 16)
    delays_ms: tuple[float, ...] = (2.0,)
    threads: tuple[int, ...] = (1, 2)
    start_qps: float = 20.0
    rate_factor: float = 2.0
    max_qps: float = 5_000.0
    step_s: float = 3.0
    refine_steps: int = 2

    def configurations(self, variants: Sequence[str]) -> list[ServingConfig]:
        """The grid; a batch of one never waits, so it is measured without a delay."""
        found: dict[tuple[str, int, float, int], ServingConfig] = {}
        for variant, batch, delay_ms, threads in itertools.product(
            variants, self.batch_sizes, self.delays_ms, self.threads
        ):
            wait_ms = 0.0 if batch == 1 else delay_ms
            key = (variant, batch, wait_ms, threads)
            found[key] = ServingConfig(
                variant=variant,
                max_batch_size=batch,
                max_delay_ms=wait_ms,
                intra_op_threads=threads,
            )
        if len(found) > MAX_CONFIGURATIONS:
            raise InvalidInput(
                f"the grid has {len(found)} configurations; at most {MAX_CONFIGURATIONS} are "
                "measured in one sweep: give fewer batch sizes, delays or thread counts"
            )
        return list(found.values())

    def check(self) -> None:
        if self.rate_factor <= 1.0:
            raise InvalidInput(f"rate factor {self.rate_factor:g} must be above 1 (e.g. 2)")
        if not 0 < self.start_qps <= self.max_qps:
            raise InvalidInput(
                f"start rate {self.start_qps:g} qps must be positive and at most the highest "
                f"rate {self.max_qps:g} qps"
            )
        if self.step_s <= 0 or self.p99_target_ms <= 0:
            raise InvalidInput("the step length and the p99 target must be positive")


@dataclass
class SweepTarget:
    """The version measured: where its replicas come from and what they are sent."""

    settings: Settings
    model: str
    version: int
    path: str
    bodies: list[bytes] = field(default_factory=list)


StepSeen = Callable[[ServingConfig, LoadStep], None]


def golden_bodies(reference: ReferenceData | None, model: str, version: int) -> list[bytes]:
    """V2 request bodies of the version's golden requests (their inputs only)."""
    if reference is None or not reference.golden:
        raise InvalidInput(
            f"{model} v{version} has no golden requests to send; register it with reference "
            "data (training does this), or measure a version that has some"
        )
    return [
        json.dumps(
            {
                "inputs": [
                    {
                        "name": name,
                        "shape": list(t.shape),
                        "datatype": t.datatype,
                        "data": list(t.data),
                    }
                    for name, t in golden.inputs.items()
                ]
            }
        ).encode()
        for golden in reference.golden
    ]


async def measure(
    target: SweepTarget, plan: SweepPlan, config: ServingConfig, on_step: StepSeen
) -> CapacityResult:
    """The capacity of one configuration, on a replica of its own."""
    steps: list[LoadStep] = []
    best: tuple[LoadStep, Usage] | None = None
    reason = f"reached the highest rate asked for, {plan.max_qps:g} qps"
    async with running_replica(target.settings, target.model, target.version, config) as replica:
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
        async with httpx.AsyncClient(
            base_url=replica.base_url, limits=limits, timeout=max(10.0, plan.p99_target_ms / 100)
        ) as client:
            low, high = 0.0, None
            rate = plan.start_qps
            refined = 0
            while rate <= plan.max_qps and refined <= plan.refine_steps:
                replica.meter.restart()
                step = await open_loop(
                    client, target.path, target.bodies, rate, duration_s=plan.step_s
                )
                usage = replica.meter.usage()
                steps.append(step)
                on_step(config, step)
                if is_carried(step, plan.p99_target_ms):
                    low, best = rate, (step, usage)
                else:
                    high = rate
                    reason = why_not_carried(step, plan.p99_target_ms)
                if high is None:
                    rate *= plan.rate_factor
                else:
                    refined += 1
                    rate = (low + high) / 2 if low else high / plan.rate_factor
                    if low == 0 and rate < plan.start_qps / plan.rate_factor**2:
                        break
    carried, usage = best if best else (None, Usage(None, None))
    return CapacityResult(
        config=config,
        p99_target_ms=plan.p99_target_ms,
        max_qps=carried.target_qps if carried else 0.0,
        p99_ms=carried.p99_ms if carried else None,
        cpu_pct=usage.cpu_pct,
        rss_bytes=usage.rss_bytes,
        stop_reason=reason,
        steps=tuple(steps),
        cpu_count=os.cpu_count() or 1,
    )


ResultSeen = Callable[[CapacityResult, bool], None]
"""Told each configuration's result, and whether it was measured now (False: stored)."""


@dataclass
class SweepRequest:
    """One ``ferryman capacity`` run: which version, which variants, the plan."""

    model: str
    version: int
    plan: SweepPlan
    variants: tuple[str, ...] = ()
    is_again: bool = False


def variants_to_measure(registry: Registry, request: SweepRequest) -> list[str]:
    """The variants asked for, else every variant that passed its gate (else its own file)."""
    passed = [
        v.kind
        for v in registry.list_variants(request.model, request.version)
        if v.status == VariantStatus.PASSED
    ]
    known = [BASE_VARIANT, *passed]
    for name in request.variants:
        if name not in known:
            raise InvalidInput(
                f"{request.model} v{request.version} has no passed variant {name!r}; "
                f"its variants: {', '.join(known)}"
            )
    return list(request.variants) or passed or [BASE_VARIANT]


async def sweep_version(
    registry: Registry,
    settings: Settings,
    request: SweepRequest,
    on_step: StepSeen,
    on_result: ResultSeen,
) -> list[CapacityResult]:
    """Measure every configuration not yet stored (all of them with ``is_again``), storing each
    result as soon as it is known, so a stopped sweep keeps what it finished."""
    plan = request.plan
    plan.check()
    configs = plan.configurations(variants_to_measure(registry, request))
    reference = registry.get_reference(request.model, request.version)
    target = SweepTarget(
        settings,
        request.model,
        request.version,
        f"/v2/models/{request.model}/infer",
        golden_bodies(reference, request.model, request.version),
    )
    stored = (
        {}
        if request.is_again
        else {
            r.config: r
            for r in registry.capacity.of(request.model, request.version, plan.p99_target_ms)
        }
    )
    results: list[CapacityResult] = []
    for config in configs:
        known = stored.get(config)
        if known is not None:
            results.append(known)
            on_result(known, False)
            continue
        result = await measure(target, plan, config, on_step)
        registry.capacity.put(request.model, request.version, result, settings.user)
        results.append(result)
        on_result(result, True)
    return results
