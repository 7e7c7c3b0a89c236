"""vLLM on NVIDIA GPUs, behind the same generation seam as ONNX Runtime GenAI.

vLLM keeps its own paged KV cache and batches concurrent requests continuously, so the
replica's stream limit is the only bound Ferryman adds. It serves a Hugging Face-format
folder (config, safetensors weights, tokenizer) on local disk; nothing is fetched from a
hub (``HF_HUB_OFFLINE`` is set before vLLM loads). vLLM is imported only when this module
is, which only a replica serving with it does: it is a GPU dependency, not in any extra.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ferryman.engines.generation import GenerationInfo, SamplingParams
from ferryman.errors import Unavailable


class VllmEngine:
    """Serves one local Hugging Face-format model folder with vLLM's async engine."""

    def __init__(self, folder: Path, name: str, gpu_memory_fraction: float = 0.5) -> None:
        self._folder = folder
        self._name = name
        self._gpu_memory_fraction = gpu_memory_fraction
        self._engine: Any = None
        self._tokenizer: Any = None
        self._context_length = 0

    def load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder only, never a download
        from transformers import AutoTokenizer  # noqa: PLC0415
        from vllm import AsyncEngineArgs, AsyncLLMEngine  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415

        args = AsyncEngineArgs(
            model=str(self._folder),
            gpu_memory_utilization=self._gpu_memory_fraction,
            enforce_eager=True,  # no CUDA-graph capture: a small model starts in seconds
        )
        self._engine = AsyncLLMEngine.from_engine_args(args)
        self._tokenizer = AutoTokenizer.from_pretrained(str(self._folder))
        self._context_length = int(self._engine.model_config.max_model_len)

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:
            raise Unavailable("the language model is not loaded")
        return len(self._tokenizer(text)["input_ids"])

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        from vllm import SamplingParams as VllmSampling  # noqa: PLC0415

        if self._engine is None:
            raise Unavailable("the language model is not loaded")
        sampling = VllmSampling(
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
        )
        request_id = uuid.uuid4().hex
        sent = 0
        finished = False
        try:
            async for output in self._engine.generate(prompt, sampling, request_id):
                text: str = output.outputs[0].text  # the whole text so far
                if len(text) > sent:
                    yield text[sent:]
                    sent = len(text)
                finished = output.finished
        finally:
            if not finished:  # the client went away: free vLLM's blocks for this request
                await self._engine.abort(request_id)

    def unload(self) -> None:
        if self._engine is not None:
            self._engine.shutdown_background_loop()
        self._engine = None
        self._tokenizer = None

    def metadata(self) -> GenerationInfo:
        return GenerationInfo(self._name, "vllm", self._context_length)
