"""ONNX Runtime GenAI on CPU: a language model folder, its KV cache kept by the library.

Concurrent requests: each stream owns an ``og.Generator`` (its own KV cache), and every
generation step of every stream runs on the engine's one executor thread, so streams
interleave token by token. ONNX Runtime GenAI batches only prompts given together up front
(a static batch), not requests that arrive while others run, so there is no cross-request
batching here; the replica bounds the number of open streams instead (429 beyond).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import onnxruntime_genai as og  # type: ignore[import-untyped,unused-ignore]

from ferryman.engines.generation import GenerationInfo, SamplingParams
from ferryman.errors import Unavailable

logger = logging.getLogger(__name__)
T = TypeVar("T")


class GenaiEngine:
    """Serves one ONNX Runtime GenAI model folder (``genai_config.json`` and its files)."""

    def __init__(self, folder: Path, name: str) -> None:
        config = json.loads((folder / "genai_config.json").read_text())
        model_config = config.get("model", {})
        self._folder = folder
        self._name = name
        self._context_length = int(model_config.get("context_length", 2048))
        eos = model_config.get("eos_token_id", [])
        self._eos = set(eos if isinstance(eos, list) else [eos])
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genai")
        self._model: Any = None
        self._tokenizer: Any = None

    def load(self) -> None:
        self._model = og.Model(str(self._folder))
        self._tokenizer = og.Tokenizer(self._model)
        logger.info("ONNX Runtime GenAI model %s loaded from %s", self._name, self._folder)

    def count_tokens(self, text: str) -> int:
        return len(self._loaded_tokenizer().encode(text))

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        tokenizer = self._loaded_tokenizer()
        prompt_tokens = tokenizer.encode(prompt)
        generator = await self._run(self._start, prompt_tokens, params)
        stream = tokenizer.create_stream()
        try:
            for _ in range(params.max_tokens):
                token = await self._run(self._step, generator)
                if token is None:
                    return
                yield stream.decode(token)
        finally:
            # Dropping the generator frees its KV cache; on the engine's thread, so that no
            # step of it can be running while it goes (a cancelled step may still run).
            holder = [generator]
            del generator
            with suppress(RuntimeError):  # the executor is shut down: unload frees it all
                self._executor.submit(holder.clear)

    def unload(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._tokenizer = None
        self._model = None

    def metadata(self) -> GenerationInfo:
        return GenerationInfo(self._name, "onnxruntime-genai", self._context_length)

    def _start(self, prompt_tokens: Any, params: SamplingParams) -> Any:
        max_length = min(self._context_length, len(prompt_tokens) + params.max_tokens)
        options: dict[str, Any] = {"max_length": max_length}
        if params.temperature > 0:
            options.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
            options["top_k"] = 0  # top_p alone decides; the library's default top_k is 50
        else:
            options["do_sample"] = False
        if params.seed is not None:
            options["random_seed"] = params.seed
        search = og.GeneratorParams(self._model)
        search.set_search_options(**options)
        generator = og.Generator(self._model, search)
        generator.append_tokens(prompt_tokens)
        return generator

    def _step(self, generator: Any) -> int | None:
        """The next token, or None at the end (EOS or the context is full)."""
        if generator.is_done():
            return None
        generator.generate_next_token()
        token = int(generator.get_next_tokens()[0])
        return None if token in self._eos else token

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    def _loaded_tokenizer(self) -> Any:
        if self._tokenizer is None:
            raise Unavailable("the language model is not loaded")
        return self._tokenizer
