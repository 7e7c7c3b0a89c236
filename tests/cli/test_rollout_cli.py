"""``ferryman rollout`` and ``ferryman policy`` with every strategy, run in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ferryman.config import load_settings
from ferryman.control.rollouts.controller import RolloutController
from ferryman.control.rollouts.observer import Sources
from ferryman.registry import Registry
from tests.control.scripted import Scripted
from tests.support import SteppedClock as Clock

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def deployed(run: Run, tmp_path: Path, onnx_bytes: Callable[..., bytes]) -> Run:
    """Model m v1 deployed on endpoint m (nothing started), v2 registered."""
    for seed in (0.0, 1.0):
        path = tmp_path / f"m{seed}.onnx"
        path.write_bytes(onnx_bytes(seed_value=seed))
        assert run("register", str(path), "--model", "m")[0] == 0
    code, _, err = run("deploy", "m:1", "--replicas", "2")
    assert code == 0, err
    return run


@pytest.mark.parametrize(
    ("args", "strategy", "plan"),
    [
        (["--steps", "20,100", "--interval", "5"], "canary", {"steps": [20, 100]}),
        (["--strategy", "blue-green", "--bake", "60", "--max-p99-ms", "300"], "blue_green",
         {"bake_s": 60.0, "threshold": 1, "gates": {"max_p99_ms": 300.0}}),
        (["--strategy", "ab", "--split", "30", "--sticky-header", "x-region", "--metric",
          "accuracy", "--promote-winner", "--max-duration", "600"], "ab_test",
         {"split": 30, "sticky_header": "x-region", "metric": "accuracy",
          "promote_winner": True, "max_duration_s": 600.0}),
        (["--strategy", "shadow", "--duration", "120", "--then-canary", "--steps", "50,100"],
         "shadow", {"duration_s": 120.0, "canary": {"steps": [50, 100]}}),
    ],
)  # fmt: skip
def test_rollout_start_by_each_strategy(
    deployed: Run, args: list[str], strategy: str, plan: dict[str, object]
) -> None:
    code, out, err = deployed("rollout", "start", "m", "--to", "2", *args, "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["strategy"] == strategy
    assert record["candidate"]["replicas"] == 2
    _contains(record["plan"], plan)
    code, out, _ = deployed("rollout", "status")
    shown = {"blue_green": "blue-green", "ab_test": "ab"}.get(strategy, strategy)
    assert f" {shown} " in out  # the name people type, not the stored one
    assert "blue_green" not in out
    code, out, _ = deployed("rollout", "events", str(record["id"]))
    assert code == 0
    assert "created" in out


def _contains(whole: dict[str, object], part: dict[str, object]) -> None:
    for key, value in part.items():
        if isinstance(value, dict):
            inner = whole[key]
            assert isinstance(inner, dict)
            _contains(inner, value)
        else:
            assert whole[key] == value, key


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bake", "60"], "--bake does not apply to a canary rollout"),
        (["--strategy", "blue-green", "--steps", "10,100"], "--steps does not apply"),
        (["--strategy", "ab", "--split", "0"], "split is 0; it should be greater than"),
        (["--strategy", "ab", "--metric", "latency"], "metric is 'latency'; it should be"),
        (["--strategy", "shadow", "--steps", "50,100"], "need --then-canary"),
        (["--strategy", "rainbow"], "strategy 'rainbow' is not one of"),
        (["--steps", "10,x"], "is not a list of numbers"),
    ],
)
def test_bad_rollout_options_are_one_line_errors(
    deployed: Run, args: list[str], message: str
) -> None:
    code, out, err = deployed("rollout", "start", "m", "--to", "2", *args)
    assert code == 1
    assert out == ""
    assert err.startswith("error: ")
    assert message in err
    assert err.count("\n") == 1


def test_steering_by_hand_and_undoing_a_promotion(deployed: Run) -> None:
    code, out, _ = deployed("rollout", "start", "m", "--to", "2", "--json")
    number = str(json.loads(out)["id"])
    assert "paused" in deployed("rollout", "pause", number)[1]
    assert "progressing" in deployed("rollout", "resume", number)[1]
    assert "promoted" in deployed("rollout", "promote", number)[1]
    code, out, err = deployed("rollout", "abort", number)
    assert code == 1
    assert "already ended (promoted)" in err
    code, out, _ = deployed("rollout", "rollback", number, "--json")
    undone = json.loads(out)
    assert (undone["status"], undone["reason"]) == (
        "rolled_back", "promotion undone by hand: v1 serves again",
    )  # fmt: skip
    shown = json.loads(deployed("versions", "show", "m", "production", "--json")[1])
    assert shown["version"] == 1


def test_policy_set_with_a_strategy_and_list(deployed: Run) -> None:
    code, out, err = deployed("policy", "set", "m", "--strategy", "blue-green", "--bake", "120")
    assert code == 0, err
    assert "blue-green: warm a full pool, switch at once, bake 120 s" in out
    code, out, _ = deployed("policy", "list", "--json")
    assert json.loads(out)[0]["strategy"] == "blue_green"
    assert "bake 120 s" in deployed("policy", "list")[1]
    code, out, _ = deployed("policy", "set", "m", "--strategy", "ab", "--split", "20")
    assert "A/B test on success_rate: 20% of users by x-user-id" in out


@pytest.mark.parametrize("strategy", ["canary", "blue-green", "ab", "shadow"])
def test_a_rollout_clients_could_not_call_is_refused_unless_forced(
    deployed: Run, tmp_path: Path, onnx_bytes: Callable[..., bytes], strategy: str
) -> None:
    path = tmp_path / "features.onnx"
    path.write_bytes(onnx_bytes(input_name="features"))
    assert deployed("register", str(path), "--model", "m")[0] == 0  # v3
    code, out, err = deployed("rollout", "start", "m", "--to", "3", "--strategy", strategy)
    assert code == 1
    assert out == ""
    assert err.startswith(
        "error: m v3 takes 'features' FP32 [-1,4]; the serving version v1 takes 'x' FP32 "
        "[-1,4]: input 'x' is gone; input 'features' is new and required, so clients sending "
        "'x' would get 400; to roll it out anyway, pass --force"
    )
    assert "Rollouts" in deployed("rollout", "status")[1]
    code, out, err = deployed(
        "rollout", "start", "m", "--to", "3", "--strategy", strategy, "--force", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["candidate"]["version"] == 3


def test_moving_production_where_clients_could_not_follow_is_refused_unless_forced(
    deployed: Run, tmp_path: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    path = tmp_path / "wide.onnx"
    path.write_bytes(onnx_bytes(width=5))
    assert deployed("register", str(path), "--model", "m")[0] == 0  # v3
    assert deployed("alias", "set", "m", "production", "1")[0] == 0
    code, _, err = deployed("alias", "set", "m", "production", "3")
    assert code == 1
    assert "m v3 takes 'x' FP32 [-1,5]; the production version v1 takes 'x' FP32 [-1,4]: " \
           "input 'x' has shape [-1,5], not [-1,4]" in err  # fmt: skip
    code, out, err = deployed("alias", "set", "m", "production", "3", "--force")
    assert code == 0, err
    assert "m@production → v3 (was v1)" in out


def test_policy_set_with_an_offline_gate(deployed: Run) -> None:
    code, out, err = deployed(
        "policy", "set", "m", "--offline-metric", "accuracy", "--max-offline-drop", "0.02"
    )
    assert code == 0, err
    assert "roll out to m once offline accuracy ≥ production's - 0.02: canary" in out
    gate = json.loads(deployed("policy", "list", "--json")[1])[0]["offline_gate"]
    assert gate == {"offline_metric": "accuracy", "max_offline_drop": 0.02, "min_offline": None}
    code, _, err = deployed("policy", "set", "m", "--min-offline", "0.9")
    assert code == 1
    assert "name it too (offline_metric, e.g. accuracy; CLI --offline-metric)" in err


def test_rollout_status_lists_what_a_policy_did_not_roll_out(
    deployed: Run, tmp_path: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    assert deployed("policy", "set", "m")[0] == 0
    path = tmp_path / "features.onnx"
    path.write_bytes(onnx_bytes(input_name="features"))
    assert deployed("register", str(path), "--model", "m")[0] == 0  # v3
    registry = Registry.open(load_settings(data_dir=tmp_path / "ferryman-data"))
    try:
        RolloutController(registry, Sources(Scripted()), Clock()).tick()  # the control loop
    finally:
        registry.close()
    code, out, _ = deployed("rollout", "status")
    assert code == 0
    assert (
        "policy of m did not roll out v3: not rolled out: m v3 takes 'features' FP32 [-1,4]; "
        "the serving version v1 takes 'x' FP32 [-1,4]: input 'x' is gone;"
    ) in out
