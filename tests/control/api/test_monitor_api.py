"""The monitor's API over real HTTP: endpoint status, history, alerts, rules, webhooks.

The history routes run twice: over the monitor's in-memory rings (the control loop in the
same process) and over the registry's copy (an API process without a loop).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ferryman.config import ControlSettings, OutboundSettings, load_settings
from ferryman.control.monitor.history import History
from ferryman.registry import (
    SERIES,
    AlertChange,
    AlertLevel,
    DeploymentSpec,
    MetricSample,
    VariantSpec,
)
from tests.control.api.conftest import RunningServer, start_server


class Monitored:
    """A running API and a way to record samples as the monitor would."""

    def __init__(self, running: RunningServer, memory: History | None) -> None:
        self.running = running
        self.memory = memory
        self.http = httpx.Client(
            base_url=running.url, headers={"authorization": f"Bearer {running.token}"}
        )

    def record(self, samples: list[MetricSample]) -> None:
        self.running.registry.history.add(samples, retention_s=86400)
        if self.memory is not None:
            self.memory.add(samples)


@pytest.fixture(params=["memory", "stored"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Monitored]:
    settings = load_settings(
        data_dir=tmp_path / "data",
        control=ControlSettings(),
        outbound=OutboundSettings(allow=("127.0.0.1:9",)),  # the webhooks' (absent) receiver
    )
    memory = History(86400, 10) if request.param == "memory" else None
    server, thread, running = start_server(settings, memory)
    monitored = Monitored(running, memory)
    yield monitored
    monitored.http.close()
    server.should_exit = True
    thread.join(timeout=10)
    running.registry.close()


def sample(at_s: float, variant: str = "v1", **values: float) -> MetricSample:
    return MetricSample(time_s=at_s, endpoint="digits", variant=variant, values=values)


def deploy(api: Monitored, onnx_bytes: Callable[..., bytes]) -> None:
    registry = api.running.registry
    registry.register("digits", onnx_bytes(), "test")
    registry.register("digits", onnx_bytes(seed_value=1.0), "test")
    spec = DeploymentSpec(
        endpoint="digits",
        variants=(VariantSpec(model="digits", version=1, weight=90, replicas=2),
                  VariantSpec(model="digits", version=2, weight=10)),
    )  # fmt: skip
    registry.deployments.put(spec, "test")


def test_history_serves_the_recorded_series(api: Monitored) -> None:
    now = time.time()
    api.record([sample(now - 7200, qps=1.0)])  # outside the default hour
    api.record([sample(now - 20, qps=5.0, p99_ms=12.0), sample(now - 20, "v2", qps=1.0)])
    api.record([sample(now - 10, qps=6.0)])  # no p99: no point
    answer = api.http.get("/api/v1/endpoints/digits/history", params={"series": "qps,p99_ms"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["endpoint"] == "digits"
    assert body["resolution_s"] == 10
    found = {(s["variant"], s["name"]): s["points"] for s in body["series"]}
    assert [v for _, v in found[("v1", "qps")]] == [5.0, 6.0]
    assert [v for _, v in found[("v1", "p99_ms")]] == [12.0]
    assert found[("v1", "qps")][0][0] == pytest.approx(now - 20, abs=1e-3)
    assert [v for _, v in found[("v2", "qps")]] == [1.0]
    everything = api.http.get("/api/v1/endpoints/digits/history", params={"since_s": 86400})
    names = {s["name"] for s in everything.json()["series"]}
    assert names == set(SERIES)
    v1_qps = next(s for s in everything.json()["series"] if s["name"] == "qps")
    assert [v for _, v in v1_qps["points"]] == [1.0, 5.0, 6.0]


def test_a_long_window_is_served_in_steps_with_latency_peaks_kept(api: Monitored) -> None:
    start = (time.time() // 600 - 4) * 600  # on a 10-minute boundary, 40 to 50 min back
    for i in range(120):  # 20 minutes at 10 s
        api.record([sample(start + 10 * i, qps=float(i), p99_ms=500.0 if i == 7 else 10.0)])
    answer = api.http.get(
        "/api/v1/endpoints/digits/history",
        params={"series": "qps,p99_ms", "since_s": 3600, "step_s": 600},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["resolution_s"] == 600
    found = {s["name"]: s["points"] for s in body["series"]}
    assert [v for _, v in found["p99_ms"]] == [500.0, 10.0]
    assert [v for _, v in found["qps"]] == [pytest.approx(29.5), pytest.approx(89.5)]
    assert found["qps"][-1][0] == pytest.approx(start + 1190, abs=1e-3)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"series": "qps,latency"}, "use any of: qps, error_rate"),
        ({"step_s": "5"}, "[10, 3600]"),
        ({"step_s": "7200"}, "[10, 3600]"),
        ({"step_s": "a minute"}, "e.g. step_s=60"),
        ({"step_s": "inf"}, "[10, 3600]"),
        ({"since_s": "0"}, "(0, 86400]"),
        ({"since_s": "-5"}, "(0, 86400]"),
        ({"since_s": "90000"}, "(0, 86400]"),
        ({"since_s": "an hour"}, "e.g. since_s=3600"),
        ({"since_s": "nan"}, "(0, 86400]"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_history_queries_are_400_naming_the_allowed_values(
    api: Monitored, params: dict[str, str], says: str
) -> None:
    api.record([sample(time.time(), qps=1.0)])
    answer = api.http.get("/api/v1/endpoints/digits/history", params=params)
    assert answer.status_code == 400
    assert says in answer.json()["error"]


def test_history_of_an_unknown_endpoint_is_404(api: Monitored) -> None:
    answer = api.http.get("/api/v1/endpoints/nothing/history")
    assert answer.status_code == 404
    assert "nothing" in answer.json()["error"]
    assert api.http.get("/api/v1/endpoints/..%2fetc/history").status_code in {400, 404}


def test_endpoint_status_comes_from_the_newest_sample(
    api: Monitored, onnx_bytes: Callable[..., bytes]
) -> None:
    assert api.http.get("/api/v1/endpoints").json() == []
    deploy(api, onnx_bytes)
    before = api.http.get("/api/v1/endpoints").json()
    assert before[0]["variants"][0] == {
        "name": "v1", "model": "digits", "version": 1, "weight": 90.0, "replicas_desired": 2,
        "replicas_ready": 0, "qps": None, "error_rate": None, "client_error_rate": None,
        "p50_ms": None, "p99_ms": None,
    }  # fmt: skip
    now = time.time()
    api.record([sample(now - 10, qps=1.0, replicas=1, replicas_desired=2, weight=90)])
    api.record([sample(now, qps=8.5, error_rate=0.02, client_error_rate=0.25, p50_ms=3.0,
                       p99_ms=40.0, replicas=2, replicas_desired=2, weight=90)])  # fmt: skip
    api.running.registry.alerts.record(
        [AlertChange(rule="error-rate", level=AlertLevel.CRITICAL, endpoint="digits",
                     variant="v1", value=0.02, threshold=0.01, message="m")], [], "monitor",
    )  # fmt: skip
    status = api.http.get("/api/v1/endpoints").json()
    assert len(status) == 1
    assert status[0]["endpoint"] == "digits"
    assert status[0]["rollout_id"] is None
    assert status[0]["alerts_firing"] == 1
    v1, v2 = status[0]["variants"]
    assert v1 == {
        "name": "v1", "model": "digits", "version": 1, "weight": 90.0, "replicas_desired": 2,
        "replicas_ready": 2, "qps": 8.5, "error_rate": 0.02, "client_error_rate": 0.25,
        "p50_ms": 3.0, "p99_ms": 40.0,
    }  # fmt: skip
    assert (v2["name"], v2["version"], v2["weight"], v2["qps"]) == ("v2", 2, 10.0, None)


def test_metrics_expose_the_newest_samples_as_gauges(api: Monitored) -> None:
    now = time.time()
    api.record([sample(now - 3600, accuracy=0.5)])
    api.record([sample(now, "v2", accuracy=0.93, input_drift_psi=0.05)])
    text = api.http.get("/metrics").text
    assert 'ferryman_variant_accuracy{endpoint="digits",variant="v2"} 0.93' in text
    assert 'ferryman_variant_input_drift_psi{endpoint="digits",variant="v2"} 0.05' in text
    assert 'variant="v1"' not in text  # an hour old: not current
    assert 'ferryman_alerts_firing{level="critical"} 0.0' in text


def test_alerts_are_listed_by_state_and_endpoint(api: Monitored) -> None:
    alerts = api.running.registry.alerts

    def change(rule: str, endpoint: str = "digits") -> AlertChange:
        return AlertChange(
            rule=rule, level=AlertLevel.WARNING, endpoint=endpoint, variant="v1",
            value=1.0, threshold=0.5, message=f"{rule} holds",
        )  # fmt: skip

    alerts.record([change("a"), change("b"), change("a", "other")], [], "monitor")
    alerts.record([], [change("b").model_copy(update={"message": "back"})], "monitor")
    every = api.http.get("/api/v1/alerts").json()
    assert [(a["rule"], a["endpoint"], a["state"]) for a in every] == [
        ("a", "other", "firing"), ("b", "digits", "resolved"), ("a", "digits", "firing"),
    ]  # fmt: skip
    assert set(every[0]) == {"id", "rule", "level", "endpoint", "variant", "state", "value",
                             "threshold", "message", "started_at", "resolved_at"}  # fmt: skip
    firing = api.http.get("/api/v1/alerts", params={"state": "firing", "endpoint": "digits"})
    assert [a["rule"] for a in firing.json()] == ["a"]
    resolved = api.http.get("/api/v1/alerts", params={"state": "resolved"}).json()
    assert resolved[0]["message"] == "back"
    assert resolved[0]["resolved_at"] is not None
    assert api.http.get("/api/v1/alerts", params={"state": "loud"}).status_code == 400


def test_rules_list_defaults_and_users_own_which_override_and_restore(api: Monitored) -> None:
    rules = {r["name"]: r for r in api.http.get("/api/v1/alert-rules").json()}
    assert set(rules) == {"p99-latency", "error-rate", "input-drift", "accuracy",
                          "replica-restarts"}  # fmt: skip
    assert rules["p99-latency"] == {
        "name": "p99-latency", "series": "p99_ms", "comparison": ">", "threshold": 200.0,
        "for_s": 120.0, "min_samples": 0, "level": "warning", "endpoint": None, "enabled": True,
        "description": "p99 latency above 200 ms for 2 minutes", "default": True,
        "overridden": False,
    }  # fmt: skip
    slow = {"series": "p99_ms", "comparison": ">", "threshold": 500, "for_s": 60,
            "level": "critical", "endpoint": "digits"}  # fmt: skip
    answer = api.http.put("/api/v1/alert-rules/digits-slow", json=slow)
    assert answer.status_code == 200
    assert answer.json()["default"] is False
    off = {"series": "p99_ms", "comparison": ">", "threshold": 200, "enabled": False}
    overridden = api.http.put("/api/v1/alert-rules/p99-latency", json=off).json()
    assert (overridden["enabled"], overridden["default"], overridden["overridden"]) == (
        False, True, True,
    )  # fmt: skip
    listed = [r["name"] for r in api.http.get("/api/v1/alert-rules").json()]
    assert listed == ["p99-latency", "error-rate", "input-drift", "accuracy",
                      "replica-restarts", "digits-slow"]  # fmt: skip
    assert api.http.delete("/api/v1/alert-rules/p99-latency").status_code == 204
    restored = api.http.get("/api/v1/alert-rules").json()[0]
    assert (restored["enabled"], restored["overridden"]) == (True, False)
    refused = api.http.delete("/api/v1/alert-rules/p99-latency")
    assert refused.status_code == 409
    assert '"enabled": false' in refused.json()["error"]
    assert api.http.delete("/api/v1/alert-rules/digits-slow").status_code == 204
    assert api.http.delete("/api/v1/alert-rules/digits-slow").status_code == 404
    events = [e.action for e in api.running.registry.list_events(limit=10)]
    assert events.count("alert_rule.set") == 2
    assert events.count("alert_rule.removed") == 2


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"series": "latency", "comparison": ">", "threshold": 1}, "use one of: qps"),
        ({"series": "qps", "comparison": "~", "threshold": 1}, "comparison"),
        ({"series": "qps", "comparison": ">", "threshold": "inf"}, "finite"),
        ({"series": "qps", "comparison": ">", "threshold": 1, "for_s": -1}, "for_s"),
        ({"series": "qps", "comparison": ">", "threshold": 1, "level": "page"}, "level"),
        ({"series": "qps", "comparison": ">", "threshold": 1, "endpoint": "../x"}, "endpoint"),
        ({"series": "qps", "comparison": ">", "threshold": 1, "colour": "red"}, "colour"),
    ],
)
def test_bad_rules_are_400(api: Monitored, body: dict[str, object], says: str) -> None:
    answer = api.http.put("/api/v1/alert-rules/mine", json=body)
    assert answer.status_code == 400
    assert says in answer.json()["error"]
    assert api.running.registry.alerts.rules() == []


def test_bad_rule_names_are_400(api: Monitored) -> None:
    body = {"series": "qps", "comparison": ">", "threshold": 1}
    answer = api.http.put("/api/v1/alert-rules/Bad_Name", json=body)
    assert answer.status_code == 400
    assert "rule name" in answer.json()["error"]


def test_webhook_secrets_are_write_only(api: Monitored) -> None:
    secret = "s3cret-canary-0123456789"
    url = "http://127.0.0.1:9/hook"
    refused = api.http.put("/api/v1/alert-webhooks/ops", json={"url": url})
    assert refused.status_code == 400
    assert "needs a secret" in refused.json()["error"]
    answer = api.http.put("/api/v1/alert-webhooks/ops", json={"url": url, "secret": secret})
    assert answer.status_code == 200
    assert set(answer.json()) == {"name", "url", "updated_by", "updated_at"}
    moved = api.http.put("/api/v1/alert-webhooks/ops", json={"url": url + "2"})  # keeps it
    assert moved.status_code == 200
    listed = api.http.get("/api/v1/alert-webhooks")
    assert [w["url"] for w in listed.json()] == [url + "2"]
    targets = api.running.registry.alerts.webhook_targets()
    assert [t.secret for t in targets] == [secret]
    assert secret not in repr(targets)
    events = api.http.get("/api/v1/events", params={"limit": 100}).text
    for text in (listed.text, answer.text, moved.text, events):
        assert secret not in text
    assert api.http.delete("/api/v1/alert-webhooks/ops").status_code == 204
    assert api.http.get("/api/v1/alert-webhooks").json() == []
    assert api.http.delete("/api/v1/alert-webhooks/ops").status_code == 404


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://127.0.0.1/hook", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("127.0.0.1:8080/hook", "http:// or https://"),
        ("http:///hook", "with a host"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("http://127.0.0.1:99999/hook", "cannot be parsed"),
        ("http://127.0.0.1/ho ok", "control characters"),
        ("https://example.com/" + "a" * 2100, "at most 2048"),
    ],
)
def test_bad_webhook_urls_are_400(api: Monitored, url: str, says: str) -> None:
    answer = api.http.put(
        "/api/v1/alert-webhooks/ops", json={"url": url, "secret": "0123456789abcdef"}
    )
    assert answer.status_code == 400
    assert says in answer.json()["error"]
    assert api.running.registry.alerts.webhooks() == []


def test_short_secrets_are_400(api: Monitored) -> None:
    answer = api.http.put(
        "/api/v1/alert-webhooks/ops", json={"url": "https://example.com/h", "secret": "short"}
    )
    assert answer.status_code == 400
    assert "16-256" in answer.json()["error"]
