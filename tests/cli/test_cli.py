"""The CLI as a user runs it: the issue's "done when" scenario, --json, errors, options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ferryman.cli.main import hoist_global_options
from ferryman.config import load_settings
from ferryman.reference import GoldenRequest, ReferenceData, Tensor
from ferryman.registry import Registry


@pytest.fixture
def model_file(tmp_path: Path, onnx_bytes: Callable[..., bytes]) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_bytes())
    return path


def test_register_list_alias_events(
    run: Callable[..., tuple[int, str, str]], model_file: Path
) -> None:
    assert run("register", str(model_file), "--model", "m")[0] == 0
    code, out, _ = run("register", str(model_file), "--model", "m", "--json")
    assert code == 0
    assert json.loads(out)["version"] == 2
    assert set(json.loads(out)) == {"model", "version", "digest"}

    code, out, _ = run("versions", "list", "m", "--json")
    assert [v["version"] for v in json.loads(out)] == [1, 2]

    assert run("alias", "set", "m", "production", "2")[0] == 0
    code, out, _ = run("events", "--json")
    alias_events = [e for e in json.loads(out) if e["action"] == "alias.set"]
    assert alias_events[0]["object_key"] == "m@production"
    assert alias_events[0]["details"] == {"from": None, "to": 2}

    code, out, _ = run("events")
    assert "alias.set" in out
    assert "m@production" in out


def test_tables_for_people(run: Callable[..., tuple[int, str, str]], model_file: Path) -> None:
    run("register", str(model_file), "-m", "m", "--metric", "accuracy=0.97", "--alias", "candidate")
    assert "candidate→v1" in run("models", "list")[1]
    out = run("versions", "list", "m")[1]
    assert "accuracy=0.97" in out
    shown = run("versions", "show", "m", "candidate")[1]
    assert "x" in shown
    assert "FP32" in shown
    assert "[-1, 4]" in shown


def test_a_version_shows_what_its_inputs_take(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    """An example input and the range of values, from the reference data training left."""
    registry = Registry.open(load_settings(data_dir=tmp_path / "ferryman-data"))
    example = Tensor(datatype="FP32", shape=(1, 4), data=(0.0, 0.25, 0.5, 1.0))
    reference = ReferenceData(
        golden=(GoldenRequest(inputs={"x": example}, outputs={}),),
        input_ranges={"x": (0.0, 16.0)}, labels=("cat", "dog"),
    )  # fmt: skip
    registry.register("m", onnx_bytes(), "alice", reference=reference)
    registry.close()
    shown = run("versions", "show", "m", "1")[1]
    assert "0 to 16" in shown
    assert "Input example (x, FP32 [1, 4]): [0, 0.25, 0.5, 1]" in shown
    assert "Classes: cat, dog" in shown
    document = json.loads(run("versions", "show", "m", "1", "--json")[1])
    assert document["inputs_take"] == {"x": {
        "example": {"datatype": "FP32", "shape": [1, 4], "data": [0.0, 0.25, 0.5, 1.0]},
        "range": [0.0, 16.0],
    }}  # fmt: skip


def test_metrics_params_tags_are_recorded(
    run: Callable[..., tuple[int, str, str]], model_file: Path
) -> None:
    run(
        "register", str(model_file), "-m", "m",
        "--metric", "accuracy=0.97", "--param", "lr=0.01", "--tag", "team=vision",
    )  # fmt: skip
    shown = json.loads(run("versions", "show", "m", "1", "--json")[1])
    assert shown["metrics"] == {"accuracy": 0.97}
    assert shown["params"] == {"lr": "0.01"}
    assert shown["tags"] == {"team": "vision"}
    assert shown["variants"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["register", "missing.onnx", "-m", "m"], "missing.onnx does not exist"),
        (["register", "{model}", "-m", "../m"], "model name '../m' is not allowed"),
        (["register", "{model}", "-m", "m", "--metric", "acc"], "is not KEY=VALUE"),
        (["register", "{model}", "-m", "m", "--metric", "acc=high"], "is not a number"),
        (["versions", "list", "nope"], "model 'nope' does not exist"),
        (["alias", "set", "nope", "production", "1"], "model 'nope' does not exist"),
        (["policy", "set", "m", "--steps", "10,x"], "is not a list of numbers"),
        (["policy", "set", "m", "--steps", "50,10,100"], "steps [50, 10, 100]"),
    ],
)
def test_errors_are_one_line_and_exit_1(
    run: Callable[..., tuple[int, str, str]], model_file: Path, args: list[str], message: str
) -> None:
    code, out, err = run(*[arg.replace("{model}", str(model_file)) for arg in args])
    assert code == 1
    assert out == ""
    assert err.startswith("error: ")
    assert message in err
    assert err.count("\n") == 1


def test_a_pickle_is_refused_by_the_cli(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(b"\x80\x04\x95" + b"\x00" * 20)
    code, _, err = run("register", str(pickled), "-m", "m")
    assert code == 1
    assert "pickle" in err
    assert "register the .onnx file" in err


def test_global_options_work_anywhere(
    run: Callable[..., tuple[int, str, str]], model_file: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    run("register", str(model_file), "-m", "m", "--data-dir", str(elsewhere))
    assert (elsewhere / "registry.db").exists()
    code, out, _ = run("versions", "list", "m", "--json", f"--data-dir={elsewhere}")
    assert code == 0
    assert len(json.loads(out)) == 1
    assert run("versions", "list", "m")[0] == 1  # the default data dir has no model m


def test_database_url_option_and_environment(
    run: Callable[..., tuple[int, str, str]],
    model_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    run("--database-url", url, "register", str(model_file), "-m", "m")
    assert (tmp_path / "other.db").exists()
    monkeypatch.setenv("FERRYMAN_DATABASE_URL", url)
    assert len(json.loads(run("versions", "list", "m", "--json")[1])) == 1


def test_hoisting_keeps_everything_else_in_order() -> None:
    args = [
        "versions",
        "list",
        "m",
        "--data-dir",
        "d",
        "--json",
        "--log-level=DEBUG",
        "--",
        "--data-dir",
    ]
    assert hoist_global_options(args) == [
        *("--data-dir", "d", "--log-level=DEBUG"),
        *("versions", "list", "m", "--json", "--", "--data-dir"),
    ]


@pytest.mark.e2e
def test_the_console_script(tmp_path: Path, model_file: Path) -> None:
    ferryman = Path(sys.executable).with_name("ferryman")
    env = {**os.environ, "FERRYMAN_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [str(ferryman), "register", str(model_file), "--model", "m", "--json"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == 1
    failed = subprocess.run(
        [str(ferryman), "versions", "list", "nope"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert failed.returncode == 1
    assert (
        failed.stderr.strip()
        == "error: model 'nope' does not exist (ferryman models list shows them)"
    )
