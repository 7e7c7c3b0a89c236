"""The monitor end to end over a scripted world: samples kept (in memory and in the
registry, on SQLite and PostgreSQL), alerts fired and resolved, webhooks called for real,
and the thumbs-up rate of a language model's rated completions sampled from the registry."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from ferryman.control.metrics.feedback import FeedbackSignals
from ferryman.control.metrics.source import FleetMetrics
from ferryman.control.metrics.traffic import traffic_by_variant
from ferryman.control.monitor.monitor import LoopView, Monitor, ScrapedReadings
from ferryman.control.monitor.sampling import Reading, VariantReading
from ferryman.control.monitor.webhooks import RetryPolicy, WebhookSender
from ferryman.gateway.metrics import GatewayMetrics
from ferryman.registry import (
    AlertStatus,
    CollectedPayload,
    DeploymentSpec,
    Feedback,
    Registry,
    VariantSpec,
)
from tests.conftest import make_onnx
from tests.control.webhook_receiver import Receiver, loopback_transport, receiving

SECRET = "canary-secret-0123456789"
V2 = ("digits", "v2")


class Script:
    """A reading source that plays readings of a gateway the test drives."""

    def __init__(self) -> None:
        self.gateway = GatewayMetrics()
        self.now_s = 0.0

    def answer(self, ok: int, failed: int = 0) -> None:
        for _ in range(ok):
            self.gateway.answered("digits", "v2", 200, 0.004)
        for _ in range(failed):
            self.gateway.answered("digits", "v2", 503, 0.004)

    def clock(self) -> float:
        return self.now_s

    def read(self) -> Reading:
        return Reading(
            at_s=self.now_s, time_s=time.time() - 100 + self.now_s,
            traffic=traffic_by_variant(self.gateway.exposition().decode()),
            variants={V2: VariantReading(100, 1, 1, is_main=True)},
        )  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


@pytest.fixture
def sender() -> Iterator[WebhookSender]:
    running = WebhookSender(
        RetryPolicy(base_s=0.05, max_s=0.1), capacity=100, transport=loopback_transport()
    )
    running.start()
    yield running
    running.stop()


def monitor(registry: Registry, script: Script, sender: WebhookSender) -> Monitor:
    return Monitor(registry, script, sender, interval_s=10, retention_s=3600, clock=script.clock)


def step(monitor_: Monitor, script: Script, ok: int, failed: int = 0) -> None:
    script.now_s += 10
    script.answer(ok, failed)
    assert monitor_.tick() is not None


def test_an_alert_fires_and_resolves_at_a_signed_webhook(
    registry: Registry, receiver: Receiver, sender: WebhookSender
) -> None:
    registry.alerts.put_webhook("ops", receiver.url, SECRET, "ops")
    script = Script()
    watching = monitor(registry, script, sender)
    script.answer(100)
    assert watching.tick() == []  # the first reading: nothing to compare with yet
    assert watching.tick() is None  # not due again before 10 s
    step(watching, script, ok=95, failed=5)  # 5% errors: error-rate (> 1%) fires
    step(watching, script, ok=100)  # none: it resolves

    fired, resolved = receiver.wait_for(2)
    for request in (fired, resolved):
        assert receiver.is_signed(request, SECRET)
    assert [r.headers["ferryman-event"] for r in (fired, resolved)] == [
        "alert.fired", "alert.resolved",
    ]  # fmt: skip
    alert = json.loads(fired.body)["alert"]
    assert (alert["rule"], alert["level"], alert["endpoint"], alert["variant"]) == (
        "error-rate", "critical", "digits", "v2",
    )  # fmt: skip
    assert alert["value"] == pytest.approx(0.05)
    assert alert["state"] == "firing"
    later = json.loads(resolved.body)["alert"]
    assert (later["id"], later["state"], later["value"]) == (alert["id"], "resolved", 0.0)

    [row] = registry.alerts.find()
    assert (row.state, row.rule) == (AlertStatus.RESOLVED, "error-rate")
    actions = [e.action for e in registry.list_events(limit=20) if e.action.startswith("alert.")]
    assert actions == ["alert.fired", "alert.resolved"]
    stored = registry.history.since(0)
    assert [round(s.values["error_rate"], 3) for s in stored] == [0.05, 0.0]
    assert [s.values["qps"] for s in stored] == [10.0, 10.0]
    memory = watching.history.points("digits", 0, ["error_rate"])[("v2", "error_rate")]
    assert [round(v, 3) for _, v in memory] == [0.05, 0.0]


def test_a_restart_reloads_the_history_and_does_not_fire_twice(
    registry: Registry, receiver: Receiver, sender: WebhookSender
) -> None:
    registry.alerts.put_webhook("ops", receiver.url, SECRET, "ops")
    script = Script()
    first = monitor(registry, script, sender)
    first.tick()
    step(first, script, ok=90, failed=10)
    receiver.wait_for(1)

    second = monitor(registry, script, sender)  # the control plane restarted
    assert second.restore() == 1
    assert second.history.latest()[V2].values["error_rate"] == pytest.approx(0.1)
    second.tick()  # its first reading
    step(second, script, ok=90, failed=10)  # still failing: the same alert, not a new one
    step(second, script, ok=100)
    requests = receiver.wait_for(2)
    time.sleep(0.2)  # a duplicate "fired" would have arrived by now
    assert [r.headers["ferryman-event"] for r in receiver.received] == [
        "alert.fired", "alert.resolved",
    ]  # fmt: skip
    assert len(requests) == 2
    assert len(registry.alerts.find()) == 1
    assert len(registry.history.since(0)) == 3


def rate(registry: Registry, votes: dict[str, str]) -> None:
    registry.payloads.give_feedback(
        [Feedback(request_id=i, label=v) for i, v in votes.items()], "user"
    )


def test_the_thumbs_up_rate_of_rated_completions_is_sampled_into_the_history(
    registry: Registry, sender: WebhookSender
) -> None:
    """Votes on a language model's completions reach the history as accuracy from feedback
    labels does: ``FeedbackSignals.series`` read by the monitor's own reading source, a
    series with the votes it stands on as its size, kept in memory and in the registry."""
    registry.register("lm", make_onnx(), "test")
    registry.register("lm", make_onnx(seed_value=1.0), "test")
    variants = (VariantSpec(model="lm", version=1, weight=90),
                VariantSpec(model="lm", version=2, weight=10))  # fmt: skip
    spec = DeploymentSpec(endpoint="chat", variants=variants)
    registry.deployments.put(spec, "test")
    completions = [
        CollectedPayload(seq=n, request_id=f"cmpl-{n}", time=time.time(), status=200,
                         latency_ms=30.0, kind="completion")
        for n in range(1, 6)
    ]  # fmt: skip
    registry.payloads.add("chat", "v1", ("lm", 1), "inst-a", completions)
    rate(registry, {"cmpl-1": "up", "cmpl-2": "up", "cmpl-3": "down", "cmpl-4": "up"})
    view = LoopView(table=lambda: None, replicas=list, signals=FeedbackSignals(registry).series,
                    fleet=lambda: FleetMetrics(at_s=0.0))  # fmt: skip
    clock = Script()
    watching = Monitor(registry, ScrapedReadings(registry, view), sender, interval_s=10,
                       retention_s=3600, clock=clock.clock)  # fmt: skip
    assert watching.tick() == []  # the first reading
    clock.now_s += 10
    first = {s.variant: s for s in watching.tick() or []}
    assert first["v1"].values["thumbs_up_rate"] == 0.75
    assert first["v1"].sizes["thumbs_up_rate"] == 4  # the votes it stands on
    assert "thumbs_up_rate" not in first["v2"].values  # no votes: no point, not a zero

    rate(registry, {"cmpl-5": "down", "cmpl-4": "down"})  # a new vote and a change of mind
    clock.now_s += 10
    watching.tick()
    points = watching.history.points("chat", 0, ["thumbs_up_rate"])
    assert [v for _, v in points[("v1", "thumbs_up_rate")]] == [0.75, 0.4]
    assert points[("v2", "thumbs_up_rate")] == []
    stored = registry.history.since(0, "chat", ["thumbs_up_rate"])
    assert [s.values for s in stored if s.variant == "v1"] == [
        {"thumbs_up_rate": 0.75}, {"thumbs_up_rate": 0.4},
    ]  # fmt: skip
