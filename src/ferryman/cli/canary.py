"""The canary plan's command-line options, shared by ``rollout start`` and ``policy set``."""

from __future__ import annotations

from typing import Annotated

import typer

from ferryman.control.rollout import CanaryPlan, Gates
from ferryman.errors import InvalidInput

Steps = Annotated[str, typer.Option(help="Candidate weights, percent.")]
Interval = Annotated[float, typer.Option("--interval", help="Analysis window, s.")]
Threshold = Annotated[int, typer.Option(help="Failed checks that roll back.")]
MinSuccessRate = Annotated[float, typer.Option(help="Gate: non-5xx share.")]
MaxP99 = Annotated[float, typer.Option(help="Gate: p99 latency, ms.")]
MinRequests = Annotated[int, typer.Option(help="Fewer per window: hold.")]
MaxDrift = Annotated[
    float | None, typer.Option(help="Gate: JS divergence of top-1 classes; above: hold.")
]
MinPredictions = Annotated[int, typer.Option(help="Drift judged from this many.")]


def canary_plan(
    *,
    steps: str,
    interval_s: float,
    threshold: int,
    min_success_rate: float,
    max_p99_ms: float,
    min_requests: int,
    max_prediction_drift: float | None,
    min_predictions: int,
) -> CanaryPlan:
    """The plan the options describe; a malformed value is a one-line error."""
    gates = Gates(
        min_success_rate=min_success_rate,
        max_p99_ms=max_p99_ms,
        min_requests=min_requests,
        max_prediction_drift=max_prediction_drift,
        min_predictions=min_predictions,
    )
    return CanaryPlan(
        steps=parse_steps(steps), interval_s=interval_s, threshold=threshold, gates=gates
    )


def parse_steps(text: str) -> tuple[int, ...]:
    """``"10,50,100"`` → (10, 50, 100); anything else is a clear error."""
    try:
        return tuple(int(step) for step in text.split(","))
    except ValueError:
        raise InvalidInput(f"--steps {text!r} is not a list of numbers like 10,50,100") from None
