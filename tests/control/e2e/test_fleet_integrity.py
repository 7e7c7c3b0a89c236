"""Issue 13 end to end: faults of the control plane's own making leave the fleet serving.

Real processes on 127.0.0.1: ``ferryman up``, the gateway and the replicas; real HTTP
load, bounded in rate and time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ferryman.runtimes.local.children import process_start
from tests.control.e2e.harness import BODY, Load, Stack, wait_for

pytestmark = pytest.mark.e2e


def infer_url(stack: Stack) -> str:
    return f"{stack.gateway}/v2/models/m/infer"


def refused_up(stack: Stack, **env: str) -> str:
    """Run ``ferryman up`` expecting a refusal; its stderr."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ferryman")), "up"],
        env={**stack.env, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    return done.stderr


def test_a_control_plane_on_a_wrong_or_new_registry_leaves_the_fleet_alone(
    stack: Stack, tmp_path: Path
) -> None:
    """A mistyped database URL, then a deleted registry.db: refused in one line, 0 failed."""
    stack.ferryman("deploy", "m", "--replicas", "2")
    wait_for(lambda: len(stack.ready_backends("m")) == 2, 60, "two ready replicas")
    with stack.reading() as registry:
        owner = registry.identity()
    wait_for(lambda: (held := stack.routes()) is not None and held.registry == owner, 10, "stamp")
    before, table = stack.replica_pids(), stack.routes()
    moved = tmp_path / "moved"
    moved.mkdir()
    with Load(infer_url(stack), rate=40, max_s=60).running() as load:
        time.sleep(1)
        stack.kill_control_plane()
        typo = refused_up(stack, FERRYMAN_DATABASE_URL=f"sqlite:///{tmp_path / 'typo.db'}")
        assert f"belongs to registry {owner}; this one is " in typo
        assert "(new)" in typo
        assert "--adopt" in typo
        for name in ("registry.db", "registry.db-wal", "registry.db-shm"):
            if (stack.data_dir / name).exists():
                os.replace(stack.data_dir / name, moved / name)
        deleted = refused_up(stack)
        assert f"belongs to registry {owner}" in deleted
        (stack.data_dir / "registry.db").unlink()  # the empty one the refused start made
        for path in moved.iterdir():
            os.replace(path, stack.data_dir / path.name)
        stack.up()  # the right registry: re-adopts the fleet
        time.sleep(2)
    assert len(load.outcomes) > 100
    assert load.failures() == []
    assert stack.replica_pids() == before
    after = stack.routes()
    assert after is not None
    assert table is not None
    assert after.endpoints["m"].variants == table.endpoints["m"].variants


def serving_gateway(stack: Stack) -> int | None:
    """The pid of the gateway that answers on the port now."""
    try:
        pid = httpx.get(f"{stack.gateway}/-/healthz", timeout=0.5).json()["pid"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return int(pid)


def gateway_answers(stack: Stack) -> bool:
    try:
        return httpx.get(f"{stack.gateway}/-/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_deleted_route_table_and_a_killed_gateway_serve_again_within_2_s(stack: Stack) -> None:
    """The reconciler writes the table again although no deployment changed."""
    stack.ferryman("deploy", "m", "--replicas", "2")
    wait_for(lambda: len(stack.ready_backends("m")) == 2, 60, "two ready replicas")
    wait_for(lambda: httpx.post(infer_url(stack), content=BODY).status_code == 200, 10, "served")
    with Load(infer_url(stack), rate=40, max_s=30).running() as load:
        time.sleep(1)
        (stack.data_dir / "routes.json").unlink()
        killed_at = load.now_s()
        for pid in stack.gateway_pids():  # the serving one and its standby
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: gateway_answers(stack), 20, "a gateway again")
        back_at = load.now_s()
        wait_for(lambda: httpx.post(infer_url(stack), content=BODY).status_code == 200, 2, "200")
        time.sleep(2)
    assert [o for o in load.failures(since_s=back_at + 2.0)] == []
    # Before the kill nothing fails; a request still in flight on the gateway when it is
    # killed may (the catalogue's "failures <= requests in flight").
    ended_before_kill = [o for o in load.failures(until_s=killed_at)
                         if o.at_s + o.latency_s < killed_at]  # fmt: skip
    assert ended_before_kill == []


def kill_serving_gateway(stack: Stack, load: Load) -> tuple[float, float]:
    """SIGKILL the serving gateway; (when it was killed, when its sockets were closed).

    The kernel frees a killed process's memory before it closes its sockets, so what
    reaches the gateway until then is in flight on it too.
    """
    pid = serving_gateway(stack)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed_s = load.now_s()
    while process_start(pid) is not None:  # a zombie has closed its sockets
        time.sleep(0.001)
    return killed_s, load.now_s()


def in_flight(load: Load, since_s: float, until_s: float) -> int:
    """Requests sent before ``until_s`` and answered (or failed) after ``since_s``."""
    return sum(1 for o in load.outcomes if o.at_s <= until_s and o.at_s + o.latency_s >= since_s)


def test_the_gateway_killed_twice_in_10_s_fails_only_requests_in_flight(stack: Stack) -> None:
    """RELIABILITY Z-gateway: the warm standby serves the moment the serving gateway dies."""
    stack.ferryman("deploy", "m", "--replicas", "2")
    wait_for(lambda: len(stack.ready_backends("m")) == 2, 60, "two ready replicas")
    wait_for(lambda: len(stack.gateway_pids()) == 2, 20, "a gateway and its standby")
    kills = []
    with Load(infer_url(stack), rate=100, max_s=20).running() as load:
        time.sleep(2)
        for _ in range(2):
            kills.append(kill_serving_gateway(stack, load))
            time.sleep(4)
        time.sleep(2)
    assert len(load.outcomes) > 1000
    assert kills[1][0] - kills[0][0] < 10
    # In flight on the killed gateway: what was sent to it before its sockets closed, and
    # at most one request per client connection that raced the close (16 workers).
    # A connection opened in the last moment before the close may also fail (seen: 39 of 38
    # on a loaded 2-core machine), so two more per kill.
    at_risk = sum(in_flight(load, killed, closed) + load.workers + 2 for killed, closed in kills)
    assert len(load.failures()) <= at_risk, (load.failures(), at_risk, kills)


def test_a_stopped_gateway_is_replaced_failing_only_requests_in_flight(stack: Stack) -> None:
    """SIGSTOP: the health request misses its deadline twice, the gateway is killed, the
    standby serves; only what waited on the stopped one fails."""
    stack.ferryman("deploy", "m", "--replicas", "2")
    wait_for(lambda: len(stack.ready_backends("m")) == 2, 60, "two ready replicas")
    wait_for(lambda: len(stack.gateway_pids()) == 2, 20, "a gateway and its standby")
    load = Load(infer_url(stack), rate=100, max_s=20)
    with load.running():
        time.sleep(2)
        frozen = serving_gateway(stack)
        assert frozen is not None
        os.kill(frozen, signal.SIGSTOP)
        stopped_at = load.now_s()
        replaced_s = wait_for(
            lambda: serving_gateway(stack) not in (None, frozen), 10, "the standby serving"
        )
        time.sleep(3)
    assert replaced_s < 5.0  # two missed health requests of 1 s, and a loop pass
    assert not Path(f"/proc/{frozen}").exists()  # killed, not left stopped
    failures = load.failures()
    assert all(stopped_at - 0.1 <= o.at_s <= stopped_at + replaced_s for o in failures)
    # Each worker has one request in flight on the frozen gateway; a worker whose broken
    # connection reconnects before the frozen process is killed can land on its listening
    # socket once more (the kernel keeps handing it connections until then), so the bound is
    # the in-flight requests plus that race, at most twice: looser than "in flight" alone,
    # seen at 17 of 16 on a loaded 2-core machine.
    assert len(failures) <= load.workers + 2, failures


def test_a_stopped_replica_costs_its_in_flight_requests_one_try_deadline(
    tmp_path: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    """SIGSTOP one replica of two: what it holds fails with 504 at the 1 s try deadline,
    never after it; everything else is served."""
    model = tmp_path / "m.onnx"
    model.write_bytes(onnx_bytes())
    stack = Stack(tmp_path / "data", extra_env={"FERRYMAN_GATEWAY__TRY_TIMEOUT_S": "1"})
    try:
        stack.ferryman("register", str(model), "--model", "m")
        stack.up()
        stack.ferryman("deploy", "m", "--replicas", "2")
        wait_for(lambda: len(stack.ready_backends("m")) == 2, 60, "two ready replicas")
        wait_for(lambda: httpx.post(infer_url(stack), content=BODY).status_code == 200, 10, "200")
        with Load(infer_url(stack), rate=50, max_s=20).running() as load:
            time.sleep(2)
            frozen = stack.ready_replica_pids()[0]
            os.kill(frozen, signal.SIGSTOP)
            stopped_at = load.now_s()
            time.sleep(6)
        failures = load.failures()
        assert all(o.status == 504 for o in failures), failures
        assert all(o.latency_s < 1.5 for o in failures), failures
        assert all(o.at_s >= stopped_at - 0.1 for o in failures), failures
        assert len(failures) <= 3, failures  # in flight when it stopped, and before it was marked
        assert len(load.failures(since_s=stopped_at + 1.5)) == 0
    finally:
        stack.down()
