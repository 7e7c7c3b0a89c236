"""Alert rules and their evaluation: one pure function of (rules, samples, state).

A rule holds for a variant when its series compares with the threshold as it says, on at
least ``min_samples`` observations (labelled rows, input rows, requests; fewer is no
judgement yet); once it has held for ``for_s`` (on the monotonic clock), the alert fires;
when it stops holding — the value went back, the series has no data, the rule was disabled
or removed, the variant is gone — it resolves. :func:`evaluate` takes the state of the last
evaluation and returns the next one with what fired and what resolved; the monitor records
those and calls the webhooks. Every endpoint has the defaults below; users add their own
rules, and a stored rule with a default's name overrides (or, with ``enabled: false``,
disables) it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ferryman.errors import Conflict
from ferryman.registry import AlertChange, AlertLevel, AlertRecord, AlertRule, MetricSample

AlertKey = tuple[str, str, str]
"""(rule, endpoint, variant)"""

MIN_INPUT_ROWS = 200
"""Input drift needs this many rows. PSI over 10 bins from n rows reads about 9/n when
nothing drifted (sampling noise alone): 0.45 from 20 rows, 0.045 from 200, a quarter of
the 0.2 threshold. A canary's first seconds bring a handful of rows and used to fire."""
MIN_LABELLED = 50
"""Accuracy needs this many labels. A model right 97% of the time reads below 0.9 from 50
labels with probability 0.002 (six or more misses), and from one label 3% of the time:
one wrong label made accuracy 0 and paged someone."""

DEFAULT_RULES = (
    AlertRule(
        name="p99-latency", series="p99_ms", comparison=">", threshold=200.0, for_s=120.0,
        level=AlertLevel.WARNING, description="p99 latency above 200 ms for 2 minutes",
    ),
    AlertRule(
        name="error-rate", series="error_rate", comparison=">", threshold=0.01,
        level=AlertLevel.CRITICAL, description="more than 1% of answers are 5xx",
    ),
    AlertRule(
        name="input-drift", series="input_drift_psi", comparison=">", threshold=0.2,
        min_samples=MIN_INPUT_ROWS, level=AlertLevel.WARNING,
        description="inputs drifted from the training data (PSI, over 200 rows or more)",
    ),
    AlertRule(
        name="accuracy", series="accuracy", comparison="<", threshold=0.9,
        min_samples=MIN_LABELLED, level=AlertLevel.CRITICAL,
        description="accuracy from feedback labels below 0.9 (over 50 labels or more)",
    ),
    AlertRule(
        name="replica-restarts", series="restarts_10m", comparison=">", threshold=3.0,
        level=AlertLevel.CRITICAL, description="more than 3 replica restarts in 10 minutes",
    ),
)  # fmt: skip

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}  # fmt: skip


class RuleListing(AlertRule):
    """A rule as listed: whether it is a default, and whether a stored rule overrides it."""

    default: bool
    overridden: bool


def effective_rules(stored: Sequence[AlertRule]) -> list[AlertRule]:
    """The defaults, each replaced by a stored rule of its name, then the users' own rules."""
    by_name = {rule.name: rule for rule in stored}
    defaults = [by_name.pop(rule.name, rule) for rule in DEFAULT_RULES]
    return defaults + sorted(by_name.values(), key=lambda rule: rule.name)


def rule_listing(stored: Sequence[AlertRule]) -> list[RuleListing]:
    default_names = {rule.name for rule in DEFAULT_RULES}
    stored_names = {rule.name for rule in stored}
    return [
        RuleListing(
            **rule.model_dump(),
            default=rule.name in default_names,
            overridden=rule.name in default_names and rule.name in stored_names,
        )
        for rule in effective_rules(stored)
    ]


def check_removable(name: str, stored: Sequence[AlertRule]) -> None:
    """A default rule cannot be removed, only overridden or disabled: Conflict if asked."""
    if name in {rule.name for rule in DEFAULT_RULES} and name not in {r.name for r in stored}:
        raise Conflict(
            f"{name!r} is a default rule and cannot be removed; disable it instead "
            f'(PUT /api/v1/alert-rules/{name} with "enabled": false, or '
            f"ferryman alerts set-rule {name} ... --disable)"
        )


