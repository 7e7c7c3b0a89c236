"""The metric history and the alerts in the registry, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ferryman.errors import InvalidInput, NotFound
from ferryman.registry import (
    AlertChange,
    AlertLevel,
    AlertStatus,
    Database,
    MetricSample,
    Registry,
    RuleSpec,
)
from ferryman.registry.history import MetricHistory


def sample(
    at: datetime, variant: str = "v1", endpoint: str = "digits", **values: float
) -> MetricSample:
    return MetricSample(time_s=at.timestamp(), endpoint=endpoint, variant=variant, values=values)


def test_history_keeps_samples_and_forgets_past_the_retention(database: Database) -> None:
    now = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)
    history = MetricHistory(database, lambda: now)
    old = now - timedelta(hours=25)
    assert history.add([sample(old, qps=1.0)], retention_s=48 * 3600) == 0
    recent = [sample(now - timedelta(seconds=20), qps=2.0, p99_ms=30.5),
              sample(now - timedelta(seconds=10), qps=3.0),
              sample(now - timedelta(seconds=10), "v2", qps=0.5, accuracy=0.97)]  # fmt: skip
    assert history.add(recent, retention_s=24 * 3600) == 1  # the 25 h old one went
    found = history.since((now - timedelta(hours=1)).timestamp())
    assert [(s.variant, s.values) for s in found] == [
        ("v1", {"qps": 2.0, "p99_ms": 30.5}), ("v1", {"qps": 3.0}),
        ("v2", {"qps": 0.5, "accuracy": 0.97}),
    ]  # fmt: skip
    assert found[0].time_s == pytest.approx((now - timedelta(seconds=20)).timestamp())
    assert history.since(0, endpoint="other") == []
    only = history.since((now - timedelta(hours=1)).timestamp(), series=("p99_ms", "accuracy"))
    assert [(s.variant, s.values) for s in only] == [
        ("v1", {"p99_ms": 30.5}), ("v1", {}), ("v2", {"accuracy": 0.97}),
    ]  # fmt: skip
    latest = history.latest()
    assert [(s.variant, s.values) for s in latest] == [
        ("v1", {"qps": 3.0}), ("v2", {"qps": 0.5, "accuracy": 0.97}),
    ]  # fmt: skip
    assert history.latest("other") == []


def test_samples_refuse_unknown_series_and_drop_non_finite_values() -> None:
    with pytest.raises(ValueError, match="unknown series"):
        MetricSample(time_s=0, endpoint="e", variant="v1", values={"latency": 1.0})
    clean = MetricSample(
        time_s=0, endpoint="e", variant="v1", values={"qps": float("nan"), "p99_ms": 2.0}
    )
    assert clean.values == {"p99_ms": 2.0}


def test_alerts_fire_and_resolve_with_their_events(registry: Registry) -> None:
    alerts = registry.alerts
    change = AlertChange(rule="error-rate", level=AlertLevel.CRITICAL, endpoint="digits",
                         variant="v2", value=0.05, threshold=0.01, message="5% errors")  # fmt: skip
    [fired] = alerts.record([change], [], "monitor")
    assert (fired.state, fired.resolved_at, fired.value) == (AlertStatus.FIRING, None, 0.05)
    assert alerts.find(AlertStatus.FIRING) == [fired]
    back = change.model_copy(update={"value": 0.0, "message": "back to 0"})
    [resolved] = alerts.record([], [back], "monitor")
    assert resolved.id == fired.id
    assert (resolved.state, resolved.value, resolved.message) == (
        AlertStatus.RESOLVED, 0.0, "back to 0",
    )  # fmt: skip
    assert resolved.resolved_at is not None
    assert alerts.find(AlertStatus.FIRING) == []
    assert alerts.find(endpoint="digits") == [resolved]
    assert alerts.record([], [back], "monitor") == []  # nothing open: nothing to resolve
    events = registry.list_events(limit=10)
    assert [e.action for e in events] == ["alert.fired", "alert.resolved"]
    assert events[0].details["message"] == "5% errors"
    assert events[0].object_key == "digits/v2/error-rate"
    with pytest.raises(InvalidInput):
        alerts.find(limit=0)


def test_events_filter_by_action_and_time(registry: Registry) -> None:
    registry.record_event("reconciler", "replica.failed", ("replica", "m-v1-0000aaaa", "m"))
    registry.record_event("reconciler", "replica.started", ("replica", "m-v1-0000bbbb", "m"))
    failed = registry.list_events(action="replica.failed", limit=100)
    assert [e.object_key for e in failed] == ["m-v1-0000aaaa"]
    future = datetime.now(UTC) + timedelta(minutes=1)
    assert registry.list_events(action="replica.failed", since=future, limit=100) == []


def test_rules_and_webhooks_are_stored_with_events(registry: Registry) -> None:
    alerts = registry.alerts
    spec = RuleSpec(series="p99_ms", comparison=">", threshold=300, for_s=60)
    alerts.put_rule("slow", spec, "ops")
    alerts.put_rule("slow", spec.model_copy(update={"threshold": 400.0}), "ops")
    [rule] = alerts.rules()
    assert (rule.name, rule.threshold, rule.for_s) == ("slow", 400.0, 60.0)
    alerts.remove_rule("slow", "ops")
    assert alerts.rules() == []
    with pytest.raises(NotFound):
        alerts.remove_rule("slow", "ops")
    alerts.put_webhook("ops", "https://hooks.example.com/a", "0123456789abcdef", "ops")
    [target] = alerts.webhook_targets()
    assert target.secret == "0123456789abcdef"
    alerts.remove_webhook("ops", "ops")
    assert alerts.webhooks() == []
    actions = [e.action for e in registry.list_events(limit=20)]
    assert actions == ["alert_rule.set", "alert_rule.set", "alert_rule.removed",
                       "alert_webhook.set", "alert_webhook.removed"]  # fmt: skip
    assert "0123456789abcdef" not in str([e.details for e in registry.list_events(limit=20)])
