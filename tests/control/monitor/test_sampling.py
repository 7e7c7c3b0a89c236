"""Samples from two readings: a pure function, tested with real metric expositions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ferryman.control.metrics.source import replica_counters, replica_scrape
from ferryman.control.metrics.traffic import traffic_by_variant
from ferryman.control.monitor.monitor import restarts_by_slot, variant_readings
from ferryman.control.monitor.sampling import Reading, ReplicaReading, VariantReading, sample
from ferryman.gateway.metrics import GatewayMetrics
from ferryman.gateway.routes import EndpointRoute, RouteTable, VariantRoute
from ferryman.registry import DeploymentRecord, DeploymentSpec, EventRecord, VariantSpec
from ferryman.serving.generation import GenerationMetrics
from ferryman.serving.metrics import ReplicaIdentity, ReplicaMetrics

V1, V2 = ("digits", "v1"), ("digits", "v2")
VARIANTS = {V1: VariantReading(90, 2, 2, is_main=True), V2: VariantReading(10, 1, 1)}


def reading(at_s: float, gateway: GatewayMetrics | None, **fields: object) -> Reading:
    traffic = traffic_by_variant(gateway.exposition().decode()) if gateway else None
    return Reading(at_s=at_s, time_s=1_700_000_000 + at_s, traffic=traffic,
                   variants=fields.pop("variants", VARIANTS), **fields)  # type: ignore[arg-type]  # fmt: skip


def test_traffic_series_are_the_window_between_two_readings() -> None:
    gateway = GatewayMetrics()
    for _ in range(50):
        gateway.answered("digits", "v1", 200, 0.004)
    earlier = reading(100.0, gateway)
    for _ in range(98):
        gateway.answered("digits", "v1", 200, 0.004)
    for _ in range(2):
        gateway.answered("digits", "v1", 503, 0.3)
    gateway.answered("digits", "v1", 400, 0.001)
    later = reading(110.0, gateway)

    v1, v2 = sample(earlier, later)
    assert (v1.endpoint, v1.variant, v1.time_s) == ("digits", "v1", 1_700_000_110.0)
    assert v1.values["qps"] == pytest.approx(10.1)  # 101 requests in 10 s
    assert v1.values["error_rate"] == pytest.approx(2 / 101)
    assert v1.values["client_error_rate"] == pytest.approx(1 / 101)
    assert 2.5 < v1.values["p50_ms"] <= 5.0  # the 2.5-5 ms bucket
    assert 250 < v1.values["p99_ms"] <= 500
    assert (v1.values["weight"], v1.values["replicas"], v1.values["replicas_desired"]) == (
        90, 2, 2,
    )  # fmt: skip
    assert v1.values["restarts_10m"] == 0
    assert v2.values["qps"] == 0.0
    assert "error_rate" not in v2.values  # no requests: no error rate, no latency
    assert "p99_ms" not in v2.values


def test_a_restarted_gateway_counts_afresh_and_an_unread_one_gives_no_traffic() -> None:
    old = GatewayMetrics()
    for _ in range(500):
        old.answered("digits", "v1", 200, 0.004)
    new = GatewayMetrics()
    for _ in range(20):
        new.answered("digits", "v1", 200, 0.004)
    [v1, _] = sample(reading(0.0, old), reading(10.0, new))
    assert v1.values["qps"] == pytest.approx(2.0)
    [v1, _] = sample(reading(0.0, old), reading(10.0, None))
    assert "qps" not in v1.values
    assert v1.values["weight"] == 90  # what the route table says is still known


def test_replica_series_sum_over_a_variants_replicas() -> None:
    def replica(
        rows: float, batches: float, cpu_s: float, rss: float, **classes: float
    ) -> ReplicaReading:
        return ReplicaReading("digits", "v1", rows, batches, classes, cpu_s, rss)

    earlier = reading(0.0, None, replicas={
        "http://a": replica(100, 50, 10.0, 1e8, **{"0": 10}),
        "http://b": replica(900, 30, 20.0, 2e8),
        "http://c": ReplicaReading("digits", "v2", 5, 5, {"0": 50}, 1.0, 5e7),
    })  # fmt: skip
    later = reading(10.0, None, replicas={
        "http://a": replica(160, 60, 12.0, 1.1e8, **{"0": 20, "1": 10}),  # +60 rows, +10 batches
        "http://b": replica(40, 10, 1.0, 2e8),  # restarted: its counters start again
        "http://c": ReplicaReading("digits", "v2", 25, 25, {"0": 60, "1": 10}, 1.5, 5e7),
    })  # fmt: skip
    v1, v2 = sample(earlier, later)
    assert v1.values["batch_size"] == pytest.approx((60 + 40) / (10 + 10))
    assert v1.values["cpu_pct"] == pytest.approx(20.0)  # a: 2 s in 10 s; b went back: not counted
    assert v1.values["rss_bytes"] == pytest.approx(3.1e8)
    assert "prediction_drift" not in v1.values  # the main variant is the reference
    # v2's window {0: 10, 1: 10} against v1's {0: 10, 1: 10}: the same distribution
    assert v2.values["prediction_drift"] == pytest.approx(0.0)
    assert v2.values["cpu_pct"] == pytest.approx(5.0)


def test_prediction_drift_against_the_main_variant() -> None:
    earlier = reading(0.0, None, replicas={
        "http://a": ReplicaReading("digits", "v1", classes={"0": 0}),
        "http://c": ReplicaReading("digits", "v2", classes={"1": 0}),
    })  # fmt: skip
    later = reading(10.0, None, replicas={
        "http://a": ReplicaReading("digits", "v1", classes={"0": 40}),
        "http://c": ReplicaReading("digits", "v2", classes={"1": 40}),
    })  # fmt: skip
    _, v2 = sample(earlier, later)
    assert v2.values["prediction_drift"] == pytest.approx(1.0)  # nothing in common


def test_an_unanswered_scrape_is_unknown_not_a_reset() -> None:
    earlier = reading(0.0, None, replicas={"http://a": ReplicaReading("digits", "v1", 1000, 100)})
    silent = ReplicaReading("digits", "v1", is_scraped=False)
    middle = reading(10.0, None, replicas={"http://a": silent})
    later = reading(20.0, None, replicas={"http://a": ReplicaReading("digits", "v1", 1010, 101)})
    assert "batch_size" not in sample(earlier, middle)[0].values
    assert "batch_size" not in sample(middle, later)[0].values  # not 1010/101 from "zero"


def test_signals_and_restarts_are_carried_as_read() -> None:
    later = reading(10.0, None, signals={V2: {"accuracy": 0.8, "f1": 0.7, "labelled": 12,
                    "input_drift_psi": 0.3, "input_rows": 40, "thumbs_up_rate": 0.75,
                    "rated": 8}}, restarts={V2: 4})  # fmt: skip
    _, v2 = sample(reading(0.0, None), later)
    shown = ("accuracy", "f1", "input_drift_psi", "restarts_10m", "thumbs_up_rate")
    assert {k: v2.values[k] for k in shown} == {
        "accuracy": 0.8, "f1": 0.7, "input_drift_psi": 0.3, "restarts_10m": 4,
        "thumbs_up_rate": 0.75,
    }  # fmt: skip
    assert v2.sizes == {"accuracy": 12, "f1": 12, "input_drift_psi": 40, "thumbs_up_rate": 8}
    assert not {"labelled", "input_rows", "rated"} & set(v2.values)  # sizes, not series


def test_replica_counters_from_a_real_replica_exposition() -> None:
    metrics = ReplicaMetrics(ReplicaIdentity("digits", "1", "onnx-fp32"))
    for size in (4, 8, 12):
        metrics.batch_size.observe(size)
    counters = metrics.prediction_counters(3)
    counters[2].inc(5)
    counters[0].inc()
    rows, batches, classes = replica_counters(metrics.render().decode())
    assert (rows, batches) == (24, 3)
    assert classes == {"0": 1, "1": 0, "2": 5}


def test_variant_readings_from_the_route_table_and_the_deployment() -> None:
    spec = DeploymentSpec(endpoint="digits", variants=(
        VariantSpec(model="digits", version=1, weight=90, replicas=3),
        VariantSpec(model="digits", version=2, weight=10, replicas=1),
    ))  # fmt: skip
    at = datetime(2026, 12, 7, tzinfo=UTC)
    record = DeploymentRecord.model_construct(endpoint="digits", spec=spec, generation=1,
                                              created_by="alice", created_at=at,
                                              updated_by="alice", updated_at=at)  # fmt: skip
    route = EndpointRoute(endpoint="digits", variants=(
        VariantRoute(name="v1", model="digits", version=1, weight=100,
                     backends=("http://127.0.0.1:1", "http://127.0.0.1:2")),
        VariantRoute(name="v2", model="digits", version=2, weight=0),  # none ready: lent
    ))  # fmt: skip
    table = RouteTable(generation=1, endpoints={"digits": route})
    found = variant_readings([record], table, [])
    assert found[V1] == VariantReading(100.0, 2, 3, is_main=True)
    assert found[V2] == VariantReading(0.0, 0, 1, is_main=False)
    without_table = variant_readings([record], None, [])
    assert without_table[V1] == VariantReading(90.0, 0, 3, is_main=True)


def test_restarts_are_attributed_to_the_slot_their_event_names() -> None:
    slots = [("digits", "v1"), ("digits", "v1-onnx-int8"), ("digits-v1", "v2")]
    named = [("digits", "v1"), ("digits", "v1-onnx-int8"), ("digits-v1", "v2"),
             ("digits", "v1"), ("other", "v1")]  # fmt: skip
    events = [_failure(i, {"endpoint": e, "variant": v}) for i, (e, v) in enumerate(named)]
    events.append(_failure(99, {"reason": "exited"}))  # an event from before slots were named
    assert restarts_by_slot(events, slots) == {
        ("digits", "v1"): 2, ("digits", "v1-onnx-int8"): 1, ("digits-v1", "v2"): 1,
    }  # fmt: skip


def _failure(event_id: int, details: dict[str, object]) -> EventRecord:
    return EventRecord(
        id=event_id, at=datetime.now(UTC), actor="reconciler", action="replica.failed",
        object_type="replica", object_key=f"r{event_id}", model="digits", details=details,
    )  # fmt: skip


def test_a_language_models_series_from_the_gateway_and_its_replicas() -> None:
    """Time to first token and per output token from the gateway's stream histograms; tokens
    per second and open streams from the replicas' own exposition, parsed as scraped."""
    gateway = GatewayMetrics()
    plane = GenerationMetrics(ReplicaIdentity("digits", "1", "onnx-genai"))
    earlier = reading(0.0, gateway, replicas={"http://r1": _llm_replica(plane)})
    for _ in range(10):
        gateway.answered("digits", "v1", 200, 0.5)
        gateway.first_token.labels("digits", "v1").observe(0.03)
        for _ in range(20):
            gateway.inter_token.labels("digits", "v1").observe(0.004)
    plane.prompt_tokens.inc(80)
    plane.completion_tokens.inc(200)
    plane.streams.inc(3)
    later = reading(10.0, gateway, replicas={"http://r1": _llm_replica(plane)})

    v1, v2 = sample(earlier, later)
    assert 25 < v1.values["ttft_p50_ms"] <= 50
    assert 25 < v1.values["ttft_p99_ms"] <= 50
    assert 2.5 < v1.values["tpot_p99_ms"] <= 5
    assert v1.values["tokens_per_s"] == pytest.approx(20.0)  # 200 tokens in 10 s
    assert v1.values["prompt_tokens_per_s"] == pytest.approx(8.0)
    assert v1.values["in_flight"] == 3
    assert "ttft_p99_ms" not in v2.values  # no streams: no token series
    assert "tokens_per_s" not in v2.values
    [tensor, _] = sample(reading(0.0, gateway), reading(10.0, gateway))
    assert "tokens_per_s" not in tensor.values  # no replica counted tokens


def _llm_replica(plane: GenerationMetrics) -> ReplicaReading:
    scraped = replica_scrape(plane.exposition().decode())
    return ReplicaReading(
        "digits", "v1", in_flight=scraped.in_flight, prompt_tokens=scraped.prompt_tokens,
        completion_tokens=scraped.completion_tokens,
    )  # fmt: skip
