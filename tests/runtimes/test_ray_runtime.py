"""The ``ray`` runtime on a real two-node Ray cluster started by these tests (127.0.0.2 and
127.0.0.3, see raycluster.py), with ``ferryman up --runtime ray --ray-address …`` as a real
process driving it, the registry on PostgreSQL and the artifacts on S3 (moto's server on
127.0.0.1: no real S3 is reachable from the tests).

One test, one cluster, one fleet, in chapters (the suite's xdist workers steal single tests,
so two tests here could start two clusters at once; a chapter that fails names itself):
a cluster of two nodes refuses a registry on SQLite; replicas spread over both nodes, serve
through every node's gateway and refuse whoever lacks the fleet secret; a control plane on
another registry refuses the fleet; a restarted control plane re-adopts its actors; scale
1 → 4 → 1 across nodes under load; a canary that fails its accuracy gate rolled back, then a
healthy one promoted, under 100 req/s through both gateways; the control plane killed and
restarted mid-rollout (it resumes, no orphan actor); the worker node lost under load (its
replicas replaced on the head, whose gateway serves on); ``ferryman down`` stops every actor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
import ray
from sqlalchemy import create_engine, text

from ferryman.config import load_settings
from ferryman.control.rollouts.gates import CanaryPlan, Gates
from ferryman.control.rollouts.steering import start_rollout
from ferryman.fleet_secret import FLEET_SECRET_FILE
from ferryman.gateway.routes import RouteTable
from ferryman.registry import Registry
from tests.conftest import POSTGRES_URL
from tests.control.e2e.harness import Load, Stack, wait_for
from tests.control.e2e.test_feedback_rollback import Labeller, classifier, row_body
from tests.runtimes.raycluster import HEAD_IP, WORKER_IP, RayCluster, running_cluster
from tests.s3server import CREDENTIALS, S3Server

pytestmark = [pytest.mark.e2e, pytest.mark.ray, pytest.mark.postgres, pytest.mark.timeout(900)]

RATE = 100.0
"""Requests per second under load, split over the two nodes' gateways."""
PLAN = CanaryPlan(
    steps=(30, 60, 100),
    interval_s=3,
    threshold=2,
    gates=Gates(min_requests=5, max_accuracy_drop=0.05, min_labelled=15),
)


@pytest.fixture(scope="module")
def cluster(s3_server: S3Server) -> Iterator[RayCluster]:
    with running_cluster(CREDENTIALS) as running:  # the nodes' AWS chain: moto's keys
        yield running


class RayStack(Stack):
    """A ``ferryman up --runtime ray`` in a namespace of its own."""

    def routes(self) -> RouteTable | None:
        try:
            answer = httpx.get(
                f"http://127.0.0.1:{self.api_port}/api/v1/routes",
                params={"wait_s": 0}, headers=self.api_headers(), timeout=5,
            )  # fmt: skip
        except httpx.HTTPError:
            return None
        return RouteTable.model_validate(answer.json()) if answer.status_code == 200 else None

    def api_headers(self) -> dict[str, str]:
        token = (self.data_dir / "control-token").read_text().strip()
        return {"authorization": f"Bearer {token}"}

    @contextmanager
    def reading(self) -> Iterator[Registry]:
        settings = load_settings(
            data_dir=self.data_dir,
            database_url=self.extra_env["FERRYMAN_DATABASE_URL"],
            artifacts={"url": self.extra_env["FERRYMAN_ARTIFACTS__URL"],
                       "endpoint_url": self.extra_env["FERRYMAN_ARTIFACTS__ENDPOINT_URL"]},
        )  # fmt: skip
        registry = Registry.open(settings)
        try:
            yield registry
        finally:
            registry.close()

    @property
    def namespace(self) -> str:
        return self.extra_env["FERRYMAN_RAY__NAMESPACE"]

    def actors(self) -> set[str]:
        found = ray.util.list_named_actors(all_namespaces=True)
        return {entry["name"] for entry in found if entry["namespace"] == self.namespace}

    def gateway_urls(self) -> list[str]:
        names = sorted(name for name in self.actors() if name.startswith("gateway:"))
        actors = [ray.get_actor(name, namespace=self.namespace) for name in names]
        urls: list[object] = ray.get([actor.url.remote() for actor in actors])
        return [str(url) for url in urls]

    def down(self) -> None:
        super().down()
        for name in self.actors():  # whatever a failed test left
            ray.kill(ray.get_actor(name, namespace=self.namespace), no_restart=True)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A database URL on a PostgreSQL schema of its own, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def ray_stack(
    data_dir: Path,
    cluster: RayCluster,
    s3_server: S3Server,
    database_url: str | None,
    namespace: str,
) -> RayStack:
    """A stack of ``namespace`` on the cluster (its registry in the data dir without
    ``database_url``)."""
    running = RayStack(data_dir)
    running.up_timeout_s = 120  # joining the cluster twice (check, then the runtime)
    running.up_args = ["--runtime", "ray", "--ray-address", cluster.address]
    if database_url is not None:
        running.extra_env["FERRYMAN_DATABASE_URL"] = database_url
    running.extra_env.update({
        "FERRYMAN_RAY__NAMESPACE": namespace,
        "FERRYMAN_RAY__NODE_IP_ADDRESS": HEAD_IP,
        "FERRYMAN_RAY__REPLICA_NUM_CPUS": "0.2",
        "FERRYMAN_RAY__UNREACHABLE_AFTER_S": "5",
        "FERRYMAN_SERVING__DRAIN_TIMEOUT_S": "2",
        "FERRYMAN_ARTIFACTS__URL": f"s3://{s3_server.bucket()}/fleet",
        "FERRYMAN_ARTIFACTS__ENDPOINT_URL": s3_server.endpoint_url,
    })  # fmt: skip
    return running


