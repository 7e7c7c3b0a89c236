"""PyTorch to ONNX: one self-contained file with a dynamic batch axis.

The TorchScript-based exporter (``dynamo=False``) is used on purpose: it is fast, needs no
onnxscript, and writes the weights inside the file (an external-data side file would be
refused by the format gate).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import torch

OPSET = 17


def export_torch(
    module: torch.nn.Module, example: torch.Tensor, input_name: str, output_name: str
) -> bytes:
    """Export ``module`` (in eval mode, on the CPU) with inputs shaped like ``example``."""
    module = module.eval().to("cpu")
    with tempfile.TemporaryDirectory(prefix="ferryman-export-") as workdir:
        target = Path(workdir) / "model.onnx"
        _export(module, example.to("cpu"), target, input_name, output_name)
        return target.read_bytes()


def _export(
    module: torch.nn.Module, example: torch.Tensor, target: Path, input_name: str, output_name: str
) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter is chosen on purpose (see the module docstring); its
        # deprecation notices are known and say nothing about this model.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (example,),
            target,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
            external_data=False,
        )
