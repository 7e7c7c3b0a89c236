"""Issue 19 end to end: a rollout that would break every client.

v1 takes input ``x``; v2 takes ``features``. A rollout of v2 is refused (the difference
spelled out); forced, the canary's 400s — which the success rate never counted — roll it back
after its first analysis window, before it reaches more clients.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_onnx
from tests.control.e2e.harness import Load, Stack, wait_for
from tests.control.e2e.test_rollouts import rollout

pytestmark = pytest.mark.e2e

RATE, INTERVAL_S = 50, 5


def test_a_forced_schema_breaking_canary_is_rolled_back_by_its_4xx_within_one_window(
    stack: Stack, tmp_path: Path
) -> None:
    stack.ferryman("deploy", "m", "--replicas", "1")
    wait_for(lambda: len(stack.ready_backends("m")) == 1, 60, "v1 ready")
    breaking = tmp_path / "v2.onnx"
    breaking.write_bytes(make_onnx(input_name="features"))
    stack.ferryman("register", str(breaking), "--model", "m")
    start = [str(Path(sys.executable).with_name("ferryman")), "rollout", "start", "m", "--to",
             "2", "--steps", "20,60,100", "--interval", str(INTERVAL_S), "--threshold", "3",
             "--min-requests", "10"]  # fmt: skip
    refused = subprocess.run(
        start, capture_output=True, text=True, env=stack.env, timeout=60, check=False
    )
    assert refused.returncode == 1
    assert "input 'x' is gone; input 'features' is new and required" in refused.stderr

    with Load(f"{stack.gateway}/v2/models/m/infer", rate=RATE, max_s=90).running() as load:
        stack.ferryman(*start[1:], "--force")
        wait_for(lambda: rollout(stack)["status"] == "rolled_back", 60, "rollback")
        rolled_back_s = load.now_s()
        time.sleep(2)
        after_s = load.now_s()
        time.sleep(2)

    record = rollout(stack)
    assert "4xx rate 1.000 > baseline 0.000 + 0.05" in str(record["reason"])
    assert record["failed_checks"] == 1
    first_canary_s = min(o.at_s for o in load.outcomes if o.variant == "v2")
    detected_s = rolled_back_s - first_canary_s
    assert detected_s <= INTERVAL_S + 5  # one window, not threshold (3) windows; measured 6.1 s
    failures = load.failures()
    assert {(o.status, o.variant) for o in failures} == {(400, "v2")}
    assert len(failures) <= RATE * INTERVAL_S  # one window of traffic; measured 66 of 250
    assert [o for o in load.outcomes if o.at_s >= after_s and o.variant == "v2"] == []
    header = stack.ferryman("endpoints", "list").splitlines()
    assert any("4xx" in line and "5xx" in line for line in header)
