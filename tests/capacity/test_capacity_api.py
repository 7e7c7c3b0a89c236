"""The capacity and cost routes on a real control-plane server, with its token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ferryman.config import CostSettings, load_settings
from ferryman.reference import ReferenceData
from ferryman.registry import DeploymentSpec, MetricSample, TokenRole, VariantSpec
from tests.control.api.conftest import RunningServer, serving
from tests.serving.conftest import affine_model, golden

TINY = {
    "batch_sizes": [4],
    "delays_ms": [1],
    "threads": [1],
    "start_qps": 20,
    "max_qps": 40,
    "step_s": 1,
    "refine_steps": 0,
    "p99_ms": 500,
}


def serve_control(data_dir: Path, **settings: object) -> Iterator[RunningServer]:
    with serving(load_settings(data_dir=data_dir, **settings)) as running:
        yield running


@pytest.fixture
def control(tmp_path: Path) -> Iterator[RunningServer]:
    yield from serve_control(tmp_path / "data")


@pytest.fixture
def priced(tmp_path: Path) -> Iterator[RunningServer]:
    yield from serve_control(tmp_path / "data", cost=CostSettings(instance="example-cpu-2"))


def api(control: RunningServer) -> httpx.Client:
    return httpx.Client(
        base_url=control.url,
        timeout=30,
        headers={"authorization": f"Bearer {control.token}", "ferryman-actor": "tester"},
    )


@pytest.mark.e2e
def test_a_sweep_runs_as_a_job_and_its_results_are_stored(control: RunningServer) -> None:
    reference = ReferenceData(golden=(golden([0.0, 1.0, 2.0, 3.0]),))
    control.registry.register("affine", affine_model(), "tester", reference=reference)
    path = "/api/v1/models/affine/versions/1/capacity"
    assert httpx.post(control.url + path, json=TINY).status_code == 401
    with api(control) as client:
        control.registry.register("plain", affine_model(), "tester")
        none = client.post("/api/v1/models/plain/versions/1/capacity", json=TINY)
        assert none.status_code == 400
        assert "plain v1 has no golden requests" in none.json()["error"]
        bad = client.post(path, json={**TINY, "step_s": 60})
        assert bad.status_code == 400
        assert "step_s" in bad.json()["error"]
        started = client.post(path, json=TINY)
        assert started.status_code == 202, started.text
        job = started.json()
        assert job["status"] == "running"
        busy = client.post(path, json=TINY)
        assert busy.status_code == 409
        assert job["id"] in busy.json()["error"]
        deadline = time.monotonic() + 90
        while job["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.5)  # another thread's sweep: nothing here to await
            job = client.get(f"/api/v1/capacity/jobs/{job['id']}").json()
        assert job["status"] == "done", job
        stored = client.get(path).json()
        assert [r["config"]["max_batch_size"] for r in stored] == [4]
        assert [(r["max_qps"], r["steps"]) for r in stored] == [
            (r["max_qps"], r["steps"]) for r in job["results"]
        ]
        assert stored[0]["measured_by"] == "api:tester"
        assert client.get("/api/v1/capacity/jobs/nope").status_code == 404


def test_costs_price_every_endpoint_by_the_fleets_instance(priced: RunningServer) -> None:
    registry = priced.registry
    registry.register("affine", affine_model(), "tester")
    spec = DeploymentSpec(endpoint="shop", variants=(VariantSpec(model="affine", version=1),))
    registry.deployments.put(spec, "t")
    registry.history.add(
        [
            MetricSample(
                time_s=time.time(),
                endpoint="shop",
                variant="v1",
                values={"qps": 10.0, "replicas": 2.0},
            )
        ],
        3600,
    )
    assert httpx.get(priced.url + "/api/v1/costs").status_code == 401
    with api(priced) as client:
        report = client.get("/api/v1/costs").json()
    assert report["instance"] == "example-cpu-2"
    (shop,) = report["endpoints"]
    assert shop["replicas"] == 2
    assert shop["cost_per_hour"] == pytest.approx(2 * report["price_per_hour"])
    assert shop["cost_per_1k_requests"] == pytest.approx(shop["cost_per_hour"] / 36)


def test_costs_say_how_to_turn_them_on(control: RunningServer) -> None:
    with api(control) as client:
        report = client.get("/api/v1/costs").json()
    assert report["endpoints"] == []
    assert "FERRYMAN_COST__INSTANCE" in report["note"]


def test_daily_costs_for_a_viewer_and_bad_days_refused(priced: RunningServer) -> None:
    registry = priced.registry
    registry.register("affine", affine_model(), "tester")
    spec = DeploymentSpec(endpoint="shop", variants=(VariantSpec(model="affine", version=1),))
    registry.deployments.put(spec, "t")
    now = time.time()
    # 2 replicas held for 10 s, then 3 for 10 s: 50 replica-seconds.
    registry.history.add(
        [
            MetricSample(time_s=now - 30 + t, endpoint="shop", variant="v1", values={"replicas": r})
            for t, r in ((0, 2.0), (10, 3.0), (20, 3.0))
        ],
        3600,
    )
    viewer = registry.tokens.create("watcher", TokenRole.VIEWER, "test").token
    headers = {"authorization": f"Bearer {viewer}"}
    deadline = time.monotonic() + 10  # the server reloads its tokens every few seconds
    while (answer := httpx.get(priced.url + "/api/v1/costs/daily?days=1", headers=headers))\
            .status_code == 401 and time.monotonic() < deadline:  # fmt: skip
        time.sleep(0.2)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    days = [d for d in report["days"] if d["endpoint"] == "shop"]
    assert sum(d["replica_seconds"] for d in days) == pytest.approx(50)
    assert report["total_cost"] == pytest.approx(50 / 3600 * report["price_per_hour"])
    with api(priced) as client:
        refused = client.get("/api/v1/costs/daily", params={"days": 0})
        assert refused.status_code in {400, 422}
        assert "days" in refused.text
        assert client.get("/api/v1/costs/daily", params={"endpoint": "../x"}).status_code == 400
