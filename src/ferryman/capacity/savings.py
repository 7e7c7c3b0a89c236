"""What scale-to-zero and INT8 saved over a window, from the same held spans as the cost.

**Scale-to-zero.** A variant at zero replicas (none ready and none desired: the control plane
chose zero, a crashed variant is not a saving) for ``zero_s`` seconds saved what one replica
would have cost over them, the least an endpoint with ``min_replicas >= 1`` keeps up::

    saved = zero_s / 3600 x price_per_hour

**INT8.** For every held span of an INT8 variant that served ``qps`` requests per second, an
fp32 variant would have needed ``ceil(qps / fp32_qps)`` replicas where the INT8 one needs
``ceil(qps / int8_qps)``, each rate the highest one replica of that variant carried within
the same p99 target in the stored capacity results (the best configuration of each). The
saving is the difference in replica-seconds, priced::

    saved = sum(span_s x (ceil(qps / fp32_qps) - ceil(qps / int8_qps))) / 3600 x price

Both sides are sized by the same rule (enough replicas at measured capacity, no headroom),
so the figure is what INT8 itself saved, not what the autoscaler's settings added. It is
negative when INT8 carried less. Without capacity results for both variants at a common p99
target the saving is unknown, and the note says which result is missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ferryman.capacity.spend import Span
from ferryman.registry import CapacityResult
from ferryman.registry.records import Record

FP32_KINDS = ("onnx-fp32", "onnx")
"""Capacity results that stand for fp32: the exported fp32 variant, else the version's own
ONNX file (which is fp32)."""


class VariantSavings(Record):
    endpoint: str
    variant: str
    scaled_to_zero_s: float
    scale_to_zero_saved: float
    int8_saved: float | None
    """None: not an INT8 variant, or unknown (``int8_note`` says why)."""
    int8_note: str


def scale_to_zero_saved(zero_s: float, price_per_hour: float) -> float:
    """One replica's price over the seconds at zero.

    >>> scale_to_zero_saved(7200, 0.25)
    0.5
    """
    return zero_s / 3600 * price_per_hour


def is_int8(kind: str) -> bool:
    """Whether a variant kind is quantised to INT8 (``onnx-int8``)."""
    return "int8" in kind


def int8_saved_replica_seconds(held: Iterable[Span], int8_qps: float, fp32_qps: float) -> float:
    """Replica-seconds fp32 would have needed beyond INT8 for the requests of ``held``.

    30 qps for 100 s and 90 qps for 50 s, with INT8 carrying 40 qps a replica and fp32 20:
    fp32 needs 2 then 5 replicas, INT8 1 then 3, so 100 x 1 + 50 x 2 = 200 replica-seconds.

    >>> h = [Span("e", "v1-onnx-int8", 0, 100, 1, 30.0),
    ...      Span("e", "v1-onnx-int8", 100, 150, 3, 90.0)]
    >>> int8_saved_replica_seconds(h, int8_qps=40, fp32_qps=20)
    200.0
    """
    saved = 0.0
    for span in held:
        if span.qps is None or span.qps <= 0:
            continue
        fp32 = math.ceil(span.qps / fp32_qps - 1e-9)
        int8 = math.ceil(span.qps / int8_qps - 1e-9)
        saved += (fp32 - int8) * span.seconds
    return saved


def matched_capacities(
    results: Sequence[CapacityResult], int8_kind: str
) -> tuple[float, float] | str:
    """(INT8 qps, fp32 qps) per replica at the strictest p99 target both were measured at;
    else why not, in words."""
    int8 = [r for r in results if r.config.variant == int8_kind and r.max_qps > 0]
    fp32 = [r for r in results if r.config.variant in FP32_KINDS and r.max_qps > 0]
    if not fp32:
        return "unknown: no capacity result for fp32 (run `ferryman capacity` on the version)"
    if not int8:
        return f"unknown: no capacity result for {int8_kind}"
    common = sorted({r.p99_target_ms for r in int8} & {r.p99_target_ms for r in fp32})
    if not common:
        return "unknown: fp32 and INT8 capacity were measured at different p99 targets"
    target = common[0]
    best_int8 = max(r.max_qps for r in int8 if r.p99_target_ms == target)
    best_fp32 = max(r.max_qps for r in fp32 if r.p99_target_ms == target)
    return best_int8, best_fp32
