"""An MLServer custom runtime running an ONNX model with ONNX Runtime (1 intra-op thread per
worker process); MLServer runs it in 2 parallel workers (settings written by the benchmark)."""

from __future__ import annotations

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from onnx_session import session


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        self._session = session()
        self._outputs = [output.name for output in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        found = self._session.run(None, feeds)
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output(name, array)
                     for name, array in zip(self._outputs, found, strict=True)],
        )  # fmt: skip
