"""``/api/v1/rollouts`` and ``/api/v1/policies`` against the real server over HTTP.

The rollout controller runs in the test process on the server's registry with scripted
gateway totals and a stepped clock, so the timeline it writes is read back over the API.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ferryman.control.metrics.traffic import Traffic
from ferryman.control.rollouts.controller import RolloutController
from ferryman.control.rollouts.observer import Sources
from ferryman.registry import DeploymentSpec, VariantSpec
from ferryman.types import Slot
from tests.control.api.conftest import RunningServer
from tests.support import SteppedClock as Clock

CANARY = {
    "steps": [50, 100], "interval_s": 5, "threshold": 1,
    "gates": {"min_requests": 10, "min_success_rate": 0.95},
}  # fmt: skip


class Gateway:
    """Gateway totals that grow by what the test says each window."""

    def __init__(self) -> None:
        self.totals: dict[Slot, Traffic] = {}

    def serve(self, variant: str, requests: int, errors: int = 0) -> None:
        before = self.totals.get(("m", variant), Traffic())
        count = before.requests + requests
        self.totals[("m", variant)] = Traffic(
            count, before.errors + errors, {0.02: count, math.inf: count}
        )

    def __call__(self) -> dict[Slot, Traffic]:
        return dict(self.totals)


@pytest.fixture
def api(control: RunningServer, onnx_bytes: Callable[..., bytes]) -> Iterator[httpx.Client]:
    """Model m v1..v3, endpoint m serving v1; a client with the token."""
    for seed in (0.0, 1.0, 2.0):
        control.registry.register("m", onnx_bytes(seed_value=seed), "t")
    spec = DeploymentSpec(endpoint="m", variants=(VariantSpec(model="m", version=1),))
    control.registry.deployments.put(spec, "t")
    control.registry.set_alias("m", "production", 1, "t")
    headers = {"authorization": f"Bearer {control.token}", "ferryman-actor": "ops"}
    with httpx.Client(base_url=control.url + "/api/v1", headers=headers) as client:
        yield client


def weights(client: httpx.Client) -> dict[str, int]:
    spec = client.get("/deployments/m").json()["spec"]
    return {v["model"] + f"@{v['version']}": v["weight"] for v in spec["variants"]}


def start(client: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = client.post("/rollouts", json={"endpoint": "m", "version": 2, **body})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_a_canary_started_over_the_api_tells_its_story_with_figures(
    api: httpx.Client, control: RunningServer
) -> None:
    record = start(api, strategy="canary", plan=CANARY)
    assert record["status"] == "progressing"
    assert record["strategy"] == "canary"
    assert record["plan"]["steps"] == [50, 100]
    assert record["created_by"] == "api:ops"
    assert {"state", "failed_checks", "finished_at", "baseline", "candidate"} <= set(record)

    gateway, clock = Gateway(), Clock()
    controller = RolloutController(control.registry, Sources(gateway), clock)
    controller.tick()
    assert weights(api) == {"m@1": 50, "m@2": 50}
    for _ in range(2):
        gateway.serve("v1", 100)
        gateway.serve("v2", 80, errors=1)
        clock.now_s += 5
        controller.tick()

    done = api.get(f"/rollouts/{record['id']}").json()
    assert done["status"] == "promoted"
    assert weights(api) == {"m@2": 100}
    timeline = api.get(f"/rollouts/{record['id']}/events").json()
    assert [e["action"] for e in timeline] == [
        "rollout.created", "rollout.step", "rollout.step", "rollout.promoted",
    ]  # fmt: skip
    assert timeline[0]["actor"] == "api:ops"
    assert timeline[0]["details"]["strategy"] == "canary"
    step = timeline[2]["details"]
    assert step["weight"] == 100
    assert step["figures"]["requests"] == 80
    assert step["figures"]["success_rate"] == pytest.approx(79 / 80, abs=1e-4)
    assert step["figures"]["p99_ms"] == pytest.approx(19.8, abs=0.1)
    assert step["figures"]["verdict"] == "pass"
    assert "gates met" in step["reason"]
    assert "at" in timeline[-1]
    assert api.get("/rollouts", params={"endpoint": "m", "active_only": True}).json() == []
    assert [r["id"] for r in api.get("/rollouts").json()] == [record["id"]]


def test_pause_resume_promote_and_409_once_ended(api: httpx.Client) -> None:
    record = start(api, plan=CANARY)
    path = f"/rollouts/{record['id']}"
    assert api.post(path + "/pause").json()["status"] == "paused"
    assert api.post(path + "/resume").json()["status"] == "progressing"
    promoted = api.post(path + "/promote").json()
    assert (promoted["status"], promoted["weight"]) == ("promoted", 100)
    assert api.get("/models/m").json()["aliases"]["production"] == 2
    for action in ("pause", "resume", "promote", "abort"):
        refused = api.post(f"{path}/{action}")
        assert refused.status_code == 409, action
        assert "already ended (promoted)" in refused.json()["error"]


def test_abort_and_rollback_of_an_active_rollout_are_told_apart(api: httpx.Client) -> None:
    first = start(api, plan=CANARY)
    aborted = api.post(f"/rollouts/{first['id']}/abort").json()
    assert (aborted["status"], aborted["reason"]) == ("aborted", "aborted by hand")
    second = start(api, plan=CANARY)
    rolled = api.post(f"/rollouts/{second['id']}/rollback").json()
    assert (rolled["status"], rolled["reason"]) == ("rolled_back", "rolled back by hand")
    assert weights(api) == {"m@1": 100}
    assert api.get("/models/m").json()["aliases"]["production"] == 1


def test_rollback_after_a_promotion_puts_the_baseline_and_the_alias_back(
    api: httpx.Client,
) -> None:
    record = start(api, plan=CANARY)
    api.post(f"/rollouts/{record['id']}/promote")
    assert weights(api) == {"m@2": 100}

    undone = api.post(f"/rollouts/{record['id']}/rollback")
    assert undone.status_code == 200, undone.text
    assert undone.json()["status"] == "rolled_back"
    assert "promotion undone" in undone.json()["reason"]
    assert weights(api) == {"m@1": 100}
    assert api.get("/models/m").json()["aliases"]["production"] == 1
    last = api.get(f"/rollouts/{record['id']}/events").json()[-1]
    assert last["action"] == "rollout.rolled_back"
    assert last["details"]["after_promotion"] is True
    again = api.post(f"/rollouts/{record['id']}/rollback")
    assert again.status_code == 409
    assert "nothing to undo" in again.json()["error"]


def test_only_the_newest_promotion_can_be_undone(api: httpx.Client) -> None:
    older = start(api, plan=CANARY)
    api.post(f"/rollouts/{older['id']}/promote")
    newer = start(api, version=3, plan=CANARY)
    api.post(f"/rollouts/{newer['id']}/promote")
    refused = api.post(f"/rollouts/{older['id']}/rollback")
    assert refused.status_code == 409
    assert f"rollout {newer['id']} is the newest" in refused.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"strategy": "canary", "plan": {"steps": [50, 10]}}, 400, "steps [50, 10] must rise"),
        ({"strategy": "canary", "plan": {"steps": [50, 100], "speed": 2}}, 400, "speed is not a"),
        ({"strategy": "ab_test", "plan": {"split": 100}}, 400, "split is 100; it should be less"),
        ({"strategy": "ab_test", "plan": {"sticky_header": "X User"}}, 400, "header name"),
        ({"strategy": "blue_green", "plan": {"bake_s": -1}}, 400, "bake_s is -1; it should be"),
        ({"strategy": "shadow", "plan": {"min_agreement": 2}}, 400, "min_agreement"),
        ({"strategy": "rainbow"}, 400, "strategy 'rainbow' is not one of canary"),
        ({"version": 0}, 400, "version"),
        ({"version": 9}, 404, "version 9"),
        ({"endpoint": "nope"}, 404, "endpoint 'nope' is not deployed"),
        ({"endpoint": "../x"}, 400, "not allowed"),
        ({"version": 1}, 409, "already serves v1"),
        ({"extra": True}, 400, "extra"),
    ],
)
def test_bad_rollout_requests_get_a_clear_4xx(
    api: httpx.Client, body: dict[str, Any], status: int, message: str
) -> None:
    answer = api.post("/rollouts", json={"endpoint": "m", "version": 2, **body})
    assert answer.status_code == status, answer.text
    assert message.lower() in answer.json()["error"].lower()
    assert api.get("/rollouts").json() == []  # nothing half-written


def test_a_second_rollout_on_an_endpoint_is_refused(api: httpx.Client) -> None:
    first = start(api, plan=CANARY)
    again = api.post("/rollouts", json={"endpoint": "m", "version": 3})
    assert again.status_code == 409
    assert f"already has rollout {first['id']}" in again.json()["error"]


def test_unknown_and_malformed_rollout_ids(api: httpx.Client) -> None:
    assert api.get("/rollouts/99").status_code == 404
    assert api.get("/rollouts/99/events").status_code == 404
    assert api.post("/rollouts/99/abort").status_code == 404
    assert api.get("/rollouts/x").status_code == 400
    assert api.get("/rollouts/0").status_code == 400


def test_policies_set_read_and_remove(api: httpx.Client) -> None:
    assert api.get("/policies").json() == []
    body = {"strategy": "blue-green", "plan": {"bake_s": 60}, "trigger": "alias:candidate"}
    stored = api.put("/policies/m", json=body)
    assert stored.status_code == 200, stored.text
    policy = stored.json()
    assert (policy["endpoint"], policy["strategy"], policy["trigger"]) == (
        "m", "blue_green", "alias:candidate",
    )  # fmt: skip
    assert policy["plan"]["bake_s"] == 60
    assert policy["plan"]["threshold"] == 1  # the plan's defaults are filled in
    assert api.get("/policies/m").json() == policy
    assert [p["model"] for p in api.get("/policies").json()] == ["m"]
    assert api.delete("/policies/m").status_code == 204
    assert api.get("/policies/m").status_code == 404
    assert api.delete("/policies/m").status_code == 404


def test_a_policy_with_an_offline_gate(api: httpx.Client) -> None:
    body = {"offline_metric": "accuracy", "max_offline_drop": 0.02, "min_offline": 0.9}
    stored = api.put("/policies/m", json=body)
    assert stored.status_code == 200, stored.text
    gate = {"offline_metric": "accuracy", "max_offline_drop": 0.02, "min_offline": 0.9}
    assert stored.json()["offline_gate"] == gate
    assert api.get("/policies/m").json()["offline_gate"] == gate
    assert api.put("/policies/m", json={}).json()["offline_gate"] is None  # set anew: no gate


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"strategy": "ab", "plan": {"metric": "latency"}}, "metric is 'latency'; it should be"),
        ({"trigger": "sometimes"}, "trigger 'sometimes' is not"),
        ({"endpoint": "Bad Name"}, "not allowed"),
        ({"strategy": "shadow", "plan": {"canary": {"steps": [100, 50]}}}, "steps of canary:"),
        ({"plan": []}, "plan"),
        ({"max_offline_drop": 0.02}, "name it too (offline_metric"),
        ({"offline_metric": "accuracy"}, "offline_metric 'accuracy' needs a bound"),
    ],
)
def test_bad_policies_get_a_clear_400(
    api: httpx.Client, body: dict[str, Any], message: str
) -> None:
    answer = api.put("/policies/m", json=body)
    assert answer.status_code == 400, answer.text
    assert message.lower() in answer.json()["error"].lower()
    assert api.get("/policies").json() == []


def test_rollout_routes_need_the_token(control: RunningServer) -> None:
    routes = [("GET", "/rollouts"), ("POST", "/rollouts"), ("POST", "/rollouts/1/rollback"),
              ("PUT", "/policies/m"), ("DELETE", "/policies/m")]  # fmt: skip
    for method, path in routes:
        assert httpx.request(method, f"{control.url}/api/v1{path}").status_code == 401


@pytest.mark.parametrize("strategy", ["canary", "blue_green", "ab_test"])
def test_a_rollout_clients_could_not_call_is_refused_unless_forced(
    api: httpx.Client, control: RunningServer, onnx_bytes: Callable[..., bytes], strategy: str
) -> None:
    control.registry.register("m", onnx_bytes(input_name="features"), "t")  # v4
    body = {"endpoint": "m", "version": 4, "strategy": strategy}
    refused = api.post("/rollouts", json=body)
    assert refused.status_code == 409
    assert refused.json()["error"].startswith(
        "m v4 takes 'features' FP32 [-1,4]; the serving version v1 takes 'x' FP32 [-1,4]: "
        "input 'x' is gone; input 'features' is new and required, so clients sending 'x' "
        "would get 400"
    )
    assert api.get("/rollouts").json() == []
    forced = api.post("/rollouts", json={**body, "force": True})
    assert forced.status_code == 201, forced.text


def test_moving_production_where_clients_could_not_follow_is_refused_unless_forced(
    api: httpx.Client, control: RunningServer, onnx_bytes: Callable[..., bytes]
) -> None:
    control.registry.register("m", onnx_bytes(input_name="features"), "t")  # v4
    refused = api.put("/models/m/aliases/production", json={"version": 4})
    assert refused.status_code == 409
    assert "the production version v1 takes 'x' FP32 [-1,4]" in refused.json()["error"]
    assert api.get("/models/m").json()["aliases"]["production"] == 1
    forced = api.put("/models/m/aliases/production", json={"version": 4, "force": True})
    assert forced.status_code == 200, forced.text
    assert api.get("/models/m").json()["aliases"]["production"] == 4
