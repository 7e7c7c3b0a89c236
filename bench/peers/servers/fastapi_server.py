"""FastAPI + uvicorn, 2 workers, ONNX Runtime at 1 intra-op thread each: the V2 JSON request
parsed by pydantic, as a FastAPI service is usually written.

Run: python fastapi_server.py PORT (BENCH_MODEL names the .onnx file).
"""

from __future__ import annotations

import sys

import numpy as np
import uvicorn
from fastapi import FastAPI
from onnx_session import DTYPES, outputs_json, session
from pydantic import BaseModel


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferRequest(BaseModel):
    inputs: list[Tensor]


app = FastAPI()
model = session()
names = [output.name for output in model.get_outputs()]


@app.get("/v2/health/ready")
def ready() -> dict[str, bool]:
    return {"ready": True}


@app.post("/v2/models/{name}/infer")
def infer(name: str, request: InferRequest) -> dict[str, object]:
    feeds = {t.name: np.asarray(t.data, DTYPES[t.datatype]).reshape(t.shape)
             for t in request.inputs}  # fmt: skip
    return {"model_name": name, "outputs": outputs_json(names, model.run(None, feeds))}


if __name__ == "__main__":
    uvicorn.run("fastapi_server:app", host="127.0.0.1", port=int(sys.argv[1]), workers=2,
                log_level="warning")  # fmt: skip
