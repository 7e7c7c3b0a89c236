"""ONNX Runtime GenAI on CPU: a language model folder, its KV cache kept by the library.

Concurrent requests: each stream owns an ``og.Generator`` (its own KV cache) and the streams
advance in rounds: one hop to the engine's one executor thread runs a step of every open
stream (and the prompt of every new one), and one wake-up of the event loop hands out what
the round made. A thread hop per token per stream cost more than the step of a small model
itself (the library keeps the GIL during a step, so the loop and the engine thread take
turns, and every turn is a hand-over); a round pays it once for all. Streams still
interleave token by token, a new one joins at the next round, and each token is handed over
the moment its round ends. ``og.Generator`` batches only prompts given together up front (a
static batch), so the model itself runs one stream per step; the library's ``og.Engine``
batches requests as they come, but refuses a seed per request unless it is configured for
dynamic batching (0.18), so it is not used yet. The replica bounds the number of open
streams (429 beyond).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import onnxruntime_genai as og  # type: ignore[import-untyped,unused-ignore]

from ferryman.engines.generation import GenerationInfo, SamplingParams
from ferryman.errors import Unavailable

logger = logging.getLogger(__name__)
T = TypeVar("T")
NOT_LOADED = "the language model is not loaded"


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
        self._open: list[_Stream] = []  # in the order they came
        self._rounds: asyncio.Task[None] | None = None

    def load(self) -> None:
        self._model = og.Model(str(self._folder))
        self._tokenizer = og.Tokenizer(self._model)
        logger.info("ONNX Runtime GenAI model %s loaded from %s", self._name, self._folder)

    def count_tokens(self, text: str) -> int:
        return len(self._loaded_tokenizer().encode(text))

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncGenerator[str]:
        tokenizer = self._loaded_tokenizer()
        if params.max_tokens < 1:
            return
        stream = _Stream(tokenizer.encode(prompt), params)
        self._open.append(stream)
        if self._rounds is None:
            self._rounds = asyncio.ensure_future(self._run_rounds())
        text = tokenizer.create_stream()
        try:
            while (token := await stream.next()) is not None:
                yield text.decode(token)
        finally:
            if stream in self._open:
                self._open.remove(stream)
            # Dropping the generator frees its KV cache; on the engine's thread, so that no
            # step of it can be running while it goes (a round may still be running).
            with suppress(RuntimeError):  # the executor is shut down: unload frees it all
                self._executor.submit(stream.release)

    def unload(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._tokenizer = None
        self._model = None

    def metadata(self) -> GenerationInfo:
        return GenerationInfo(self._name, "onnxruntime-genai", self._context_length)

    async def _run_rounds(self) -> None:
        """Rounds while any stream is open; each stream gets its token or its end. The task
        ends with the last open stream (the next stream starts another)."""
        try:
            while self._open:
                streams = list(self._open)
                made = await self._run(self._round, streams)
                for stream, token in zip(streams, made, strict=True):
                    if not stream.take(token) and stream in self._open:
                        self._open.remove(stream)
        except (RuntimeError, asyncio.CancelledError):
            # unload shut the executor (the round was cancelled or refused): no stream may
            # wait for a token that will not come
            for stream in self._open:
                stream.take(Unavailable(NOT_LOADED))
            self._open.clear()
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        finally:
            self._rounds = None

    def _round(self, streams: list[_Stream]) -> list[int | Exception | None]:
        """On the engine's thread: the next token of each stream (None: it ended)."""
        made: list[int | Exception | None] = []
        for stream in streams:
            try:
                if stream.generator is None:
                    stream.generator = self._start(stream.prompt_tokens, stream.params)
                made.append(self._step(stream.generator))
            except Exception as exc:  # this stream's error; the others go on
                made.append(exc)
        return made

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
            raise Unavailable(NOT_LOADED)
        return self._tokenizer


class _Stream:
    """One generation in the rounds: its generator (touched on the engine's thread only),
    the tokens made and not taken yet, and how it ended."""

    __slots__ = ("_end", "_made", "_wake", "generator", "left", "params", "prompt_tokens")

    def __init__(self, prompt_tokens: Any, params: SamplingParams) -> None:
        self.prompt_tokens = prompt_tokens
        self.params = params
        self.generator: Any = None
        self.left = params.max_tokens
        self._made: deque[int] = deque()
        self._end: Exception | bool = False  # True: ended; an error: failed
        self._wake: asyncio.Future[None] | None = None

    def take(self, made: int | Exception | None) -> bool:
        """Keep what a round made for this stream; whether it goes on."""
        if isinstance(made, int):
            self._made.append(made)
            self.left -= 1
            if self.left > 0:
                self._set_wake()
                return True
            made = None
        self._end = True if made is None else made
        self._set_wake()
        return False

    async def next(self) -> int | None:
        """The next token (at once when one is waiting); None at the end."""
        while not self._made:
            if isinstance(self._end, Exception):
                raise self._end
            if self._end:
                return None
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake
        return self._made.popleft()

    def release(self) -> None:
        self.generator = None

    def _set_wake(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
