"""PyTriton (the Triton Inference Server in the nvidia-pytriton wheel), 2 model instances,
each its own ONNX Runtime session at 1 intra-op thread, with PyTriton's dynamic batching.

Run: python pytriton_server.py HTTP_PORT GRPC_PORT METRICS_PORT (BENCH_MODEL names the
.onnx file).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
from onnx_session import session
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def instance() -> Callable[..., dict[str, np.ndarray]]:
    model = session()
    name = model.get_inputs()[0].name
    outputs = [output.name for output in model.get_outputs()]

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        found = model.run(None, {name: inputs[name]})
        return {n: a.reshape(len(a), -1) for n, a in zip(outputs, found, strict=True)}

    return infer


def main() -> None:
    http_port, grpc_port, metrics_port = map(int, sys.argv[1:4])
    probe = session()
    given = probe.get_inputs()[0]
    outputs = [
        Tensor(name=o.name, dtype=np.int64 if "int64" in o.type else np.float32, shape=(-1,))
        for o in probe.get_outputs()
    ]
    config = TritonConfig(http_address="127.0.0.1", http_port=http_port, grpc_port=grpc_port,
                          metrics_port=metrics_port)  # fmt: skip
    with Triton(config=config) as triton:
        triton.bind(
            model_name="m",
            infer_func=[instance(), instance()],
            inputs=[Tensor(name=given.name, dtype=np.float32, shape=tuple(given.shape[1:]))],
            outputs=outputs,
            config=ModelConfig(max_batch_size=64),
        )
        triton.serve()


if __name__ == "__main__":
    main()