@pytest.fixture
def stack(
    cluster: RayCluster, s3_server: S3Server, postgres_url: str, tmp_path: Path
) -> Iterator[RayStack]:
    """``ferryman up`` on Ray, registry on PostgreSQL, artifacts on S3 (moto's server),
    model m v1 (a classifier: the largest input's index) registered."""
    model = tmp_path / "v1.onnx"
    model.write_bytes(classifier(1.0))
    namespace = f"t{uuid.uuid4().hex[:12]}"
    running = ray_stack(tmp_path / "data", cluster, s3_server, postgres_url, namespace)
    running.ferryman("register", str(model), "--model", "m")
    running.up()
    yield running
    running.down()


def _hosts(urls: list[str]) -> list[str]:
    return sorted(str(httpx.URL(url).host) for url in urls)


def _serves(url: str) -> bool:
    try:
        answer = httpx.post(f"{url}/v2/models/m/infer", content=row_body(), timeout=5)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


@contextmanager
def chapter(name: str) -> Iterator[None]:
    """A named part of the scenario: its time is printed, a failure names it."""
    start = time.monotonic()
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"[{name}] {exc}") from exc
    print(f"{name}: {time.monotonic() - start:.1f} s")


@contextmanager
def loaded(
    gateways: list[str], labeller: Labeller | None = None, max_s: float = 120
) -> Iterator[list[Load]]:
    """RATE requests per second split over ``gateways``; labels posted every 0.5 s."""
    answered = labeller.answered if labeller is not None else None
    loads = [
        Load(f"{url}/v2/models/m/infer", rate=RATE / len(gateways), max_s=max_s, workers=8,
             body=row_body, answered=answered)
        for url in gateways
    ]  # fmt: skip
    stop = threading.Event()
    with ExitStack() as running:
        for load in loads:
            running.enter_context(load.running())
        flusher = Labeller.every(0.5, labeller.flush, stop) if labeller is not None else None
        try:
            yield loads
        finally:
            stop.set()
            if flusher is not None:
                flusher.join(timeout=30)


def _failures(loads: list[Load]) -> list[object]:
    return [failure for load in loads for failure in load.failures()]


def _sent(loads: list[Load]) -> int:
    return sum(len(load.outcomes) for load in loads)


def test_a_fleet_on_two_ray_nodes(
    stack: RayStack, cluster: RayCluster, s3_server: S3Server, tmp_path: Path
) -> None:
    with chapter("a cluster of two nodes refuses a registry on SQLite"):
        _refuses_sqlite(cluster, s3_server, tmp_path)
    with chapter("spread over both nodes, served by both gateways, behind the fleet secret"):
        gateways = spread_and_serve(stack)
    with chapter("a control plane on another registry refuses the fleet"):
        _another_registry_refused(stack, cluster, s3_server, tmp_path)
    with chapter("restart re-adopts"):
        _restart_readopts(stack)
    with chapter("scale 1 -> 4 -> 1 across nodes under load"):
        _scale_1_4_1(stack, gateways)
    with chapter("canary v2 rolled back by accuracy, v3 promoted, under load"):
        _canary_back_then_forward(stack, gateways, tmp_path)
    with chapter("control plane killed mid-rollout"):
        _killed_mid_rollout(stack, gateways, tmp_path)
    with chapter("the worker node lost under load"):
        _node_lost(stack, cluster, gateways)
    with chapter("down"):
        head_gateway = next(url for url in gateways if HEAD_IP in url)
        stack.kill_control_plane()
        assert "Stopped 2 replicas" in stack.ferryman("down", *stack.up_args)
        assert stack.actors() == set()
        assert not _serves(head_gateway)


