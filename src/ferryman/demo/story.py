"""The demo story: each step runs the real part and says what happened and why.

What exists today is the registry: the demo registers two versions of a small ONNX model,
moves the production alias, shows the audit log, and proves the safety floor by refusing a
pickle. Training, serving and automatic rollouts join the story as they land.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from onnx import TensorProto, helper
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from ferryman.errors import UnsafeArtifact
from ferryman.registry import Registry, build_metadata

MODEL = "demo-relu"


def run_demo(registry: Registry, actor: str, workdir: Path, console: Console) -> None:
    """Register two versions, promote the second, show the log, refuse a pickle."""
    workdir.mkdir(parents=True, exist_ok=True)
    console.print(Panel.fit("Ferryman demo: the registry", style="bold"))
    first = registry.register(
        MODEL, _model_bytes(0.0), actor, build_metadata(metrics={"accuracy": 0.91})
    )
    console.print(f"1. Registered {MODEL} v{first.version}: an ONNX file, stored by its sha256")
    second = registry.register(
        MODEL, _model_bytes(0.5), actor, build_metadata(metrics={"accuracy": 0.95})
    )
    console.print(f"2. Registered v{second.version}; numbers are assigned atomically per model")
    registry.set_alias(MODEL, "production", second.version, actor)
    console.print(f"3. Moved alias production → v{second.version}; the move is an audit event")
    try:
        registry.register(MODEL, pickle.dumps({"weights": [1, 2, 3]}), actor)
    except UnsafeArtifact as refused:
        console.print(
            f"4. A pickle was refused without being loaded:\n   [dim]{refused.message}[/]"
        )
    table = Table("#", "action", "object", "details", title="Audit log (newest last)")
    for event in registry.list_events(MODEL, limit=10):
        details = ", ".join(f"{key}={value}" for key, value in event.details.items())
        table.add_row(str(event.id), event.action, event.object_key, details[:60])
    console.print(table)
    console.print(
        "Not in this demo yet: training, export, serving and automatic rollouts "
        "(they arrive with the next parts). Explore with: ferryman models list, "
        f"ferryman versions show {MODEL} production, ferryman events"
    )


def _model_bytes(bias: float) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    c = helper.make_tensor("bias", TensorProto.FLOAT, [4], [bias] * 4)
    nodes = [helper.make_node("Add", ["x", "bias"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    graph = helper.make_graph(nodes, "demo", [x], [y], initializer=[c])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    encoded: bytes = model.SerializeToString()
    return encoded
