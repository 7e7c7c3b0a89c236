"""What a person reads from the CLI: help texts, strategy names, validation errors, event
details and the endpoint table's figures, in-process."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ferryman.config import load_settings
from ferryman.errors import describe_problem
from ferryman.registry import Registry
from ferryman.registry.history import MetricSample

Run = Callable[..., tuple[int, str, str]]


def test_help_shows_its_defaults_and_every_option_says_what_it_is(run: Run) -> None:
    _, top, _ = run("--help")
    assert "default ./ferryman-data" in " ".join(top.split())
    assert not re.search(r"\w \.$", top, re.M)  # no default eaten as markup, leaving " ."
    _, register, _ = run("register", "--help")
    flat = " ".join(register.split())
    for option, says in (("--metric", "auc=0.91"), ("--param", "lr=0.01"), ("--tag", "team=")):
        assert re.search(rf"{option} KEY=VALUE +A .*{says}", flat), option
    _, up, _ = run("up", "--help")
    assert "[default 7070]" in up
    assert "--gateway-port" in up


@pytest.fixture
def two_versions(run: Run, tmp_path: Path, onnx_bytes: Callable[..., bytes]) -> Run:
    for seed in (0.0, 1.0):
        path = tmp_path / f"m{seed}.onnx"
        path.write_bytes(onnx_bytes(seed_value=seed))
        assert run("register", str(path), "--model", "m")[0] == 0
    assert run("deploy", "m:1", "--replicas", "1")[0] == 0
    return run


def test_strategy_names_are_the_same_in_help_and_errors(two_versions: Run) -> None:
    code, _, err = two_versions("rollout", "start", "m", "--to", "2", "--strategy", "rolling")
    assert code == 1
    assert "is not one of canary, blue-green, ab, shadow" in err
    code, _, err = two_versions("rollout", "start", "m", "--to", "2", "--bake", "5")
    assert "--bake does not apply to a canary rollout" in err
    code, _, err = two_versions(
        "rollout", "start", "m", "--to", "2", "--strategy", "blue_green", "--bake", "-1"
    )
    assert code == 1
    assert "bad blue-green plan: bake_s is -1.0; it should be greater than" in err
    _, help_text, _ = two_versions("rollout", "start", "--help")
    assert "blue-green" in help_text
    assert "blue_green" not in help_text


def test_validation_errors_read_as_sentences() -> None:
    problem = {"loc": ("body", "variants", 0, "replicas"), "input": 100,
               "msg": "Input should be less than or equal to 64"}  # fmt: skip
    assert describe_problem(problem) == (
        "replicas of variant 1 is 100; it should be less than or equal to 64"
    )
    assert describe_problem({"loc": ("query", "since_s"), "msg": "Field required"}) == (
        "since_s is missing"
    )
    assert describe_problem({"loc": ("bake",), "msg": "Extra inputs are not permitted"}) == (
        "bake is not a field here"
    )


def test_a_bad_setting_on_the_line_is_one_sentence(run: Run) -> None:
    code, _, err = run("--log-level", "LOUD", "models", "list")
    assert code != 0
    assert "LOUD" in err


def test_events_render_details_as_key_value(two_versions: Run) -> None:
    code, _, err = two_versions("policy", "set", "m", "--steps", "10,50,100", "--interval", "30")
    assert code == 0, err
    _, out, _ = two_versions("events", "--limit", "3")
    assert "policy.set" in out
    assert "{" not in out
    assert "'" not in out
    assert "steps=10/50/100" in "".join(out.split())


def test_endpoints_list_shows_the_monitors_latest_sample(two_versions: Run, tmp_path: Path) -> None:
    _, before, _ = two_versions("endpoints", "list")
    assert "latest sample" in before
    row = next(line for line in before.splitlines() if "│ m " in line)
    assert row.count(" - ") >= 3  # no sample yet: no figures, not zeros
    registry = Registry.open(load_settings(data_dir=tmp_path / "ferryman-data"))
    stale = MetricSample(time_s=time.time() - 600, endpoint="m", variant="v1",
                         values={"qps": 1.0, "p99_ms": 1.0, "error_rate": 0.0})  # fmt: skip
    fresh = MetricSample(time_s=time.time() - 5, endpoint="m", variant="v1",
                         values={"qps": 12.5, "p99_ms": 3.25, "error_rate": 0.02})  # fmt: skip
    registry.history.add([stale, fresh], retention_s=3600)
    registry.close()
    started = time.monotonic()
    _, after, _ = two_versions("endpoints", "list")
    assert time.monotonic() - started < 1.0  # it no longer waits a second to count
    row = next(line for line in after.splitlines() if "│ m " in line)
    assert "12.5" in row
    assert "3.2 ms" in row
    assert "2.0%" in row