def _refuses_sqlite(cluster: RayCluster, s3_server: S3Server, tmp_path: Path) -> None:
    data_dir = tmp_path / "sqlite" / "data"  # a state dir of its own too
    on_sqlite = ray_stack(data_dir, cluster, s3_server, None, f"t{uuid.uuid4().hex[:12]}")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ferryman")), "up", *on_sqlite.up_args],
        capture_output=True, text=True, env=on_sqlite.env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert "has 2 nodes" in message
    assert "PostgreSQL" in message
    assert "S3" not in message  # the artifacts are on S3 already


def spread_and_serve(stack: RayStack) -> list[str]:
    stack.ferryman("deploy", "m", "--replicas", "2")
    took_s = wait_for(lambda: len(stack.ready_backends("m")) == 2, 90, "two ready replicas")
    print(f"deploy -> two replicas ready on Ray: {took_s:.1f} s")
    backends = stack.ready_backends("m")
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
    body = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,-2,3,-4]}]}'
    probabilities = httpx.post(f"{gateways[1]}/v2/models/m/infer", content=body).json()
    assert max(range(4), key=probabilities["outputs"][0]["data"].__getitem__) == 2

    # nothing on a node reaches a replica around the gateway: it wants the fleet secret
    secret = (stack.data_dir / FLEET_SECRET_FILE).read_text().strip()
    for backend in backends:
        assert httpx.post(f"{backend}/v2/models/m/infer", content=body).status_code == 401
        assert httpx.get(f"{backend}/metrics").status_code == 401
        with_secret = {"authorization": f"Bearer {secret}"}
        assert httpx.post(
            f"{backend}/v2/models/m/infer", content=body, headers=with_secret
        ).status_code == 200  # fmt: skip
    # every replica says whose registry it loads from
    with stack.reading() as registry:
        identity = registry.identity()
    for backend in backends:
        assert httpx.get(f"{backend}/v2/health/live").json()["registry"] == identity
    return gateways


