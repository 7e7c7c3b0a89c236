"""Rollout decisions: analyse a window of traffic, then step, hold, promote or roll back.

Two pure functions. :func:`analyse` judges the candidate's window against the gates:
PASS, FAIL (with every broken gate named) or INCONCLUSIVE when there is too little traffic
to judge — and inconclusive never promotes (RELIABILITY Z5). :func:`decide` turns the
verdict and the rollout's progress into one action:

- FAIL counts a failed check; ``threshold`` failed checks roll back, and so does one that
  found the candidate refusing its clients (4xx above the baseline's): every window of that
  is clients broken, not noise;
- INCONCLUSIVE holds at the current weight;
- PASS steps to the next weight, or promotes after the last one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ferryman.control.metrics.feedback import ModelSignals
from ferryman.control.metrics.traffic import Traffic
from ferryman.control.rollouts.client_errors import refused_more


class Gates(BaseModel):
    """What a candidate must show over each analysis window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_success_rate: float = Field(default=0.99, ge=0, le=1, description="Non-5xx share.")
    max_client_error_rise: float | None = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Most the candidate's share of 4xx answers may exceed the baseline's "
        "(0.05: five points) before it is rolled back at once: its clients send what it "
        "refuses (None: not judged).",
    )
    max_p99_ms: float | None = Field(default=500.0, gt=0, description="Latency bound, p99.")
    max_ttft_p99_ms: float | None = Field(
        default=None,
        gt=0,
        description="Language models: bound on the p99 time to first token of streams, as "
        "the gateway sees it (None: not judged).",
    )
    max_inter_token_p99_ms: float | None = Field(
        default=None,
        gt=0,
        description="Language models: bound on the p99 time between tokens of streams, as "
        "the gateway sees it (None: not judged).",
    )
    min_requests: int = Field(
        default=20, ge=1, description="Fewer requests in a window: inconclusive, hold."
    )
    max_prediction_drift: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Jensen-Shannon divergence of top-1 classes, candidate vs baseline, above "
        "which the rollout holds (None: not judged).",
    )
    min_predictions: int = Field(
        default=100, ge=1, description="Fewer candidate predictions: drift is not judged yet."
    )
    min_accuracy: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Accuracy from feedback labels the candidate must reach (None: not judged).",
    )
    max_accuracy_drop: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Most the candidate's accuracy from feedback may fall below the baseline's "
        "(0.02: two points; None: not judged).",
    )
    min_labelled: int = Field(
        default=50,
        ge=1,
        description="Fewer labelled candidate (or baseline) rows: accuracy is inconclusive, hold.",
    )
    min_thumbs_up_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Language models: share of the candidate's rated completions that must be "
        "thumbs up (None: not judged).",
    )
    max_thumbs_up_drop: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Language models: most the candidate's thumbs-up rate may fall below the "
        "baseline's (0.1: ten points; None: not judged).",
    )
    min_rated: int = Field(
        default=50,
        ge=1,
        description="Fewer rated candidate (or baseline) completions: the thumbs-up rate is "
        "inconclusive, hold.",
    )
    max_input_drift_psi: float | None = Field(
        default=None,
        gt=0,
        description="PSI of live inputs against the candidate's training data above which the "
        "rollout holds (None: not judged).",
    )

    @property
    def judges_accuracy(self) -> bool:
        return self.min_accuracy is not None or self.max_accuracy_drop is not None

    @property
    def judges_thumbs(self) -> bool:
        return self.min_thumbs_up_rate is not None or self.max_thumbs_up_drop is not None


