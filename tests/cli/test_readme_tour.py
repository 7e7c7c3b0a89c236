"""The README's tour of the CLI, read from README.md and run in order from a fresh directory.

Most commands run in-process, as typed; the two that hold a shell (``serve`` and ``up``) run
as processes on free ports and are stopped at the end. The only changes to what the README
says are listed in ``REWRITES`` (shorter training, free ports, fewer replicas) and
``PLACEHOLDERS`` (values only a running system knows); ``NOT_RUN`` names what the tour
cannot run as a straight line, and the test that covers it.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from ferryman.cli.main import main
from tests.conftest import make_onnx
from tests.control.e2e.harness import wait_for
from tests.support import free_port

pytestmark = pytest.mark.e2e

README = Path(__file__).parents[2] / "README.md"
FERRYMAN = str(Path(sys.executable).with_name("ferryman"))
REWRITES = {
    "epochs=8": "epochs=1",  # time: the tour's shape, not its accuracy
    "--trials 8": "--trials 2 --param epochs=1",
    "--replicas 3": "--replicas 2",  # two shared CPU cores
}
NOT_RUN = {
    "train --resume RUN_ID": "needs a killed run: tests/training/test_resume.py",
}
EXPANDED = {"pause|resume|promote|abort|rollback": ("pause", "resume", "abort")}


def tour_commands() -> list[str]:
    """The ``ferryman …`` lines of the tour's code blocks, continuations joined."""
    text = README.read_text()
    section = text[text.index("## A short tour of the CLI") : text.index("Every answer carries")]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        joined = re.sub(r"\\\n\s*", "", block)
        commands += [line for line in joined.splitlines() if line.startswith("ferryman ")]
    return commands


