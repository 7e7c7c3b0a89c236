"""A BentoML service, 2 workers, ONNX Runtime at 1 intra-op thread each; the endpoint takes the
same V2-shaped JSON body (its ``inputs`` argument).

Run: bentoml serve bentoml_service:Model --port PORT (BENCH_MODEL names the .onnx file).
"""

from __future__ import annotations

from typing import Any

import bentoml
import numpy as np
from onnx_session import DTYPES, outputs_json, session


@bentoml.service(workers=2)
class Model:
    def __init__(self) -> None:
        self.model = session()
        self.names = [output.name for output in self.model.get_outputs()]

    @bentoml.api
    def infer(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        feeds = {t["name"]: np.asarray(t["data"], DTYPES[t["datatype"]]).reshape(t["shape"])
                 for t in inputs}  # fmt: skip
        return {"outputs": outputs_json(self.names, self.model.run(None, feeds))}
