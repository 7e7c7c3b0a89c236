"""Real tiny ONNX models built with onnx.helper, and replicas serving them in process.

``replica_process`` runs one as a process of its own instead."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from starlette.applications import Starlette

from ferryman.config import ServingSettings, Settings
from ferryman.engines import ModelEngine
from ferryman.engines.onnx import OnnxEngine
from ferryman.reference import GoldenRequest, ReferenceData, Tensor
from ferryman.serving.app import create_app
from ferryman.serving.metrics import ReplicaIdentity
from ferryman.serving.server import DrainingServer, build_server
from tests.slowloris import NormalRequest, Target, server_process
from tests.support import free_port

IDENTITY = ReplicaIdentity("tiny", "3", "onnx-fp32")


def affine_model(features: int = 4, batch: int | str = "N") -> bytes:
    """y = 2x + 1 and p = softmax(x), for x FP32 [batch, features]."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, features])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, features])
    p = helper.make_tensor_value_info("p", TensorProto.FLOAT, [batch, features])
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["twice"]),
        helper.make_node("Add", ["twice", "one"], ["y"]),
        helper.make_node("Softmax", ["x"], ["p"], axis=1),
    ]
    constants = [
        helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
    ]
    graph = helper.make_graph(nodes, "affine", [x], [y, p], initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    serialized: bytes = model.SerializeToString()
    return serialized


def text_model() -> bytes:
    """shout = text + "!" and same = text, for text BYTES (an ONNX string tensor) [batch]."""
    text = helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])
    shout = helper.make_tensor_value_info("shout", TensorProto.STRING, ["N"])
    same = helper.make_tensor_value_info("same", TensorProto.STRING, ["N"])
    nodes = [
        helper.make_node("StringConcat", ["text", "bang"], ["shout"]),
        helper.make_node("Identity", ["text"], ["same"]),
    ]
    bang = helper.make_tensor("bang", TensorProto.STRING, [], [b"!"])  # type: ignore[list-item]  # onnx's annotation omits the bytes of STRING tensors
    graph = helper.make_graph(nodes, "text", [text], [shout, same], initializer=[bang])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    serialized: bytes = model.SerializeToString()
    return serialized


def golden(x: list[float], scale: float = 2.0) -> GoldenRequest:
    """A golden request for the affine model; ``scale`` other than 2 makes it wrong."""
    array = np.array([x], dtype=np.float32)
    y = array * scale + 1
    p = np.exp(array) / np.exp(array).sum(axis=1, keepdims=True)
    return GoldenRequest(
        inputs={"x": Tensor(datatype="FP32", shape=(1, len(x)), data=tuple(x))},
        outputs={
            "y": Tensor(datatype="FP32", shape=(1, len(x)), data=tuple(y.ravel().tolist())),
            "p": Tensor(datatype="FP32", shape=(1, len(x)), data=tuple(p.ravel().tolist())),
        },
        atol=1e-5,
    )


def settings_with(**serving: Any) -> Settings:
    return Settings(serving=ServingSettings(**serving))


@asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, and an in-process client talking to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8080"
        ) as client:
            yield client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A ready replica of the affine model, with one golden request."""
    reference = ReferenceData(golden=(golden([0.0, 1.0, 2.0, 3.0]),), labels=("a", "b", "c", "d"))
    app = create_app(settings_with(), OnnxEngine(affine_model()), IDENTITY, reference)
    async with running(app) as http:
        yield http


def replica(
    runtime: ModelEngine, reference: ReferenceData | None = None, **serving: Any
) -> Starlette:
    return create_app(settings_with(**serving), runtime, IDENTITY, reference)


@dataclass
class RunningServer:
    address: str
    server: DrainingServer
    thread: threading.Thread


@contextmanager
def serving_in_thread(app: Starlette, **serving: Any) -> Iterator[RunningServer]:
    """A real uvicorn server for ``app`` on a loopback socket bound before it starts.

    Connections wait in the socket's backlog until the server accepts them, so callers
    need no readiness polling.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = build_server(settings_with(port=port, **serving), app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield RunningServer(f"127.0.0.1:{port}", server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


INFER = "/v2/models/affine/infer"
AFFINE_BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                           "data": [1, 2, 3, 4]}]}  # fmt: skip
AFFINE_INFER = NormalRequest(
    "POST", INFER, json.dumps(AFFINE_BODY).encode(), {"content-type": "application/json"}
)


@contextmanager
def replica_process(folder: Path, nofile: int | None = None) -> Iterator[Target]:
    """``ferryman serve affine.onnx`` as a process on a free port, ready."""
    model = folder / "affine.onnx"
    model.write_bytes(affine_model())
    port = free_port()
    command = ["--data-dir", str(folder), "serve", str(model), "--port", str(port)]
    address = ("127.0.0.1", port)
    with server_process(command, address, "/v2/health/ready", nofile) as pid:
        yield Target(address, pid, AFFINE_INFER, INFER, "/v2/health/ready")
