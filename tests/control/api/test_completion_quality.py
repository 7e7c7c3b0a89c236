"""A language model's votes through the control plane's API, over real HTTP on SQLite and
PostgreSQL (issue 17): ``GET /endpoints/{e}/quality`` counts each variant's completions rated
up and down and gives the thumbs-up rate (null without votes), over its ``window_s``; the
monitor samples the rate into ``GET /endpoints/{e}/history`` and the control plane's
``/metrics``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ferryman.config import load_settings
from ferryman.control.metrics.feedback import FeedbackSignals
from ferryman.control.metrics.source import FleetMetrics
from ferryman.control.monitor.monitor import LoopView, Monitor, ScrapedReadings
from ferryman.registry import CollectedPayload, DeploymentSpec, VariantSpec, WebhookTarget
from tests.conftest import make_onnx
from tests.control.api.conftest import RunningServer, serving


@pytest.fixture
def control(tmp_path: Path, database_url: str) -> Iterator[RunningServer]:
    settings = load_settings(data_dir=tmp_path / "data", database_url=database_url)
    with serving(settings) as running:
        yield running


def collect(control: RunningServer, variant: str, seqs: range, age_s: float = 0) -> None:
    """Completions of ``variant`` as the payload collector keeps them (``cmpl-<variant>-<n>``)."""
    version = int(variant[1:])
    completions = [
        CollectedPayload(seq=n, request_id=f"cmpl-{variant}-{n}", time=time.time() - age_s,
                         status=200, latency_ms=25.0, kind="completion")
        for n in seqs
    ]  # fmt: skip
    control.registry.payloads.add("chat", variant, ("lm", version), f"inst-{variant}", completions)


def rate(api: httpx.Client, votes: list[tuple[str, str]]) -> list[str]:
    """Send ratings as users do; the status of each."""
    body = [{"completion_id": completion, "label": vote} for completion, vote in votes]
    answer = api.post("/api/v1/feedback", json=body)
    assert answer.status_code == 200, answer.text
    return [item["status"] for item in answer.json()["items"]]


def deploy(control: RunningServer) -> None:
    """Endpoint ``chat``: lm v1 (90%) and v2 (10%)."""
    for seed_value in (0.0, 1.0):
        control.registry.register("lm", make_onnx(seed_value=seed_value), "test")
    variants = (VariantSpec(model="lm", version=1, weight=90),
                VariantSpec(model="lm", version=2, weight=10))  # fmt: skip
    control.registry.deployments.put(DeploymentSpec(endpoint="chat", variants=variants), "test")


def votes_of(api: httpx.Client, **params: float) -> dict[str, tuple[object, ...]]:
    answer = api.get("/api/v1/endpoints/chat/quality", params=params)
    assert answer.status_code == 200, answer.text
    return {name: (v["thumbs_up"], v["thumbs_down"], v["thumbs_up_rate"], v["labelled"])
            for name, v in answer.json()["variants"].items()}  # fmt: skip


def test_quality_counts_each_variants_votes_up_and_down(
    control: RunningServer, api: httpx.Client
) -> None:
    deploy(control)
    early = rate(api, [("cmpl-v1-9", "meh")])  # before its completion is collected: kept
    assert early == ["unknown_request"]
    collect(control, "v1", range(1, 3), age_s=3600)  # an hour ago
    collect(control, "v1", range(3, 10))
    collect(control, "v2", range(1, 4))
    statuses = rate(api, [
        ("cmpl-v1-1", "up"), ("cmpl-v1-2", "down"),  # the hour-old ones
        ("cmpl-v1-3", "up"), ("cmpl-v1-4", "up"), ("cmpl-v1-5", "up"), ("cmpl-v1-6", "up"),
        ("cmpl-v1-7", "up"), ("cmpl-v1-7", "down"),  # a change of mind: one vote, down
    ])  # fmt: skip
    assert statuses == ["stored"] * 7 + ["corrected"]
    assert votes_of(api) == {"v1": (5, 2, 5 / 7, 0), "v2": (0, 0, None, 0)}  # 'meh' is no vote
    assert votes_of(api, window_s=600) == {"v1": (4, 1, 0.8, 0), "v2": (0, 0, None, 0)}

    assert rate(api, [("cmpl-v2-1", "down")]) == ["stored"]
    assert votes_of(api, window_s=600)["v2"] == (0, 1, 0.0, 0)
    assert api.get("/api/v1/endpoints/chat/quality", params={"window_s": 0}).status_code == 400


class Silent:
    """A notifier for a monitor whose rules fire nothing here."""

    def send(self, target: WebhookTarget, event: str, payload: dict[str, object]) -> bool:
        raise AssertionError(f"no alert was expected: {event} {payload}")


def test_the_thumbs_up_rate_is_served_as_history_and_as_a_metric(
    control: RunningServer, api: httpx.Client
) -> None:
    deploy(control)
    collect(control, "v1", range(1, 5))
    rate(api, [("cmpl-v1-1", "up"), ("cmpl-v1-2", "up"), ("cmpl-v1-3", "down")])
    registry = control.registry
    view = LoopView(table=lambda: None, replicas=list, signals=FeedbackSignals(registry).series,
                    fleet=lambda: FleetMetrics(at_s=0.0))  # fmt: skip
    now_s = [0.0]
    monitor = Monitor(registry, ScrapedReadings(registry, view), Silent(), interval_s=10,
                      retention_s=3600, clock=lambda: now_s[0])  # fmt: skip
    monitor.tick()
    now_s[0] += 10
    monitor.tick()
    rate(api, [("cmpl-v1-4", "up")])
    now_s[0] += 10
    monitor.tick()

    answer = api.get("/api/v1/endpoints/chat/history", params={"series": "thumbs_up_rate"})
    assert answer.status_code == 200, answer.text
    found = {s["variant"]: [v for _, v in s["points"]] for s in answer.json()["series"]}
    assert found["v1"] == pytest.approx([2 / 3, 3 / 4])
    assert found.get("v2", []) == []  # no votes: no points
    metrics = api.get("/metrics").text.splitlines()
    gauges = [line for line in metrics if line.startswith("ferryman_variant_thumbs_up_rate{")]
    assert gauges == ['ferryman_variant_thumbs_up_rate{endpoint="chat",variant="v1"} 0.75']
