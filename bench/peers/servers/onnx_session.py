"""One ONNX Runtime session as the peers are usually configured on 2 cores: one intra-op
thread per process (each server runs two processes or instances)."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort


def session() -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        os.environ["BENCH_MODEL"], options, providers=["CPUExecutionProvider"]
    )


DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
DATATYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32"}


def outputs_json(names: list[str], arrays: list[np.ndarray]) -> list[dict[str, object]]:
    """V2 output tensors."""
    return [
        {"name": name, "shape": list(array.shape), "datatype": DATATYPES[array.dtype.name],
         "data": array.ravel().tolist()}
        for name, array in zip(names, arrays, strict=True)
    ]  # fmt: skip