def _another_registry_refused(
    stack: RayStack, cluster: RayCluster, s3_server: S3Server, tmp_path: Path
) -> None:
    with postgres_schema() as other_url:
        other = ray_stack(
            tmp_path / "other" / "data", cluster, s3_server, other_url, stack.namespace
        )
        done = subprocess.run(
            [str(Path(sys.executable).with_name("ferryman")), "up", *other.up_args],
            capture_output=True, text=True, env=other.env, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    with stack.reading() as registry:
        identity = registry.identity()
    message = done.stderr.strip().splitlines()[-1]
    assert f"belongs to registry {identity}" in message
    assert "2 replicas and the gateway" in message
    assert len(stack.ready_backends("m")) == 2  # the fleet was left alone


def _restart_readopts(stack: RayStack) -> None:
    backends = stack.ready_backends("m")
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


def _scale_1_4_1(stack: RayStack, gateways: list[str]) -> None:
    stack.ferryman("scale", "m", "--replicas", "1")
    wait_for(lambda: len(_replica_actors(stack)) == 1, 30, "one replica")
    with loaded(gateways) as loads:
        time.sleep(1)
        stack.ferryman("scale", "m", "--replicas", "4")
        wait_for(lambda: len(stack.ready_backends("m")) == 4, 90, "four ready replicas")
        assert _hosts(stack.ready_backends("m"))[::3] == [HEAD_IP, WORKER_IP]  # both nodes
        time.sleep(1)
        stack.ferryman("scale", "m", "--replicas", "1")
        wait_for(lambda: len(_replica_actors(stack)) == 1, 30, "back to one replica")
        time.sleep(1)
    assert _sent(loads) > 500
    assert _failures(loads) == []
    stack.ferryman("scale", "m", "--replicas", "2")
    wait_for(lambda: len(stack.ready_backends("m")) == 2, 60, "two replicas again")


def _replica_actors(stack: RayStack) -> set[str]:
    return {name for name in stack.actors() if not name.startswith("gateway:")}


def _register(stack: RayStack, tmp_path: Path, sign: float, version: int) -> None:
    model = tmp_path / f"v{version}.onnx"
    model.write_bytes(classifier(sign))
    stack.ferryman("register", str(model), "--model", "m")


def _rollout(stack: RayStack, registry: Registry, version: int) -> str:
    """Start a canary of ``version`` (PLAN) and wait for its end; its final status."""
    record = start_rollout(registry, "m", version, strategy="canary", plan=PLAN, actor="test")
    try:
        wait_for(lambda: registry.rollouts.get(record.id).status.is_final, 150, f"v{version}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {_story(registry, record.id)}") from None
    final = registry.rollouts.get(record.id)
    return f"{final.status.value}: {final.reason}"


def _story(registry: Registry, rollout_id: int) -> str:
    """Where a rollout is, what the registry collected and labelled, and the newest events
    of m: what a timeout needs to say."""
    record = registry.rollouts.get(rollout_id)
    payloads = registry.payloads
    collected = {name: len(payloads.search("m", variant=name, limit=1000))
                 for name, _, _ in payloads.variants("m")}  # fmt: skip
    labelled = {name: len(payloads.labelled("m", name).actual) for name in collected}
    events = [f"{e.action} {e.details}" for e in registry.list_events("m", 3)]
    return (
        f"{record.status.value} at {record.weight}% ({record.reason}); payload rows collected "
        f"{collected}, labelled {labelled}; events: {events}"
    )


def _canary_back_then_forward(stack: RayStack, gateways: list[str], tmp_path: Path) -> None:
    _register(stack, tmp_path, -1.0, 2)  # answers fast and well-formed, but wrongly
    _register(stack, tmp_path, 2.0, 3)  # as right as v1
    labeller = _labeller(stack)
    with stack.reading() as registry, loaded(gateways, labeller, max_s=400) as loads:
        try:
            v2 = _rollout(stack, registry, 2)
            v3 = _rollout(stack, registry, 3)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; labels sent {labeller.sent}") from None
        wait_for(lambda: _only_version(stack, 3), 30, "v3 alone")
    assert v2.startswith("rolled_back"), v2
    assert "accuracy" in v2, v2
    assert v3.startswith("promoted"), v3
    answered = {o.variant for load in loads for o in load.outcomes}
    assert {"v1", "v2", "v3"} <= answered
    assert _failures(loads) == []
    assert labeller.sent > 0


def _labeller(stack: RayStack) -> Labeller:
    """Labels for the newest 100 answers of each flush: at 100 req/s a loaded machine's
    control plane may take seconds per post, and a backlog of old labels would keep the
    candidate's from arriving in time."""
    token = stack.api_headers()["authorization"].removeprefix("Bearer ")
    return Labeller(f"http://127.0.0.1:{stack.api_port}", token, newest=100)


def _only_version(stack: RayStack, version: int) -> bool:
    replicas = _replica_actors(stack)
    return len(replicas) == 2 and all(name.startswith(f"m-v{version}-") for name in replicas)


def _killed_mid_rollout(stack: RayStack, gateways: list[str], tmp_path: Path) -> None:
    _register(stack, tmp_path, 3.0, 4)
    labeller = _labeller(stack)
    with stack.reading() as registry, loaded(gateways, labeller, max_s=300) as loads:
        record = start_rollout(registry, "m", 4, strategy="canary", plan=PLAN, actor="test")
        wait_for(lambda: registry.rollouts.get(record.id).weight >= 30, 60, "the first step")
        stack.kill_control_plane()
        time.sleep(1)  # the data plane serves with no control plane
        stack.up()
        assert registry.rollouts.get(record.id).weight >= 30  # resumed, never back
        wait_for(lambda: registry.rollouts.get(record.id).status.is_final, 90, "v4 decided")
        final = registry.rollouts.get(record.id)
        wait_for(lambda: _only_version(stack, 4), 30, "v4 alone")
        events = registry.list_events("m", 1000)
    assert final.status.value == "promoted", final.reason
    promotions = [event for event in events if event.action == "rollout.promoted"]
    assert len(promotions) == 2  # v3's and v4's: never one twice
    assert _failures(loads) == []
    # no orphan: the fleet's actors are its two replicas and two gateways, all in the table
    time.sleep(1)
    names = stack.actors()
    assert len(names) == 4, names
    assert len(stack.ready_backends("m")) == 2


def _node_lost(stack: RayStack, cluster: RayCluster, gateways: list[str]) -> None:
    backends = stack.ready_backends("m")
    lost = [url for url in backends if WORKER_IP in url]
    assert lost, f"no replica on the worker node: {backends}"
    head_gateway = next(url for url in gateways if HEAD_IP in url)
    with loaded([head_gateway], max_s=60) as loads:
        time.sleep(1)
        killed_s = loads[0].now_s()
        os.kill(cluster.worker_raylet_pid(), signal.SIGKILL)
        wait_for(lambda: not set(lost) & set(stack.ready_backends("m")), 15, "lost unrouted")
        took_s = wait_for(lambda: len(stack.ready_backends("m")) == 2, 60, "a replacement")
        print(f"node lost -> replacement ready: {took_s:.1f} s")
        time.sleep(1)
    assert _hosts(stack.ready_backends("m")) == [HEAD_IP, HEAD_IP]
    with stack.reading() as registry:
        failed = registry.list_events(action="replica.failed", limit=100)
    assert [event.details["reason"] for event in failed] != []
    # only what was in flight on the lost node's replicas may fail
    failures = loads[0].failures()
    assert len(failures) <= 10, failures
    for failure in failures:
        assert killed_s - 1 <= failure.at_s <= killed_s + 2, failure
    assert _serves(head_gateway)
