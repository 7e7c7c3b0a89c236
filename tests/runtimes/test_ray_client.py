"""The ``ray`` runtime driven through Ray Client, as the control plane of ``ferryman export
kubernetes``'s KubeRay overlay drives its RayCluster: that control plane is no Ray node, so
``ray.address`` is the head's client port (``ray://HEAD:PORT``), and its gateway actors
reach the API at ``ray.control_url`` (there its Service; here a name for loopback).

On the real two-node cluster of raycluster.py (a cluster of its own: this module's), with
``ferryman up`` as a real process, the registry on PostgreSQL and the artifacts on S3
(moto): replicas spread over both nodes and serve through both nodes' gateways, behind the
fleet secret, and ``ferryman down`` through Ray Client stops every actor.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.control.e2e.test_feedback_rollback import classifier
from tests.runtimes.raycluster import RayCluster, running_cluster
from tests.runtimes.test_ray_runtime import ray_stack, spread_and_serve
from tests.s3server import CREDENTIALS, S3Server

pytestmark = [pytest.mark.e2e, pytest.mark.ray, pytest.mark.postgres, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def cluster(s3_server: S3Server) -> Iterator[RayCluster]:
    with running_cluster(CREDENTIALS) as running:  # the nodes' AWS chain: moto's keys
        yield running


def test_a_control_plane_that_is_no_ray_node_runs_the_fleet_through_ray_client(
    cluster: RayCluster, s3_server: S3Server, postgres_url: str, tmp_path: Path
) -> None:
    model = tmp_path / "v1.onnx"
    model.write_bytes(classifier(1.0))
    stack = ray_stack(tmp_path / "data", cluster, s3_server, postgres_url,
                      f"t{uuid.uuid4().hex[:12]}")  # fmt: skip
    stack.up_args = ["--runtime", "ray", "--ray-address", cluster.client_address]
    del stack.extra_env["FERRYMAN_RAY__NODE_IP_ADDRESS"]  # a Ray Client driver is no node
    stack.extra_env["FERRYMAN_RAY__CONTROL_URL"] = f"http://localhost:{stack.api_port}"
    stack.ferryman("register", str(model), "--model", "m")
    stack.up()
    try:
        spread_and_serve(stack)
        stack.kill_control_plane()
        assert "Stopped 2 replicas" in stack.ferryman("down", *stack.up_args)
        assert stack.actors() == set()
    finally:
        stack.down()
