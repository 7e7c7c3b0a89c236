"""Issue 6: a candidate that answers every request fast and without error, but wrongly, is
rolled back by accuracy from feedback labels; real processes, HTTP and delayed labels."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import onnx
import pytest
from onnx import TensorProto, helper

from ferryman.config import load_settings
from ferryman.control.rollouts.gates import CanaryPlan, Gates
from ferryman.control.rollouts.steering import start_rollout
from ferryman.registry import Registry
from tests.control.e2e.harness import Load, Stack, wait_for

pytestmark = pytest.mark.e2e


def classifier(sign: float) -> bytes:
    """x FP32 [N, 4] -> p = softmax(sign * x): +1 picks the largest input, -1 the smallest."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    p = helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 4])
    nodes = [helper.make_node("Mul", ["x", "sign"], ["scaled"]),
             helper.make_node("Softmax", ["scaled"], ["p"], axis=1)]  # fmt: skip
    sign_tensor = helper.make_tensor("sign", TensorProto.FLOAT, [], [sign])
    graph = helper.make_graph(nodes, "classifier", [x], [p], initializer=[sign_tensor])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    serialized: bytes = model.SerializeToString()
    return serialized


def row_body() -> bytes:
    row = random.sample(range(10), 4)  # distinct values: one true class, the largest
    tensor = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": row}
    return json.dumps({"inputs": [tensor]}).encode()


class Labeller:
    """Learns the truth of each answered request and reports it later, in batches."""

    def __init__(self, api: str, token: str, newest: int | None = None) -> None:
        """``newest``: label only the newest this many answers of each flush (a sample that
        keeps up with a fast load on a slow control plane); None: every answer."""
        self._newest = newest
        self._pending: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._http = httpx.Client(
            base_url=api, headers={"authorization": f"Bearer {token}"}, timeout=30
        )
        self.sent = 0

    def answered(self, body: bytes, answer: httpx.Response) -> None:
        if answer.status_code != 200:
            return
        row = json.loads(body)["inputs"][0]["data"]
        truth = str(row.index(max(row)))
        with self._lock:
            self._pending.append({"request_id": answer.headers["ferryman-request-id"],
                                  "label": truth})  # fmt: skip

    def flush(self) -> None:
        with self._lock:  # at most a thousand a post: a backlog goes in several
            if self._newest is not None:
                self._pending = self._pending[-self._newest :]
            batch, self._pending = self._pending[:1000], self._pending[1000:]
        if not batch:
            return
        try:
            reply = self._http.post("/api/v1/feedback", json=batch)
        except httpx.HTTPError:  # a control plane slow on a loaded machine: again next time
            with self._lock:
                self._pending = batch + self._pending
            return
        assert reply.status_code == 200, reply.text
        self.sent += len(batch)

    @staticmethod
    def every(seconds: float, work: Callable[[], None], stop: threading.Event) -> threading.Thread:
        def run() -> None:
            while not stop.wait(seconds):
                work()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


@pytest.fixture
def classifier_stack(tmp_path: Path) -> Iterator[Stack]:
    good = tmp_path / "good.onnx"
    good.write_bytes(classifier(1.0))
    stack = Stack(tmp_path / "data")
    stack.ferryman("register", str(good), "--model", "m")
    stack.up()
    yield stack
    stack.down()


def test_a_wrong_but_healthy_candidate_is_rolled_back_by_feedback(
    classifier_stack: Stack, tmp_path: Path
) -> None:
    stack = classifier_stack
    stack.ferryman("deploy", "m", "--replicas", "1")
    wait_for(lambda: len(stack.ready_backends("m")) == 1, 60, "v1 ready")
    wrong = tmp_path / "wrong.onnx"
    wrong.write_bytes(classifier(-1.0))
    stack.ferryman("register", str(wrong), "--model", "m")
    token = (stack.data_dir / "control-token").read_text().strip()
    labeller = Labeller(f"http://127.0.0.1:{stack.api_port}", token)
    gates = Gates(min_requests=5, max_accuracy_drop=0.05, min_labelled=15)
    plan = CanaryPlan(steps=(30, 60, 100), interval_s=3, threshold=2, gates=gates)
    url = f"{stack.gateway}/v2/models/m/infer"
    stop = threading.Event()
    with Load(url, rate=40, max_s=90, body=row_body, answered=labeller.answered).running() as load:
        flusher = Labeller.every(0.5, labeller.flush, stop)  # labels come after the answers
        registry = Registry.open(load_settings(data_dir=stack.data_dir))
        try:
            record = start_rollout(registry, "m", 2, strategy="canary", plan=plan, actor="test")
            wait_for(lambda: registry.rollouts.get(record.id).status.is_final, 60, "a decision")
            final = registry.rollouts.get(record.id)
        finally:
            registry.close()
            stop.set()
            flusher.join(timeout=30)  # its last post ends before the stack goes down
    assert final.status.value == "rolled_back", final.reason
    assert "accuracy" in final.reason
    assert "baseline" in final.reason
    assert load.failures() == []  # its HTTP was perfect: nothing failed, on either side
    assert {o.variant for o in load.outcomes} == {"v1", "v2"}
    assert labeller.sent > 0
