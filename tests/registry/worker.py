"""A registering process for the concurrency and crash tests (run as a script).

    python worker.py DATABASE_URL STORE_DIR MODEL COUNT

Prints ``READY`` once the registry is open, then ``ACK <version> <digest>`` after each
registration the registry acknowledged, flushed at once so a SIGKILL loses no ACK.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from onnx import TensorProto, helper

from ferryman.artifacts import LocalArtifactStore
from ferryman.registry import Database, Registry


def model_bytes(salt: int) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])
    weights = helper.make_tensor("c", TensorProto.FLOAT, [64, 64], [float(salt)] * 4096)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "c"], ["y"])], "g", [x], [y], [weights]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    serialized: bytes = model.SerializeToString()
    return serialized


def main() -> None:
    url, store_dir, model, count = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    database = Database(url)
    database.migrate()
    registry = Registry(database, LocalArtifactStore(store_dir))
    print("READY", flush=True)
    for index in range(count):
        salt = os.getpid() * 1000 + index
        record = registry.register(model, model_bytes(salt), f"worker-{os.getpid()}")
        print(f"ACK {record.version} {record.digest}", flush=True)


if __name__ == "__main__":
    main()