class CanaryPlan(BaseModel):
    """The canary's steps (percent of traffic), pace and patience."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: tuple[int, ...] = Field(
        default=(10, 50, 100),
        min_length=1,
        description="Candidate weights, percent, rising to 100.",
    )
    interval_s: float = Field(default=30.0, gt=0, description="Length of each analysis window.")
    threshold: int = Field(default=3, ge=1, description="Failed checks that roll back.")
    gates: Gates = Field(default_factory=Gates)

    @field_validator("steps")
    @classmethod
    def _rising_to_100(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if list(steps) != sorted(set(steps)) or steps[-1] != 100 or steps[0] <= 0:
            raise ValueError(f"steps {list(steps)} must rise strictly from above 0 to 100")
        return steps


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Drift:
    """How far the candidate's predictions are from the baseline's, over a window."""

    divergence: float
    predictions: float


@dataclass(frozen=True)
class Analysis:
    """A window's verdict, why, and the figures it was judged on (recorded with each event)."""

    verdict: Verdict
    reasons: tuple[str, ...]
    requests: float
    success_rate: float | None
    p99_ms: float | None
    accuracy: float | None = None
    ttft_p99_ms: float | None = None
    inter_token_p99_ms: float | None = None
    labelled: int | None = None
    thumbs_up_rate: float | None = None
    rated: int | None = None
    prediction_drift: float | None = None
    input_drift_psi: float | None = None
    client_error_rate: float | None = None
    baseline_client_error_rate: float | None = None
    breaks_clients: bool = False

    def figures(self) -> dict[str, float | int | str | None]:
        """The verdict and figures as JSON values, rounded for people."""
        return {
            "verdict": self.verdict.value,
            "requests": round(self.requests),
            "success_rate": _rounded(self.success_rate, 4),
            "client_error_rate": _rounded(self.client_error_rate, 4),
            "baseline_client_error_rate": _rounded(self.baseline_client_error_rate, 4),
            "p99_ms": _rounded(self.p99_ms, 1),
            "ttft_p99_ms": _rounded(self.ttft_p99_ms, 1),
            "inter_token_p99_ms": _rounded(self.inter_token_p99_ms, 2),
            "accuracy": _rounded(self.accuracy, 4),
            "labelled": self.labelled,
            "thumbs_up_rate": _rounded(self.thumbs_up_rate, 4),
            "rated": self.rated,
            "prediction_drift": _rounded(self.prediction_drift, 4),
            "input_drift_psi": _rounded(self.input_drift_psi, 4),
        }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def analyse(
    gates: Gates,
    candidate: Traffic,
    drift: Drift | None = None,
    signals: ModelSignals | None = None,
    baseline: Traffic | None = None,
) -> Analysis:
    """Judge one window of the candidate's traffic (and predictions) against ``gates``.

    Errors (5xx), 4xx above the ``baseline``'s (no baseline traffic: above none), latency,
    accuracy from feedback and the thumbs-up rate of completions fail a check; too few
    labels (or ratings) for such a gate hold (never promote unjudged). Prediction drift and
    input drift beyond their gates hold the rollout (inconclusive): a different distribution
    may be a better model or a broken one, and a person should look.
    """
    p99_s = candidate.quantile_s(0.99)
    p99_ms = None if p99_s is None else p99_s * 1000
    signals = signals or ModelSignals()
    figures = Analysis(
        Verdict.INCONCLUSIVE, (), candidate.requests, None, p99_ms,
        accuracy=signals.candidate_accuracy,
        labelled=signals.candidate_labelled if gates.judges_accuracy else None,
        thumbs_up_rate=signals.candidate_thumbs_up_rate,
        rated=signals.candidate_rated if gates.judges_thumbs else None,
        prediction_drift=None if drift is None else drift.divergence,
        input_drift_psi=signals.input_drift_psi,
    )  # fmt: skip
    if candidate.requests < gates.min_requests:
        reason = f"{candidate.requests:.0f} requests < {gates.min_requests}: not enough to judge"
        return replace(figures, reasons=(reason,))
    success = 1 - candidate.error_rate
    baseline = baseline or Traffic()
    figures = replace(
        figures, success_rate=success, client_error_rate=candidate.client_error_rate,
        baseline_client_error_rate=baseline.client_error_rate if baseline.requests else None,
    )  # fmt: skip
    broken = []
    if success < gates.min_success_rate:
        broken.append(f"success rate {success:.3f} < {gates.min_success_rate}")
    limit, least = gates.max_client_error_rise, gates.min_requests
    refused = None if limit is None else refused_more(limit, candidate, baseline, least)
    if refused is not None:
        broken.append(refused)
        figures = replace(figures, breaks_clients=True)
    if gates.max_p99_ms is not None and p99_ms is not None and p99_ms > gates.max_p99_ms:
        broken.append(f"p99 {p99_ms:.0f} ms > {gates.max_p99_ms:.0f} ms")
    figures = _token_latency(gates, candidate, figures, broken)
    unjudged = [*_accuracy_checks(gates, signals, broken), *_thumbs_checks(gates, signals, broken)]
    if broken:
        return replace(figures, verdict=Verdict.FAIL, reasons=tuple(broken))
    holds = [*unjudged, *_drift_holds(gates, drift, signals)]
    verdict = Verdict.INCONCLUSIVE if holds else Verdict.PASS
    return replace(figures, verdict=verdict, reasons=tuple(holds))


def _token_latency(
    gates: Gates, candidate: Traffic, figures: Analysis, broken: list[str]
) -> Analysis:
    """Judge a language model's time to first token and between tokens (when it streams)."""
    ttft_s = candidate.first_token_quantile_s(0.99)
    if ttft_s is not None:
        figures = replace(figures, ttft_p99_ms=ttft_s * 1000)
        limit_ms = gates.max_ttft_p99_ms
        if limit_ms is not None and ttft_s * 1000 > limit_ms:
            broken.append(f"time to first token p99 {ttft_s * 1000:.0f} ms > {limit_ms:.0f} ms")
    gap_s = candidate.inter_token_quantile_s(0.99)
    if gap_s is not None:
        figures = replace(figures, inter_token_p99_ms=gap_s * 1000)
        limit_ms = gates.max_inter_token_p99_ms
        if limit_ms is not None and gap_s * 1000 > limit_ms:
            broken.append(f"inter-token p99 {gap_s * 1000:.1f} ms > {limit_ms:g} ms")
    return figures