@dataclass(frozen=True)
class AlertState:
    """What one evaluation hands the next: rules holding but not yet long enough, and
    alerts firing."""

    pending_since_s: Mapping[AlertKey, float] = field(default_factory=dict)
    firing: Mapping[AlertKey, AlertChange] = field(default_factory=dict)

    @classmethod
    def of_firing(cls, alerts: Sequence[AlertRecord]) -> AlertState:
        """The state after a restart: the alerts the registry has firing, nothing pending."""
        firing = {
            (a.rule, a.endpoint, a.variant): AlertChange(
                rule=a.rule, level=a.level, endpoint=a.endpoint, variant=a.variant,
                value=a.value, threshold=a.threshold, message=a.message,
            )
            for a in alerts
        }  # fmt: skip
        return cls(firing=firing)


@dataclass(frozen=True)
class Evaluation:
    state: AlertState
    fired: list[AlertChange]
    resolved: list[AlertChange]


def evaluate(
    rules: Sequence[AlertRule], samples: Sequence[MetricSample], state: AlertState, now_s: float
) -> Evaluation:
    """Which alerts fire and which resolve, given the newest sample of every variant."""
    pending: dict[AlertKey, float] = {}
    firing: dict[AlertKey, AlertChange] = {}
    fired: list[AlertChange] = []
    for rule in rules:
        if not rule.enabled:
            continue
        for sample in samples:
            if rule.endpoint is not None and rule.endpoint != sample.endpoint:
                continue
            key = (rule.name, sample.endpoint, sample.variant)
            value = sample.values.get(rule.series)
            if value is None or not _COMPARE[rule.comparison](value, rule.threshold):
                continue
            if sample.sizes.get(rule.series, math.inf) < rule.min_samples:
                continue  # too few observations to judge: the rule does not hold (yet)
            if key in state.firing:
                firing[key] = state.firing[key]
                continue
            since_s = state.pending_since_s.get(key, now_s)
            if now_s - since_s >= rule.for_s:
                firing[key] = _change(rule, sample, value, _fired_message(rule, sample, value))
                fired.append(firing[key])
            else:
                pending[key] = since_s
    resolved = [
        _resolution(change, _value_now(rules, samples, key))
        for key, change in state.firing.items()
        if key not in firing
    ]
    return Evaluation(AlertState(pending, firing), fired, resolved)


def _change(rule: AlertRule, sample: MetricSample, value: float, message: str) -> AlertChange:
    return AlertChange(
        rule=rule.name, level=rule.level, endpoint=sample.endpoint, variant=sample.variant,
        value=value, threshold=rule.threshold, message=message,
    )  # fmt: skip


def _fired_message(rule: AlertRule, sample: MetricSample, value: float) -> str:
    held = f" for {rule.for_s:g} s" if rule.for_s else ""
    size = sample.sizes.get(rule.series)
    held += f" over {size:g} samples" if size is not None and rule.min_samples else ""
    where = f"{sample.endpoint}/{sample.variant}"
    return f"{where}: {rule.series} is {value:.4g} ({rule.comparison} {rule.threshold:g}{held})"


def _value_now(
    rules: Sequence[AlertRule], samples: Sequence[MetricSample], key: AlertKey
) -> tuple[AlertRule | None, float | None]:
    rule = next((r for r in rules if r.name == key[0] and r.enabled), None)
    sample = next((s for s in samples if (s.endpoint, s.variant) == key[1:]), None)
    if rule is None or sample is None:
        return rule, None
    return rule, sample.values.get(rule.series)


def _resolution(change: AlertChange, now: tuple[AlertRule | None, float | None]) -> AlertChange:
    rule, value = now
    where = f"{change.endpoint}/{change.variant}"
    if rule is None:
        message = f"{where}: resolved, the rule was removed or disabled"
    elif value is None:
        message = f"{where}: resolved, {rule.series} has no data now (or the variant is gone)"
    else:
        bound = f"{rule.comparison} {rule.threshold:g}"
        message = f"{where}: resolved, {rule.series} is {value:.4g} (no longer {bound})"
    return change.model_copy(update={"value": value, "message": message})
