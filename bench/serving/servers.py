"""The comparison servers, each run as its own process by run.py.

    python bench/serving/servers.py bare PORT            # HTTP floor: constant JSON, raw ASGI
    python bench/serving/servers.py naive PORT MODEL     # FastAPI + uvicorn + ONNX Runtime
    python bench/serving/servers.py minimal PORT MODEL   # the least an honest server does

The naive baseline is what a first attempt looks like: a FastAPI route that parses the V2
JSON with pydantic, builds a numpy array, runs ONNX Runtime, and returns lists.

The minimal server is the other bound: raw ASGI, orjson straight to numpy, one ONNX Runtime
call per request, orjson back — no validation, limits, batching, metrics or request ids. No
Python server that parses the request and runs the model can do less per request, so its
throughput is what "a share of the bare-ASGI floor" can at best be on this machine.

Both run under the uvicorn settings of a Ferryman replica (``UVICORN``: uvloop, httptools,
no access log, no server header, no proxy-header rewriting), so the comparison is of the
apps, not of server options.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import orjson
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

CONSTANT = b'{"model_name":"m","outputs":[{"name":"y","datatype":"FP32","shape":[1],"data":[1]}]}'


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the body, as a real endpoint must
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(CONSTANT))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": CONSTANT})


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class Request(BaseModel):
    inputs: list[Tensor]


def naive_app(model: Path) -> FastAPI:
    session = onnxruntime.InferenceSession(model.read_bytes(), providers=["CPUExecutionProvider"])
    output = session.get_outputs()[0].name
    app = FastAPI()

    @app.post("/v2/models/{name}/infer")
    def infer(name: str, request: Request) -> dict[str, Any]:
        tensor = request.inputs[0]
        x = np.array(tensor.data, dtype=np.float32).reshape(tensor.shape)
        (y,) = session.run([output], {tensor.name: x})
        return {"model_name": name, "outputs": [
            {"name": output, "datatype": "FP32", "shape": list(y.shape), "data": y.ravel().tolist()}
        ]}  # fmt: skip

    return app


def minimal_app(model: Path) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # a replica's default: batching, not threads, scales it
    session = onnxruntime.InferenceSession(
        model.read_bytes(), options, providers=["CPUExecutionProvider"]
    )
    output = session.get_outputs()[0].name

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":  # the bench's readiness probe
            await bare_app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        tensor = orjson.loads(body)["inputs"][0]
        x = np.array(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        (y,) = session.run([output], {tensor["name"]: x})
        document = orjson.dumps(
            {"model_name": "m", "outputs": [{"name": output, "datatype": "FP32",
             "shape": list(y.shape), "data": y.ravel()}]},
            option=orjson.OPT_SERIALIZE_NUMPY,
        )  # fmt: skip
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(document)),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": document})

    return app


UVICORN: dict[str, Any] = {
    "loop": "uvloop", "http": "httptools", "access_log": False, "log_level": "warning",
    "server_header": False, "proxy_headers": False, "timeout_keep_alive": 30,
}  # fmt: skip
"""What ``ferryman.serving.server.build_server`` sets (the rest are uvicorn's defaults)."""


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    apps = {"bare": lambda: bare_app, "naive": lambda: naive_app(Path(sys.argv[3])),
            "minimal": lambda: minimal_app(Path(sys.argv[3]))}  # fmt: skip
    app: Any = apps[kind]()
    uvicorn.run(app, host="127.0.0.1", port=port, **UVICORN)


if __name__ == "__main__":
    main()
