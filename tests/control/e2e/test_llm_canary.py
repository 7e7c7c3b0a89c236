"""A language model under the same rollouts: tiny-lm v1 -> v2 by canary through the gateway.

Real processes: ``ferryman up`` starts the gateway and the tiny-lm replicas (ONNX Runtime
GenAI); a steady load of streamed chat completions goes through the gateway's OpenAI path
while the canary steps on the gateway's per-variant success rate and p99, as for tensors.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.control.e2e.harness import Load, Stack, wait_for

pytest.importorskip("onnxruntime_genai")
pytestmark = pytest.mark.e2e

CHAT = json.dumps(
    {
        "model": "tiny-lm",
        "messages": [{"role": "user", "content": "What is a decorator?"}],
        "max_tokens": 12,
        "stream": True,
        "seed": 1,
    }
).encode()


@pytest.fixture
def lm_stack(tmp_path: Path) -> Stack:
    """tiny-lm v1 trained, and the same bundle registered again as v2, before ``up``."""
    stack = Stack(tmp_path / "data")
    stack.data_dir.mkdir(parents=True)
    # Training takes ~15 s on a quiet 2-core machine and over a minute on a loaded one.
    stack.ferryman("train", "tiny-lm", "--param", "steps=20", "--json", timeout_s=300)
    with stack.reading() as registry:
        digest = registry.get_version("tiny-lm", 1).digest
        (tmp_path / "tiny-lm.tar").write_bytes(registry.store.read(digest))
    stack.ferryman("register", str(tmp_path / "tiny-lm.tar"), "--model", "tiny-lm")
    return stack


def test_a_tiny_lm_canary_is_promoted_with_no_stream_failed(lm_stack: Stack) -> None:
    stack = lm_stack
    stack.up()
    try:
        stack.ferryman("deploy", "tiny-lm:1", "--replicas", "1")
        wait_for(lambda: len(stack.ready_backends("tiny-lm")) == 1, 90, "v1 ready")
        unfinished: list[bytes] = []
        lock = threading.Lock()

        def check(body: bytes, answer: httpx.Response) -> None:
            if answer.status_code == 200 and not answer.content.endswith(b"data: [DONE]\n\n"):
                with lock:
                    unfinished.append(answer.content[-200:])

        url = f"{stack.gateway}/endpoints/tiny-lm/v1/chat/completions"
        load = Load(url, rate=10, max_s=90, workers=4, body=lambda: CHAT, answered=check)
        with load.running():
            stack.ferryman(
                "rollout", "start", "tiny-lm", "--to", "2", "--steps", "50,100",
                "--interval", "3", "--threshold", "2", "--min-requests", "5",
            )  # fmt: skip
            wait_for(lambda: _status(stack) == "promoted", 90, "promotion")
        assert load.failures() == []
        assert unfinished == []
        assert {o.variant for o in load.outcomes} >= {"v1", "v2"}
    finally:
        stack.down()


def test_a_canary_over_its_ttft_gate_is_rolled_back_and_v1_streams_fail_nothing(
    lm_stack: Stack,
) -> None:
    """The gate is wired end to end: gateway histogram -> window -> gate -> rollback. Its
    bound (0.01 ms) is one no real stream meets, so v2 fails every window it is judged."""
    stack = lm_stack
    stack.up()
    try:
        stack.ferryman("deploy", "tiny-lm:1", "--replicas", "1")
        wait_for(lambda: len(stack.ready_backends("tiny-lm")) == 1, 90, "v1 ready")
        url = f"{stack.gateway}/endpoints/tiny-lm/v1/chat/completions"
        load = Load(url, rate=10, max_s=90, workers=4, body=lambda: CHAT)
        with load.running():
            stack.ferryman(
                "rollout", "start", "tiny-lm", "--to", "2", "--steps", "50,100",
                "--interval", "3", "--threshold", "2", "--min-requests", "5",
                "--max-ttft-p99-ms", "0.01",
            )  # fmt: skip
            wait_for(lambda: _status(stack) == "rolled_back", 90, "rollback")
            settled_s = load.now_s() + 2  # the gateway reads the new route table
            time.sleep(4)
        with stack.reading() as registry:
            reason = str(registry.rollouts.list("tiny-lm")[-1].reason)
        assert "time to first token p99" in reason
        assert load.failures() == []
        assert {o.variant for o in load.outcomes if o.at_s >= settled_s} == {"v1"}
    finally:
        stack.down()


class Rater:
    """A user who likes v1's answers and not v2's: each completion is rated by its id."""

    def __init__(self, api: str, token: str) -> None:
        self._pending: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=api, headers={"authorization": f"Bearer {token}"})
        self.told: list[str] = []

    def answered(self, body: bytes, answer: httpx.Response) -> None:
        if answer.status_code != 200:
            return
        first = answer.content.split(b"\n\n", 1)[0].removeprefix(b"data: ")
        rating = "down" if answer.headers.get("ferryman-variant") == "v2" else "up"
        with self._lock:
            self._pending.append({"completion_id": json.loads(first)["id"], "label": rating})

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            reply = self._http.post("/api/v1/feedback", json=batch)
            assert reply.status_code == 200, reply.text
            self.told += [item["status"] for item in reply.json()["items"]]


def test_a_canary_its_users_rate_down_is_rolled_back_by_the_thumbs_up_gate(
    lm_stack: Stack,
) -> None:
    """Completion ids -> feedback -> payload log join -> thumbs-up gate -> rollback, with
    real processes; v2's streams are as healthy as v1's, only its ratings are worse."""
    stack = lm_stack
    stack.up()
    try:
        stack.ferryman("deploy", "tiny-lm:1", "--replicas", "1")
        wait_for(lambda: len(stack.ready_backends("tiny-lm")) == 1, 90, "v1 ready")
        token = (stack.data_dir / "control-token").read_text().strip()
        rater = Rater(f"http://127.0.0.1:{stack.api_port}", token)
        stop = threading.Event()

        def rate_every_half_second() -> None:
            while not stop.wait(0.5):  # ratings come after the answers, as from people
                rater.flush()

        url = f"{stack.gateway}/endpoints/tiny-lm/v1/chat/completions"
        load = Load(url, rate=10, max_s=120, workers=4, body=lambda: CHAT, answered=rater.answered)
        flusher = threading.Thread(target=rate_every_half_second)
        with load.running():
            flusher.start()
            try:
                stack.ferryman(
                    "rollout", "start", "tiny-lm", "--to", "2", "--steps", "50,100",
                    "--interval", "3", "--threshold", "2", "--min-requests", "5",
                    "--max-thumbs-up-drop", "0.2", "--min-rated", "5",
                )  # fmt: skip
                wait_for(lambda: _status(stack) == "rolled_back", 110, "rollback")
            finally:
                stop.set()
                flusher.join(timeout=30)
        with stack.reading() as registry:
            reason = str(registry.rollouts.list("tiny-lm")[-1].reason)
        assert "thumbs-up rate 0.000 < baseline 1.000 - 0.2" in reason
        assert load.failures() == []
        assert "stored" in rater.told
        assert {o.variant for o in load.outcomes} == {"v1", "v2"}
    finally:
        stack.down()


def _status(stack: Stack) -> str:
    with stack.reading() as registry:
        return str(registry.rollouts.list("tiny-lm")[-1].status)
