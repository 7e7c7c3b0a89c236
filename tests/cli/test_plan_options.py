"""The plan options of ``rollout start`` and ``policy set``: generated from the plan models
(every gate settable), and ``--plan FILE|JSON`` checked by the same models. Run in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ferryman.cli.plans import FIELDS, flag
from ferryman.control.rollouts.gates import Gates
from ferryman.control.rollouts.plans import PLANS

Run = Callable[..., tuple[int, str, str]]

GATE_VALUES: dict[str, tuple[str, object]] = {
    "min_success_rate": ("0.95", 0.95),
    "max_client_error_rise": ("0.1", 0.1),
    "max_p99_ms": ("250", 250.0),
    "max_ttft_p99_ms": ("800", 800.0),
    "max_inter_token_p99_ms": ("60", 60.0),
    "min_requests": ("40", 40),
    "max_prediction_drift": ("0.2", 0.2),
    "min_predictions": ("200", 200),
    "min_accuracy": ("0.9", 0.9),
    "max_accuracy_drop": ("0.02", 0.02),
    "min_labelled": ("80", 80),
    "min_thumbs_up_rate": ("0.7", 0.7),
    "max_thumbs_up_drop": ("0.1", 0.1),
    "min_rated": ("30", 30),
    "max_input_drift_psi": ("0.25", 0.25),
}
"""A value other than the default for every gate, as typed and as stored."""


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


def _gate_args() -> list[str]:
    return [arg for name, (typed, _) in GATE_VALUES.items() for arg in (flag(name), typed)]


def test_every_gate_and_plan_field_has_an_option() -> None:
    assert set(GATE_VALUES) == set(Gates.model_fields)  # a new gate gets a value here
    for model in PLANS.values():
        assert set(model.model_fields) - {"gates", "canary"} <= set(FIELDS)
    assert {"--bake", "--interval", "--warmup-timeout", "--max-duration", "--duration"} <= {
        flag(name) for name in FIELDS
    }  # the names the commands had before they were generated


@pytest.mark.parametrize("command", [["rollout", "start"], ["policy", "set"]])
def test_help_lists_every_gate(run: Run, command: list[str]) -> None:
    code, out, _ = run(*command, "--help")
    assert code == 0
    for name in GATE_VALUES:
        assert flag(name) in out
    assert "--plan" in out


@pytest.mark.parametrize("strategy", ["canary", "blue-green"])
def test_rollout_start_sets_every_gate(deployed: Run, strategy: str) -> None:
    code, out, err = deployed(
        "rollout", "start", "m", "--to", "2", "--strategy", strategy, *_gate_args(), "--json"
    )
    assert code == 0, err
    gates = json.loads(out)["plan"]["gates"]
    assert {name: gates[name] for name in GATE_VALUES} == {
        name: stored for name, (_, stored) in GATE_VALUES.items()
    }


def test_policy_set_sets_every_gate(deployed: Run) -> None:
    code, _, err = deployed("policy", "set", "m", *_gate_args())
    assert code == 0, err
    code, out, _ = deployed("policy", "list", "--json")
    gates = json.loads(out)[0]["plan"]["gates"]
    assert {name: gates[name] for name in GATE_VALUES} == {
        name: stored for name, (_, stored) in GATE_VALUES.items()
    }


def test_a_shadows_canary_takes_the_gates(deployed: Run) -> None:
    code, out, err = deployed(
        "rollout", "start", "m", "--to", "2", "--strategy", "shadow", "--then-canary",
        "--min-accuracy", "0.9", "--min-labelled", "30", "--json",
    )  # fmt: skip
    assert code == 0, err
    canary = json.loads(out)["plan"]["canary"]
    assert (canary["gates"]["min_accuracy"], canary["gates"]["min_labelled"]) == (0.9, 30)


def test_plan_from_a_file(deployed: Run, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"steps": [20, 100], "gates": {"min_accuracy": 0.9}}))
    code, out, err = deployed("rollout", "start", "m", "--to", "2", "--plan", str(path), "--json")
    assert code == 0, err
    plan = json.loads(out)["plan"]
    assert plan["steps"] == [20, 100]
    assert plan["gates"]["min_accuracy"] == 0.9
    assert plan["gates"]["max_p99_ms"] == 500.0  # the model's default for what it leaves out


def test_plan_inline_with_options_over_it(deployed: Run) -> None:
    inline = json.dumps({"bake_s": 60, "gates": {"max_p99_ms": 300, "min_labelled": 10}})
    code, out, err = deployed(
        "rollout", "start", "m", "--to", "2", "--strategy", "blue-green", "--plan", inline,
        "--max-p99-ms", "250", "--max-accuracy-drop", "0.01", "--json",
    )  # fmt: skip
    assert code == 0, err
    plan = json.loads(out)["plan"]
    assert plan["bake_s"] == 60.0
    assert (plan["gates"]["max_p99_ms"], plan["gates"]["min_labelled"]) == (250.0, 10)
    assert plan["gates"]["max_accuracy_drop"] == 0.01


def test_policy_set_takes_a_plan(deployed: Run) -> None:
    code, out, err = deployed(
        "policy", "set", "m", "--strategy", "shadow", "--plan",
        '{"duration_s": 120, "canary": {"steps": [50, 100]}}', "--min-accuracy", "0.8",
    )  # fmt: skip
    assert code == 0, err
    assert "shadow for 120 s" in out
    assert "then a canary" in out
    plan = json.loads(deployed("policy", "list", "--json")[1])[0]["plan"]
    assert plan["canary"]["steps"] == [50, 100]
    assert plan["canary"]["gates"]["min_accuracy"] == 0.8


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ('{"gates": {"min_acuracy": 0.9}}', "min_acuracy of gates is not a field here"),
        ('{"gates": {"min_accuracy": 2}}', "min_accuracy of gates is 2; it should be less"),
        ('{"bake_s": 60}', "bake_s is not a field here"),
        ('{"steps": [10, 50]', "--plan: not JSON"),
        ("[1, 2]", "--plan: a plan is a JSON object, not list"),
        ("missing.json", "--plan missing.json: no such file"),
    ],
)
@pytest.mark.parametrize(
    "command", [["rollout", "start", "m", "--to", "2"], ["policy", "set", "m"]]
)
def test_a_bad_plan_is_a_one_line_error_naming_the_field(
    deployed: Run, command: list[str], plan: str, message: str
) -> None:
    code, out, err = deployed(*command, "--plan", plan)
    assert code == 1
    assert out == ""
    assert err.startswith("error: ")
    assert message in err
    assert err.count("\n") == 1
