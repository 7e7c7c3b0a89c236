"""tiny-lm end to end: ``ferryman train tiny-lm``, then ``ferryman serve`` and ``ferryman
gateway`` as real processes, called with the official ``openai`` client.

Training is session-scoped and small (``tiny_lm_data`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from ferryman.gateway.routes import VariantRoute
from tests.gateway.conftest import endpoint, table
from tests.support import free_port

if TYPE_CHECKING:
    # the module itself is imported by importorskip below
    from openai import OpenAI
    from openai.types.chat import ChatCompletionMessageParam

openai = pytest.importorskip("openai")
pytest.importorskip("onnxruntime_genai")

pytestmark = pytest.mark.e2e
FERRYMAN = str(Path(sys.executable).parent / "ferryman")
CHAT: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What does the assert statement do?"}
]


def wait_for_gateway(url: str) -> None:
    """A process on its own: poll its health, bounded (there is no event to await)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail(f"{url} did not answer 200 within 60 s")


@dataclass(frozen=True)
class Stack:
    replica: str
    gateway: str


@pytest.fixture(scope="module")
def stack(tiny_lm_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp_path = tmp_path_factory.mktemp("llm-e2e")
    replica_port, gateway_port = free_port(), free_port()
    route = VariantRoute(
        name="v1-onnx-genai", model="tiny-lm", version=1, weight=100,
        backends=(f"http://127.0.0.1:{replica_port}",),
    )  # fmt: skip
    routes = tmp_path / "routes.json"
    routes.write_text(table(endpoint(route, name="lm", hold_timeout_s=60)).model_dump_json())
    data = ["--data-dir", str(tiny_lm_data)]
    env = {**os.environ, "FERRYMAN_GENERATION__MAX_PROMPT_TOKENS": "64"}
    commands = [
        [FERRYMAN, "gateway", "--port", str(gateway_port), "--routes-file", str(routes), *data],
        [FERRYMAN, "serve", "tiny-lm:1", "--port", str(replica_port), *data],
    ]
    processes = [subprocess.Popen(command, env=env) for command in commands]
    try:
        wait_for_gateway(f"http://127.0.0.1:{gateway_port}/-/healthz")
        wait_for_gateway(f"http://127.0.0.1:{replica_port}/v2/health/ready")
        yield Stack(
            f"http://127.0.0.1:{replica_port}/v1",
            f"http://127.0.0.1:{gateway_port}/endpoints/lm/v1",
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


@pytest.fixture(params=["replica", "gateway"])
def client(request: pytest.FixtureRequest, stack: Stack) -> Iterator[OpenAI]:
    base_url = stack.replica if request.param == "replica" else stack.gateway
    with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60) as made:
        yield made


def test_chat_and_completion_answer_with_usage(client: OpenAI) -> None:
    chat = client.chat.completions.create(model="tiny-lm", messages=CHAT, max_tokens=12)
    assert chat.object == "chat.completion"
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].message.content
    assert chat.usage is not None
    assert 0 < chat.usage.completion_tokens <= 12
    assert chat.usage.prompt_tokens > 5
    done = client.completions.create(model="tiny-lm", prompt="The with statement", max_tokens=8)
    assert done.choices[0].finish_reason in {"length", "stop"}
    assert done.usage is not None
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    assert [m.id for m in client.models.list().data] == ["tiny-lm"]


def test_seeded_sampling_is_reproducible(client: OpenAI) -> None:
    def sample(seed: int) -> str:
        answer = client.completions.create(
            model="tiny-lm", prompt="A class definition", max_tokens=24, temperature=1.0,
            top_p=0.95, seed=seed,
        )  # fmt: skip
        return answer.choices[0].text

    first = sample(7)
    assert sample(7) == first
    assert {sample(seed) for seed in (8, 9, 10)} != {first}


def test_stream_is_the_same_text_in_pieces(client: OpenAI) -> None:
    prompt = "The for statement"
    whole = client.completions.create(model="tiny-lm", prompt=prompt, max_tokens=20, temperature=0)
    pieces = [
        chunk.choices[0].text
        for chunk in client.completions.create(
            model="tiny-lm", prompt=prompt, max_tokens=20, temperature=0, stream=True
        )
        if chunk.choices
    ]
    assert len([p for p in pieces if p]) > 3
    assert "".join(pieces) == whole.choices[0].text


def test_stop_sequence_cuts_the_text(client: OpenAI) -> None:
    def sample(stop: list[str] | None) -> tuple[str, str]:
        choice = client.completions.create(
            model="tiny-lm", prompt="The if statement", max_tokens=30, seed=3, stop=stop
        ).choices[0]
        return choice.text, choice.finish_reason

    text, _ = sample(None)
    # The first two printable characters, past the start, that occur there first.
    at = next(
        i for i in range(2, len(text) - 1)
        if text[i : i + 2].isprintable() and not text[i : i + 2].isspace()
        and text.index(text[i : i + 2]) == i
    )  # fmt: skip
    assert sample([text[at : at + 2]]) == (text[:at], "stop")


def test_a_prompt_over_the_limit_is_400_in_openai_shape(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model="tiny-lm", prompt="while True: pass\n" * 40, max_tokens=4)
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error"
    assert "at most 64" in error["message"]


def test_the_version_is_a_bundle_in_the_registry(tiny_lm_data: Path) -> None:
    command = [FERRYMAN, "versions", "list", "tiny-lm", "--json", "--data-dir", str(tiny_lm_data)]
    listed = json.loads(subprocess.run(command, capture_output=True, check=True).stdout)
    assert listed[0]["format"] == "onnx-genai"
    metrics = listed[0]["metrics"]
    assert metrics["held_out_perplexity"] > 1
    assert 0 < metrics["held_out_token_accuracy"] < 1


def test_a_hundred_streams_at_once_complete_or_get_a_fast_429(stack: Stack) -> None:
    """Eight slots per replica: the rest are refused at once, in OpenAI's shape, not queued."""
    body = {"model": "tiny-lm", "prompt": "The import system", "max_tokens": 32, "stream": True}

    async def one(client: httpx.AsyncClient) -> tuple[int, float, bytes]:
        started = time.perf_counter()
        async with client.stream("POST", f"{stack.gateway}/completions", json=body) as answer:
            content = await answer.aread()
        return answer.status_code, time.perf_counter() - started, content

    async def all_at_once() -> list[tuple[int, float, bytes]]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            return await asyncio.gather(*(one(client) for _ in range(100)))

    outcomes = asyncio.run(all_at_once())
    statuses = [status for status, _, _ in outcomes]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 8
    assert all(content.endswith(b"data: [DONE]\n\n") for s, _, content in outcomes if s == 200)
    refused = [(took, json.loads(content)) for s, took, content in outcomes if s == 429]
    assert all(doc["error"]["code"] == "rate_limit_exceeded" for _, doc in refused)
    assert all(took < 5 for took, _ in refused)
