"""The ``ray`` runtime on a real two-node Ray cluster started by these tests (127.0.0.2 and
127.0.0.3, see raycluster.py), with ``ferryman up`` as a real process driving it and the
artifacts on S3 (moto's server on 127.0.0.1: no real S3 is reachable from the tests).

One scenario (the suite's xdist workers must not start two clusters at once): replicas
spread over both nodes and serving through every node's gateway, which read the route table
from the control plane's API; a control plane killed and restarted re-adopts its actors (no
duplicate, no orphan); the worker node's raylet killed: its replica is reported failed and
replaced on the head, whose gateway serves on; ``ferryman down`` stops every actor.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import ray

from ferryman.gateway.routes import RouteTable
from tests.control.e2e.harness import BODY, Stack, wait_for
from tests.runtimes.raycluster import HEAD_IP, WORKER_IP, RayCluster, running_cluster
from tests.s3server import CREDENTIALS, S3Server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def cluster(s3_server: S3Server) -> Iterator[RayCluster]:
    with running_cluster(CREDENTIALS) as running:  # the nodes' AWS chain: moto's keys
        yield running


class RayStack(Stack):
    """A ``ferryman up`` on the Ray runtime, in a namespace of its own."""

    def routes(self) -> RouteTable | None:
        token = (self.data_dir / "control-token").read_text().strip()
        try:
            answer = httpx.get(
                f"http://127.0.0.1:{self.api_port}/api/v1/routes",
                params={"wait_s": 0}, headers={"authorization": f"Bearer {token}"}, timeout=5,
            )  # fmt: skip
        except httpx.HTTPError:
            return None
        return RouteTable.model_validate(answer.json()) if answer.status_code == 200 else None

    @property
    def namespace(self) -> str:
        return self.extra_env["FERRYMAN_RAY__NAMESPACE"]

    def actors(self) -> set[str]:
        found = ray.util.list_named_actors(all_namespaces=True)
        return {entry["name"] for entry in found if entry["namespace"] == self.namespace}

    def gateway_urls(self) -> list[str]:
        names = sorted(name for name in self.actors() if name.startswith("gateway:"))
        actors = [ray.get_actor(name, namespace=self.namespace) for name in names]
        urls: list[object] = ray.get([a.ensure_running.remote() for a in actors])
        return [str(url) for url in urls]

    def down(self) -> None:
        super().down()
        for name in self.actors():  # whatever a failed test left
            ray.kill(ray.get_actor(name, namespace=self.namespace), no_restart=True)


@pytest.fixture
def stack(
    cluster: RayCluster, s3_server: S3Server, tmp_path: Path, onnx_bytes: Callable[..., bytes]
) -> Iterator[RayStack]:
    """``ferryman up`` on Ray with its artifacts on S3 (moto's server), model m registered."""
    model = tmp_path / "m.onnx"
    model.write_bytes(onnx_bytes())
    running = RayStack(tmp_path / "data")
    running.extra_env.update({
        "FERRYMAN_CONTROL__RUNTIME": "ray",
        "FERRYMAN_RAY__ADDRESS": cluster.address,
        "FERRYMAN_RAY__NAMESPACE": f"t{uuid.uuid4().hex[:12]}",
        "FERRYMAN_RAY__NODE_IP_ADDRESS": HEAD_IP,
        "FERRYMAN_RAY__REPLICA_NUM_CPUS": "0.3",
        "FERRYMAN_RAY__UNREACHABLE_AFTER_S": "5",
        "FERRYMAN_SERVING__DRAIN_TIMEOUT_S": "2",
        "FERRYMAN_ARTIFACTS__URL": f"s3://{s3_server.bucket()}/fleet",
        "FERRYMAN_ARTIFACTS__ENDPOINT_URL": s3_server.endpoint_url,
    })  # fmt: skip
    running.ferryman("register", str(model), "--model", "m")
    running.up()
    yield running
    running.down()


def _hosts(urls: list[str]) -> list[str]:
    return sorted(httpx.URL(url).host for url in urls)


def _serves(url: str) -> bool:
    try:
        return httpx.post(f"{url}/v2/models/m/infer", content=BODY, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _deploy_two(stack: RayStack) -> list[str]:
    stack.ferryman("deploy", "m", "--replicas", "2")
    took_s = wait_for(lambda: len(stack.ready_backends("m")) == 2, 90, "two ready replicas")
    print(f"deploy -> two replicas ready on Ray: {took_s:.1f} s")
    return stack.ready_backends("m")


def test_a_fleet_on_two_ray_nodes_spreads_serves_restarts_loses_a_node_and_stops(
    stack: RayStack, cluster: RayCluster
) -> None:
    """One scenario, so that the suite's workers never start two clusters at once."""
    backends = _deploy_two(stack)
    assert _hosts(backends) == [HEAD_IP, WORKER_IP]  # SPREAD: one on each node
    # the replicas loaded the model from S3, through the node cache, not the data dir
    assert not (stack.data_dir / "artifacts").exists()
    assert list((stack.data_dir / "artifact-cache" / "objects").rglob("*"))

    # a gateway on each node, each fed the route table by the control plane's API
    wait_for(lambda: len(stack.gateway_urls()) == 2, 30, "a gateway on each node")
    gateways = stack.gateway_urls()
    assert _hosts(gateways) == [HEAD_IP, WORKER_IP]
    for gateway in gateways:
        wait_for(partial(_serves, gateway), 20, f"inference through {gateway}")
    answer = httpx.post(f"{gateways[1]}/v2/models/m/infer", content=BODY).json()
    assert answer["outputs"][0]["data"] == [1.0, 0.0, 3.0, 0.0]

    # the control plane killed and restarted: the same actors, re-adopted
    before = stack.actors()
    assert len(before) == 4  # two replicas, two gateways
    generation = stack.routes().generation  # type: ignore[union-attr]
    stack.kill_control_plane()
    stack.up()
    wait_for(lambda: stack.routes() is not None, 30, "the restarted control loop's table")
    # it went on from the table the gateways held, so they take its next tables
    assert stack.routes().generation >= generation  # type: ignore[union-attr]
    wait_for(lambda: len(stack.ready_backends("m")) == 2, 30, "the replicas re-adopted")
    assert sorted(stack.ready_backends("m")) == sorted(backends)
    assert stack.actors() == before  # no duplicate, no orphan
    with stack.reading() as registry:
        assert len(registry.list_events(action="replica.started", limit=100)) == 2

    # the worker node lost: its replica fails and is replaced on the head
    lost = next(url for url in backends if WORKER_IP in url)
    os.kill(cluster.worker_raylet_pid(), signal.SIGKILL)
    wait_for(lambda: lost not in stack.ready_backends("m"), 15, "the lost replica unrouted")
    took_s = wait_for(lambda: len(stack.ready_backends("m")) == 2, 60, "a replacement")
    print(f"node lost -> replacement ready: {took_s:.1f} s")
    assert _hosts(stack.ready_backends("m")) == [HEAD_IP, HEAD_IP]
    with stack.reading() as registry:
        failed = registry.list_events(action="replica.failed", limit=100)
    assert [event.details["reason"] for event in failed] != []
    head_gateway = next(url for url in gateways if HEAD_IP in url)
    assert _serves(head_gateway)

    # ferryman down: every actor of the fleet drained and gone, servers with them
    stack.kill_control_plane()
    assert "Stopped 2 replicas" in stack.ferryman("down")
    assert stack.actors() == set()
    assert not _serves(head_gateway)
