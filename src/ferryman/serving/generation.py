"""The generation plane of a language-model replica: limits, slots, stops, usage, metrics.

Protocol-independent (``serving/openai.py`` only translates): a request is checked against
the limits before anything streams (prompt length and ``max_tokens`` -> 400, no free slot
-> 429), holds one slot while its tokens flow, and gives it back when it ends, fails or is
closed early because its client went away. Every generation leaves a record of kind
``completion`` in the replica's payload log under the completion's id, so feedback (thumbs
up or down) joins the version that wrote it; the prompt and the text are not kept.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, suppress
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ferryman.config import GenerationSettings
from ferryman.engines.generation import GenerationEngine, SamplingParams
from ferryman.errors import InvalidInput, TooManyRequests, Unavailable
from ferryman.protocol.openai import COMPLETION_KIND
from ferryman.serving.metrics import LATENCY_BUCKETS_S, ReplicaIdentity
from ferryman.serving.payloads import Payload, PayloadLog, PayloadPolicy

CLIENT_CLOSED = 499
"""The status a completion's record keeps when its client went away before the end."""

TOKEN_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
RATE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


@dataclass(frozen=True, slots=True)
class Piece:
    """Text a stream adds; ``finish`` ("stop" or "length") on the last piece only."""

    text: str
    finish: str | None = None


@dataclass(slots=True)
class Tally:
    """Usage of one generation, filled in as it runs."""

    prompt_tokens: int
    completion_tokens: int = 0


