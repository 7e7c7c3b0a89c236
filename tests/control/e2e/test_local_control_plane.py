"""Issue 5 end to end: deploy, scale, faults and restarts with real processes on 127.0.0.1.

The control plane (``ferryman up``), the gateway and every replica are real processes; the
traffic is real HTTP. Each test bounds its load in rate and time.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton  # type: ignore[import-untyped]  # no stubs, no py.typed

from ferryman import Client
from ferryman.registry import Autoscaling, DeploymentSpec, VariantSpec
from tests.conftest import make_unloadable_onnx
from tests.control.e2e.harness import BODY, Load, Stack, wait_for

pytestmark = pytest.mark.e2e


def infer_url(stack: Stack) -> str:
    return f"{stack.gateway}/v2/models/m/infer"


def test_deploy_then_infer_through_the_gateway(stack: Stack) -> None:
    stack.ferryman("deploy", "m", "--replicas", "2")
    wait_for(lambda: len(stack.ready_backends("m")) == 2, 60, "two ready replicas")
    wait_for(lambda: httpx.post(infer_url(stack), content=BODY).status_code == 200, 10, "gateway")

    answer = httpx.post(infer_url(stack), content=BODY)
    assert answer.json()["outputs"][0]["data"] == [1.0, 0.0, 3.0, 0.0]
    assert answer.headers["ferryman-model-version"] == "1"

    client = triton.InferenceServerClient(stack.gateway.removeprefix("http://"))
    tensor = triton.InferInput("x", [2, 4], "FP32")
    tensor.set_data_from_numpy(np.array([[1, -1, 2, -2], [0, 5, -5, 1]], dtype=np.float32))
    result = client.infer("m", [tensor])
    assert result.as_numpy("y").tolist() == [[1, 0, 2, 0], [0, 5, 0, 1]]
    assert "2/2 ready" in stack.ferryman("endpoints", "list")


def test_scale_1_4_1_under_load_fails_nothing(stack: Stack) -> None:
    """RELIABILITY Z6: new replicas take traffic only once ready; scale-down drains."""
    stack.ferryman("deploy", "m", "--replicas", "1")
    wait_for(lambda: len(stack.ready_backends("m")) == 1, 60, "one ready replica")
    with Load(infer_url(stack), rate=60, max_s=60).running() as load:
        time.sleep(1)
        stack.ferryman("scale", "m", "--replicas", "4")
        wait_for(lambda: len(stack.ready_backends("m")) == 4, 60, "four ready replicas")
        time.sleep(1)
        stack.ferryman("scale", "m", "--replicas", "1")
        wait_for(lambda: len(stack.replica_pids()) == 1, 30, "back to one replica")
        time.sleep(1)
    assert len(load.outcomes) > 100
    assert load.failures() == []


def test_a_killed_replica_fails_only_its_in_flight_requests(stack: Stack) -> None:
    """RELIABILITY F1 (CI size): kill -9 a replica every 3 s under load."""
    stack.ferryman("deploy", "m", "--replicas", "2")
    wait_for(lambda: len(stack.ready_backends("m")) == 2, 60, "two ready replicas")
    kills = []
    with Load(infer_url(stack), rate=50, max_s=40).running() as load:
        for _ in range(3):
            time.sleep(3)
            victim = stack.ready_replica_pids()[0]
            kills.append(load.now_s())
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: len(stack.ready_backends("m")) == 2, 40, "a replacement")
        time.sleep(1)
    failures = load.failures()
    # Only what was in flight on the killed replica may fail: a handful per kill at 50 req/s.
    assert len(failures) <= 3 * len(kills), failures
    for failure in failures:  # in flight at a kill, or sent within 1 s after one
        ended_s = failure.at_s + failure.latency_s
        assert any(ended_s >= at and failure.at_s <= at + 1.0 for at in kills), failure
    wait_for(lambda: len(stack.replica_pids()) == 2, 10, "the killed replicas forgotten")


def test_control_plane_killed_data_plane_serves_and_restart_adopts(stack: Stack) -> None:
    """RELIABILITY F5 (first half)."""
    stack.ferryman("deploy", "m", "--replicas", "2")
    wait_for(lambda: len(stack.ready_backends("m")) == 2, 60, "two ready replicas")
    before = stack.replica_pids()
    with Load(infer_url(stack), rate=40, max_s=30).running() as load:
        time.sleep(1)
        stack.kill_control_plane()
        time.sleep(3)  # serving with no control plane at all
        stack.up()
        time.sleep(3)  # several reconcile passes after the restart
    assert load.failures() == []
    assert stack.replica_pids() == before  # re-adopted: none started, none orphaned
    events = stack.ferryman("events", "--limit", "200", "--json")
    assert events.count('"replica.started"') == 2


def test_scale_from_zero_holds_a_burst_then_returns_to_zero(stack: Stack) -> None:
    """With min 0 an idle endpoint has no replica; a burst is held, not dropped."""
    stack.ferryman("deploy", "m", "--min", "0", "--max", "2")
    with Client.local(data_dir=stack.data_dir) as client:
        client.scale("m", autoscaling=Autoscaling(min_replicas=0, max_replicas=2, idle_to_zero_s=3))
    wait_for(lambda: stack.routes() is not None and "m" in stack.routes().endpoints, 10, "route")  # type: ignore[union-attr]
    assert stack.replica_pids() == {}
    written = stack.routes().generation  # type: ignore[union-attr]
    held: Callable[[], int] = lambda: httpx.get(f"{stack.gateway}/-/healthz").json()["generation"]  # noqa: E731
    wait_for(lambda: held() >= written, 10, "the gateway holding the table with the endpoint")

    started = time.monotonic()
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(8) as pool:
        send = lambda _: client.post(infer_url(stack), content=BODY).status_code  # noqa: E731
        statuses = list(pool.map(send, range(16)))
    elapsed_s = time.monotonic() - started
    assert statuses == [200] * 16  # held while a replica started, then answered
    assert elapsed_s < 30  # within the gateway's hold limit
    assert "requests held with no replica" in stack.ferryman("events", "--limit", "100", "--json")
    wait_for(lambda: not stack.replica_pids(), 30, "back to zero when idle")


def test_a_version_that_cannot_load_never_takes_traffic(stack: Stack, tmp_path: Path) -> None:
    """RELIABILITY F2 at the control plane: v2 passes the format gate but ONNX Runtime cannot
    load it (an operator no runtime implements). As a 10% canary it fails fast, is retried
    with back-off, never enters the route table, and v1 keeps all the traffic: 0 failed."""
    stack.ferryman("deploy", "m", "--replicas", "1")
    wait_for(lambda: len(stack.ready_backends("m")) == 1, 60, "v1 ready")
    unloadable = tmp_path / "v2.onnx"
    unloadable.write_bytes(make_unloadable_onnx())
    stack.ferryman("register", str(unloadable), "--model", "m")
    canary = DeploymentSpec(
        endpoint="m",
        variants=(
            VariantSpec(model="m", version=1, weight=90),
            VariantSpec(model="m", version=2, weight=10),
        ),
    )
    with Load(infer_url(stack), rate=40, max_s=40).running() as load:
        with Client.local(data_dir=stack.data_dir) as client:
            client.deploy(canary)
        events: Callable[[], str] = lambda: stack.ferryman("events", "--limit", "200", "--json")  # noqa: E731
        waited_s = wait_for(lambda: "failed to load" in events(), 30, "v2 reported failed")
        time.sleep(2)
    assert waited_s < 45  # well before the 60 s startup timeout: the replica said it cannot load
    assert load.failures() == []
    route = stack.routes()
    assert route is not None
    weights = {v.name: (v.weight, v.backends) for v in route.endpoints["m"].variants}
    assert weights["v2"] == (0, ())
    assert weights["v1"][0] == 100