class Tour:
    """Runs one README line at a time; knows what the running system has told it."""

    def __init__(self, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.home = home
        self._capsys = capsys
        self.processes: list[subprocess.Popen[bytes]] = []
        self.gateway_port = free_port()
        self.api_port = free_port()
        self.said: dict[str, tuple[int, str, str]] = {}

    def cli(self, args: list[str]) -> tuple[int, str, str]:
        self._capsys.readouterr()
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self._capsys.readouterr()
        return code, out, err

    def background(self, args: list[str], ready_url: str) -> None:
        log = (self.home / f"{args[0]}.log").open("ab")
        with log:
            self.processes.append(subprocess.Popen([FERRYMAN, *args], stdout=log, stderr=log))
        wait_for(lambda: _answers(ready_url), 90, f"ferryman {args[0]}")

    def fill(self, args: list[str]) -> list[str]:
        """The tour's placeholders, replaced with what the system knows now."""
        known = {
            "RUN_ID": lambda: str(self._json(["runs", "list", "--json"])[0]["id"]),
            "ID": lambda: str(self._json(["rollout", "status", "--json"])[-1]["id"]),
            "TOKEN_ID": lambda: str(self._json(["tokens", "list", "--json"])[-1]["id"]),
            "REQUEST_ID": self.request_id,
        }
        return [known[arg]() if arg in known else arg for arg in args]

    def request_id(self) -> str:
        """One digit through the gateway; its id, once the payload log has it."""
        image = np.zeros((1, 1, 8, 8), dtype=np.float32)
        image[0, 0, 2:6, 3:5] = 1.0
        body = {"inputs": [{"name": self.input_name(), "datatype": "FP32", "shape": [1, 1, 8, 8],
                            "data": image.ravel().tolist()}]}  # fmt: skip
        url = f"http://127.0.0.1:{self.gateway_port}/v2/models/digits/infer"
        answer = httpx.post(url, json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        request_id = answer.headers["ferryman-request-id"]

        def logged() -> bool:
            rows = self._json(["payloads", "digits", "--last", "600", "--json"])
            return any(request_id in json.dumps(row) for row in rows)

        wait_for(logged, 60, "the request in the payload log")
        return request_id

    def input_name(self) -> str:
        shown = self._json(["versions", "show", "digits", "production", "--json"])
        return str(shown["signature"]["inputs"][0]["name"])

    def _json(self, args: list[str]) -> Any:  # whatever JSON the command printed
        code, out, err = self.cli(args)
        assert code == 0, err
        return json.loads(out)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            process.wait(timeout=60)


@contextmanager
def touring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Tour]:
    for name in [key for key in os.environ if key.startswith("FERRYMAN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FERRYMAN_STATE_DIR", str(tmp_path / "state"))  # notes of this tour only
    monkeypatch.setenv("COLUMNS", "200")
    tour = Tour(tmp_path, capsys)
    try:
        yield tour
    finally:
        tour.stop()
        data_dir = tmp_path / "first-shell" / "ferryman-data"
        if (data_dir / "gateway.json").exists() or any((data_dir / "replicas").glob("*.json")):
            subprocess.run([FERRYMAN, "--data-dir", str(data_dir), "down"], check=False,
                           capture_output=True, timeout=120)  # fmt: skip


def test_the_readme_tour_runs_in_order_from_a_fresh_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first-shell", tmp_path / "second-shell"
    first.mkdir()
    second.mkdir()
    (first / "model.onnx").write_bytes(make_onnx())
    (first / "model.pkl").write_bytes(_fraud_pickle())
    commands = tour_commands()
    assert len(commands) >= 25, commands
    with touring(tmp_path, capsys, monkeypatch) as tour:
        monkeypatch.chdir(first)  # the first shell: train and register
        for line in commands:
            if any(line.startswith(f"ferryman {skip}") for skip in NOT_RUN):
                continue
            typed = line
            for old, new in REWRITES.items():
                typed = typed.replace(old, new)
            args = shlex.split(typed, comments=True)[1:]
            if args[0] == "serve":
                port = free_port()
                args[args.index("--port") + 1] = str(port)
                tour.background(args, f"http://127.0.0.1:{port}/v2/health/ready")
                tour.stop()  # Ctrl-C: it drains and exits
                continue
            if args[0] == "up":
                ports = ["--port", str(tour.api_port), "--gateway-port", str(tour.gateway_port)]
                tour.background([*args, *ports], f"http://127.0.0.1:{tour.api_port}/healthz")
                monkeypatch.chdir(second)  # another shell, with no data dir of its own
                continue
            for step in EXPANDED.get(args[1] if len(args) > 1 else "", (None,)):
                run = tour.fill([*args[:1], step, *args[2:]] if step else args)
                code, out, err = tour.cli(run)
                assert code == 0, f"{typed}\n{out}\n{err}"
                tour.said[line] = (code, out, err)
            if args[0] == "deploy":
                wait_for(lambda: _ready(first / "ferryman-data"), 90, "a ready digits replica")
        train = next(line for line in tour.said if line.startswith("ferryman train digits"))
        _, trained, warned = tour.said[train]
        assert "warning: no data dir given" in warned  # before a new, empty ./ferryman-data
        promote = re.search(r"Promote it: (ferryman alias set digits production \d+)", trained)
        assert promote is not None, trained
        after_train = commands[commands.index(train) + 1]
        assert after_train.split("#")[0].strip() == promote.group(1)  # as train printed it
        listed = next(line for line in tour.said if line.startswith("ferryman endpoints list"))
        _, _, found = tour.said[listed]
        assert f"using the data dir of the control plane on http://127.0.0.1:{tour.api_port}" in (
            found
        )
        assert tour.processes[-1].wait(timeout=30) == 0  # `ferryman down` stopped `up`
    assert not (first / "ferryman-data" / "gateway.json").exists()
    assert not list((first / "ferryman-data" / "replicas").glob("*.json"))
    assert not (second / "ferryman-data").exists()  # nothing went to an empty data dir


def _fraud_pickle() -> bytes:
    """A scikit-learn model of four features, the shape of the tour's fraud v1."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return pickle.dumps(LogisticRegression().fit(x, y))


def _ready(data_dir: Path) -> bool:
    try:
        table = json.loads((data_dir / "routes.json").read_text())
    except (OSError, ValueError):
        return False
    route = table.get("endpoints", {}).get("digits")
    return bool(route) and any(variant["backends"] for variant in route["variants"])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