class GenerationMetrics:
    """Per-token latency and throughput on a registry this replica owns."""

    def __init__(self, identity: ReplicaIdentity) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version", "variant")
        values = (identity.model, identity.version, identity.variant)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            made = Histogram(name, doc, labels, registry=self.registry, buckets=buckets)
            return made.labels(*values)  # type: ignore[no-any-return,unused-ignore]

        self.ttft = histogram(
            "ferryman_llm_time_to_first_token_seconds",
            "From a generation's start to its first token.",
            TOKEN_BUCKETS_S,
        )
        self.inter_token = histogram(
            "ferryman_llm_inter_token_latency_seconds",
            "Between consecutive tokens of one generation (time per output token).",
            TOKEN_BUCKETS_S,
        )
        self.tokens_per_s = histogram(
            "ferryman_llm_tokens_per_second", "Output tokens per second of each generation.",
            RATE_BUCKETS,
        )  # fmt: skip
        self.prompt_tokens = Counter(
            "ferryman_llm_prompt_tokens", "Prompt tokens read.", labels, registry=self.registry
        ).labels(*values)
        self.completion_tokens = Counter(
            "ferryman_llm_completion_tokens", "Tokens generated.", labels, registry=self.registry
        ).labels(*values)
        # The three series every replica has, under the same names as a tensor replica's, so
        # the monitor, the autoscaler (requests in flight) and replica analysis read them.
        self.requests = Counter(
            "ferryman_requests", "Requests answered, by HTTP status code.",
            (*labels, "code"), registry=self.registry,
        )  # fmt: skip
        self.streams = Gauge(
            "ferryman_in_flight_requests", "Requests being answered (generations running).",
            labels, registry=self.registry,
        ).labels(*values)  # fmt: skip
        self.duration = histogram(
            "ferryman_request_duration_seconds", "Time to answer (a whole generation).",
            LATENCY_BUCKETS_S,
        )  # fmt: skip
        self._values = values

    def answered(self, status: int) -> None:
        self.requests.labels(*self._values, str(status)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class GenerationPlane:
    """Runs generations on one engine within the replica's limits."""

    def __init__(
        self,
        identity: ReplicaIdentity,
        engine: GenerationEngine,
        limits: GenerationSettings,
        payloads: PayloadLog | None = None,
    ) -> None:
        self.identity = identity
        self.engine = engine
        self.limits = limits
        self.metrics = GenerationMetrics(identity)
        self.payloads = payloads or PayloadLog(PayloadPolicy(input_sample_rate=0.0))
        """Completions answered, by id, for the control plane to join feedback to."""
        self.is_ready = False
        self.is_draining = False
        self._open = 0

    async def load(self) -> None:
        await asyncio.to_thread(self.engine.load)
        self.is_ready = True

    async def unload(self) -> None:
        self.is_ready = False
        await asyncio.to_thread(self.engine.unload)

    @property
    def open_streams(self) -> int:
        return self._open

    def start(
        self, prompt: str, params: SamplingParams, stops: tuple[str, ...], completion_id: str
    ) -> tuple[Tally, AsyncGenerator[Piece]]:
        """Check the limits and take a slot; the iterator gives the slot back when it ends
        and leaves the completion's record (``completion_id``) in the payload log."""
        if self.is_draining or not self.is_ready:
            raise Unavailable(f"{self.identity.describe()} is not ready", retry_after_s=1)
        limits = self.limits
        if params.max_tokens > limits.max_completion_tokens:
            raise InvalidInput(
                f"max_tokens {params.max_tokens} is over this endpoint's limit of "
                f"{limits.max_completion_tokens}; ask for fewer tokens"
            )
        prompt_tokens = self.engine.count_tokens(prompt)
        if prompt_tokens > limits.max_prompt_tokens:
            raise InvalidInput(
                f"the prompt has {prompt_tokens} tokens; this endpoint takes at most "
                f"{limits.max_prompt_tokens}; shorten the prompt"
            )
        if self._open >= limits.max_streams:
            raise TooManyRequests(
                f"all {limits.max_streams} generation slots are busy; retry shortly",
                retry_after_s=1,
            )
        self._open += 1
        self.metrics.streams.inc()
        tally = Tally(prompt_tokens)
        self.metrics.prompt_tokens.inc(prompt_tokens)
        payload = self.payloads.begin(completion_id)
        payload.kind = COMPLETION_KIND
        return tally, self._run(prompt, params, stops, tally, payload)

    async def _run(
        self,
        prompt: str,
        params: SamplingParams,
        stops: tuple[str, ...],
        tally: Tally,
        payload: Payload,
    ) -> AsyncGenerator[Piece]:
        scanner = StopScanner(stops)
        started = last = time.perf_counter()
        finish = "length"
        status = CLIENT_CLOSED  # until the last piece is handed over
        tokens = self.engine.generate(prompt, params)
        try:
            async for text in tokens:
                now = time.perf_counter()
                if tally.completion_tokens == 0:
                    self.metrics.ttft.observe(now - started)
                else:
                    self.metrics.inter_token.observe(now - last)
                last = now
                tally.completion_tokens += 1
                self.metrics.completion_tokens.inc()
                emit, is_stopped = scanner.feed(text)
                if is_stopped:
                    finish = "stop"
                    yield Piece(emit)
                    break
                if emit:
                    yield Piece(emit)
            else:
                if tally.completion_tokens < params.max_tokens:
                    finish = "stop"  # the model ended the text itself (EOS)
                yield Piece(scanner.flush())
            status = 200
            yield Piece("", finish)
            elapsed_s = time.perf_counter() - started
            if tally.completion_tokens and elapsed_s > 0:
                self.metrics.tokens_per_s.observe(tally.completion_tokens / elapsed_s)
        except Exception:
            status = 500
            raise
        finally:
            elapsed_s = time.perf_counter() - started
            self.metrics.duration.observe(elapsed_s)
            self.payloads.finish(payload, status, elapsed_s)
            await _close(tokens)
            self._open -= 1
            self.metrics.streams.dec()


_END = object()


async def ready_batches(pieces: AsyncGenerator[Piece]) -> AsyncGenerator[list[Piece]]:
    """``pieces`` in batches of those ready at the same moment; the source runs ahead.

    A task pulls the pieces while the caller sends the previous batch, so the engine need
    not wait for the socket, and what it made meanwhile goes out in one write: fewer writes,
    reads and wake-ups per token everywhere downstream when tokens come faster than they
    can be sent one by one. The first piece is handed over the moment it exists. Closing
    the batches cancels the task, which closes ``pieces`` (the generation's slot is freed);
    an error of the source is raised here, after the pieces it made before it.
    """
    ready: asyncio.Queue[Piece | object] = asyncio.Queue()

    async def pull() -> None:
        try:
            async with aclosing(pieces):
                async for piece in pieces:
                    ready.put_nowait(piece)
        finally:
            ready.put_nowait(_END)

    task = asyncio.ensure_future(pull())
    try:
        is_done = False
        while not is_done:
            batch: list[Piece] = []
            item = await ready.get()
            while item is not _END:
                batch.append(item)  # type: ignore[arg-type]
                if ready.empty():
                    break
                item = ready.get_nowait()
            is_done = item is _END
            if batch:
                yield batch
        await task  # the source's error, if it ended with one
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def _close(tokens: AsyncIterator[str]) -> None:
    """Close the engine's stream now (its KV cache goes), not when it is collected."""
    aclose = getattr(tokens, "aclose", None)
    if aclose is not None:
        await aclose()


class StopScanner:
    """Holds back text that may begin a stop sequence; cuts the text where one appears.

    >>> scanner = StopScanner(("END",))
    >>> scanner.feed("abE"), scanner.feed("N"), scanner.feed("Dx")
    (('ab', False), ('', False), ('', True))
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = stops
        self._held = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """The text that may be sent now, and whether a stop sequence was met."""
        text = self._held + piece
        cuts = [text.find(stop) for stop in self._stops if stop in text]
        if cuts:
            self._held = ""
            return text[: min(cuts)], True
        keep = max((_overlap(text, stop) for stop in self._stops), default=0)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


def _overlap(text: str, stop: str) -> int:
    """The length of the longest end of ``text`` that begins ``stop``."""
    for size in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-size:]):
            return size
    return 0