def _accuracy_checks(gates: Gates, signals: ModelSignals, broken: list[str]) -> list[str]:
    """Add broken accuracy gates to ``broken``; return why accuracy cannot be judged yet."""
    if not gates.judges_accuracy:
        return []
    labelled, accuracy = signals.candidate_labelled, signals.candidate_accuracy
    if accuracy is None or labelled < gates.min_labelled:
        return [f"{labelled} labelled candidate rows < {gates.min_labelled}: accuracy not judged"]
    if gates.min_accuracy is not None and accuracy < gates.min_accuracy:
        broken.append(f"accuracy {accuracy:.3f} < {gates.min_accuracy} ({labelled} labelled)")
    drop = gates.max_accuracy_drop
    if drop is None:
        return []
    baseline = signals.baseline_accuracy
    if baseline is None or signals.baseline_labelled < gates.min_labelled:
        return [f"{signals.baseline_labelled} labelled baseline rows < {gates.min_labelled}: "
                "accuracy not compared"]  # fmt: skip
    if accuracy < baseline - drop:
        broken.append(
            f"accuracy {accuracy:.3f} < baseline {baseline:.3f} - {drop} "
            f"({labelled} vs {signals.baseline_labelled} labelled)"
        )
    return []


def _thumbs_checks(gates: Gates, signals: ModelSignals, broken: list[str]) -> list[str]:
    """Add broken thumbs-up gates to ``broken``; return why the rate cannot be judged yet."""
    if not gates.judges_thumbs:
        return []
    rated, rate, least = signals.candidate_rated, signals.candidate_thumbs_up_rate, gates.min_rated
    if rate is None or rated < least:
        return [f"{rated} rated candidate completions < {least}: thumbs-up rate not judged"]
    if gates.min_thumbs_up_rate is not None and rate < gates.min_thumbs_up_rate:
        broken.append(f"thumbs-up rate {rate:.3f} < {gates.min_thumbs_up_rate} ({rated} rated)")
    drop = gates.max_thumbs_up_drop
    if drop is None:
        return []
    baseline = signals.baseline_thumbs_up_rate
    if baseline is None or signals.baseline_rated < least:
        return [f"{signals.baseline_rated} rated baseline completions < {least}: thumbs-up "
                "rate not compared"]  # fmt: skip
    if rate < baseline - drop:
        broken.append(
            f"thumbs-up rate {rate:.3f} < baseline {baseline:.3f} - {drop} "
            f"({rated} vs {signals.baseline_rated} rated)"
        )
    return []


def _drift_holds(gates: Gates, drift: Drift | None, signals: ModelSignals) -> list[str]:
    holds = []
    limit = gates.max_prediction_drift
    judged = limit is not None and drift is not None and drift.predictions >= gates.min_predictions
    if judged and drift is not None and limit is not None and drift.divergence > limit:
        holds.append(f"prediction drift {drift.divergence:.2f} > {limit} (Jensen-Shannon)")
    psi_limit, psi = gates.max_input_drift_psi, signals.input_drift_psi
    if psi_limit is not None and psi is not None and psi > psi_limit:
        holds.append(f"input drift PSI {psi:.2f} > {psi_limit} against the training data")
    return holds


class Action(StrEnum):
    STEP = "step"
    HOLD = "hold"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    COMPLETE = "complete"  # end with a report, change nothing (an A/B test, a shadow)


@dataclass(frozen=True)
class Progress:
    """Where a rollout is: the index of its current step and its failed checks so far."""

    step_index: int = 0
    failed_checks: int = 0


@dataclass(frozen=True)
class Decision:
    action: Action
    weight: int
    reason: str


def decide(plan: CanaryPlan, analysis: Analysis, progress: Progress) -> tuple[Decision, Progress]:
    """The action for this window's analysis, and the progress to carry to the next."""
    weight = plan.steps[progress.step_index]
    if analysis.verdict is Verdict.FAIL:
        failed = progress.failed_checks + 1
        why = "; ".join(analysis.reasons)
        if failed >= plan.threshold:
            reason = f"{failed} failed checks (threshold {plan.threshold}): {why}"
            return Decision(Action.ROLLBACK, 0, reason), replace(progress, failed_checks=failed)
        if analysis.breaks_clients:
            reason = f"clients refused, rolled back at once (failed check {failed}/"
            reason += f"{plan.threshold}): {why}"
            return Decision(Action.ROLLBACK, 0, reason), replace(progress, failed_checks=failed)
        reason = f"failed check {failed}/{plan.threshold}: {why}"
        return Decision(Action.HOLD, weight, reason), replace(progress, failed_checks=failed)
    if analysis.verdict is Verdict.INCONCLUSIVE:
        return Decision(Action.HOLD, weight, "inconclusive: " + analysis.reasons[0]), progress
    if progress.step_index == len(plan.steps) - 1:
        return Decision(Action.PROMOTE, 100, f"passed at {weight}%"), progress
    following = progress.step_index + 1
    reason = f"passed at {weight}%: {analysis.requests:.0f} requests, gates met"
    return Decision(Action.STEP, plan.steps[following], reason), replace(
        progress, step_index=following
    )
