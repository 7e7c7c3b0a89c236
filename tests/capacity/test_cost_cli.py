"""``ferryman endpoints list --cost``: replicas x the fleet's instance price, per 1,000 requests."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ferryman.registry import DeploymentSpec, MetricSample, Registry, VariantSpec
from tests.capacity.conftest import Run

CATALOGUE = '[[instance]]\nname = "box"\nvcpus = 2\nmemory_gib = 4\nprice_per_hour = 0.5\n'


def test_endpoint_costs_from_replicas_and_recent_rate(
    run: Run, registry: Registry, affine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for endpoint, replicas in (("shop", 1), ("quiet", 3)):
        variant = VariantSpec(model=affine, version=1, replicas=replicas)
        registry.deployments.put(DeploymentSpec(endpoint=endpoint, variants=(variant,)), "t")
    registry.history.add(
        [
            MetricSample(
                time_s=time.time(),
                endpoint="shop",
                variant="v1",
                values={"qps": 25.0, "replicas": 2.0},
            )
        ],
        3600,
    )

    code, _, err = run("endpoints", "list", "--cost")
    assert code == 0
    assert "set FERRYMAN_COST__INSTANCE" in err

    (tmp_path / "prices.toml").write_text(CATALOGUE)
    monkeypatch.setenv("FERRYMAN_COST__CATALOGUE", str(tmp_path / "prices.toml"))
    monkeypatch.setenv("FERRYMAN_COST__INSTANCE", "box")
    code, out, err = run("endpoints", "list", "--cost", "--json")
    assert code == 0, err
    costs = {c["endpoint"]: c for c in json.loads(out)["endpoints"]}
    # shop: 2 replicas ready now x 0.5 = 1.0/h; 25 qps = 90,000 requests an hour.
    assert costs["shop"]["cost_per_hour"] == pytest.approx(1.0)
    assert costs["shop"]["cost_per_1k_requests"] == pytest.approx(1.0 / 90)
    # quiet: no sample, so its 3 desired replicas; no rate, so no price per request.
    assert costs["quiet"]["cost_per_hour"] == pytest.approx(1.5)
    assert costs["quiet"]["cost_per_1k_requests"] is None

    code, out, _ = run("endpoints", "list", "--cost")
    assert "each replica priced as one box from" in out
    assert "0.01111" in out  # shop's cost per 1,000 requests

    monkeypatch.setenv("FERRYMAN_COST__INSTANCE", "huge")
    code, _, err = run("endpoints", "list", "--cost")
    assert code == 1
    assert "instance 'huge' is not in the catalogue; its instances: box" in err
