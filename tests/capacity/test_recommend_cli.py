"""``ferryman recommend`` end to end: stored capacity results, an endpoint, a catalogue file."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ferryman.registry import (
    CapacityResult,
    DeploymentSpec,
    MetricSample,
    Registry,
    ServingConfig,
    VariantSpec,
)
from tests.capacity.conftest import Run

CATALOGUE = """
[[instance]]
name = "two"
vcpus = 2
memory_gib = 4
price_per_hour = 0.1

[[instance]]
name = "eight"
vcpus = 8
memory_gib = 16
price_per_hour = 0.36
"""


def stored(registry: Registry, model: str, variant: str, batch: int, qps: float) -> None:
    config = ServingConfig(
        variant=variant, max_batch_size=batch, max_delay_ms=2, intra_op_threads=1
    )
    result = CapacityResult(
        config=config,
        p99_target_ms=50,
        max_qps=qps,
        p99_ms=30,
        cpu_pct=95,
        rss_bytes=200e6,
        stop_reason="p99 over",
        cpu_count=2,
    )
    registry.capacity.put(model, 1, result, "tester")


def test_recommend_from_stored_results(
    run: Run, registry: Registry, affine: str, tmp_path: Path
) -> None:
    stored(registry, affine, "onnx", 1, 40)
    stored(registry, affine, "onnx", 8, 120)
    registry.deployments.put(
        DeploymentSpec(endpoint="shop", variants=(VariantSpec(model=affine, version=1),)), "t"
    )
    now_s = time.time()
    registry.history.add(
        [
            MetricSample(
                time_s=now_s - 600 + 10 * i, endpoint="shop", variant="v1", values={"qps": 50.0 + i}
            )
            for i in range(60)
        ],
        retention_s=86400,
    )
    catalogue = tmp_path / "mine.toml"
    catalogue.write_text(CATALOGUE)

    code, out, err = run(
        "recommend",
        "shop",
        "--qps",
        "200",
        "--p99-ms",
        "50",
        "--catalogue",
        str(catalogue),
        "--autoscale",
        "--json",
    )
    assert code == 0, err
    answer = json.loads(out)
    # 260 qps: batch 8 -> 3 replicas (2 per "two") = 2 x two = 0.2/h; batch 1 -> 7 replicas
    # -> 1 x eight = 0.36/h.
    assert answer["best"]["config"]["max_batch_size"] == 8
    assert (answer["best"]["replicas"], answer["best"]["instances"]) == (3, 2)
    assert answer["best"]["shape"]["name"] == "two"
    assert [u["candidate"]["shape"]["name"] for u in answer["runners_up"]] == ["eight"]
    # p95 of 50..109 qps is ~106; peak 109; x1.3 / 120 per replica.
    assert answer["autoscaling"]["min_replicas"] == 2
    assert answer["autoscaling"]["max_replicas"] == 2
    assert answer["autoscaling"]["peak_qps"] == 109

    code, out, _ = run("recommend", "shop", "--qps", "200", "--catalogue", str(catalogue))
    assert code == 0
    assert "Cheapest for shop (affine v1)" in out
    assert "costs 0.16/h more" in out

    code, _, err = run(
        "recommend", "shop", "--qps", "200", "--p99-ms", "10", "--catalogue", str(catalogue)
    )
    assert code == 1
    assert "no capacity was measured at a p99 target of 10 ms or stricter" in err


def test_verify_needs_a_running_control_plane_and_deploys_nothing_without_one(
    run: Run, registry: Registry, affine: str
) -> None:
    stored(registry, affine, "onnx", 8, 120)
    spec = DeploymentSpec(endpoint="shop", variants=(VariantSpec(model=affine, version=1),))
    registry.deployments.put(spec, "t")
    code, _, err = run("recommend", "shop", "--qps", "10", "--p99-ms", "50", "--verify")
    assert code == 1
    assert "no control plane runs on" in err
    assert "ferryman up" in err
    assert [d.endpoint for d in registry.deployments.list()] == ["shop"]
