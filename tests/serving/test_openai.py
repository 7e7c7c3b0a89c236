"""The OpenAI-compatible routes with a scripted engine: streaming, slots, limits, shapes.

The official ``openai`` client talks to a real replica app on 127.0.0.1, directly and
through a real gateway app. The scripted engine holds its second token until the test has
read the first one through the wire, so "the first chunk arrives before the last is made"
is proved without timing: a buffering replica or gateway would never deliver it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx
import pytest
from pydantic import SecretStr

from ferryman.config import GatewaySettings, GenerationSettings, ServingSettings, Settings
from ferryman.control.metrics.source import replica_scrape
from ferryman.engines.generation import GenerationInfo, SamplingParams
from ferryman.gateway import Gateway
from ferryman.gateway.routes import VariantRoute
from ferryman.serving.generation import GenerationPlane
from ferryman.serving.metrics import ReplicaIdentity
from ferryman.serving.openai import create_generation_app
from tests.gateway.conftest import endpoint, serving, table

if TYPE_CHECKING:
    from openai import AsyncOpenAI  # the module itself is imported by importorskip below

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.anyio
PIECES = ("Hel", "lo ", "wor", "ld", "!")
Stack = tuple["AsyncOpenAI", "ScriptedEngine", GenerationPlane]


class ScriptedEngine:
    """Yields fixed pieces; the second waits until ``gate`` is set. Counts closed streams."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.closed = 0

    def load(self) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        try:
            for index, piece in enumerate(PIECES[: params.max_tokens]):
                if index == 1:
                    await self.gate.wait()
                yield piece
        finally:
            self.closed += 1

    def unload(self) -> None:
        pass

    def metadata(self) -> GenerationInfo:
        return GenerationInfo("scripted", "scripted", 128)


@pytest.fixture(params=["replica", "gateway"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    """A replica (max 1 stream, prompts of 8 tokens) and the base URL a client uses."""
    engine = ScriptedEngine()
    limits = GenerationSettings(max_streams=1, max_prompt_tokens=8, max_completion_tokens=10)
    settings = Settings(data_dir=tmp_path, generation=limits)
    app = create_generation_app(settings, engine, ReplicaIdentity("scripted", "1", "onnx-genai"))
    async with serving(app, lifespan="on") as replica_url:
        if request.param == "replica":
            async with _client(f"{replica_url}/v1") as client:
                yield client, engine, app.state.plane
            return
        async with (
            _gateway(replica_url) as gateway_url,
            _client(f"{gateway_url}/endpoints/chat/v1") as client,
        ):
            yield client, engine, app.state.plane


@asynccontextmanager
async def _gateway(replica_url: str, settings: GatewaySettings | None = None) -> AsyncIterator[str]:
    gateway = Gateway(settings or Settings().gateway)
    route = VariantRoute(
        name="v1-onnx-genai", model="scripted", version=1, weight=100, backends=(replica_url,)
    )
    gateway.set_routes(table(endpoint(route, name="chat")))
    async with serving(gateway, lifespan="on") as url:
        yield url


def _client(base_url: str) -> AsyncOpenAI:
    client: AsyncOpenAI = openai.AsyncOpenAI(
        base_url=base_url, api_key="unused", max_retries=0, timeout=10
    )
    return client


async def test_stream_sends_the_first_token_before_the_last_exists(
    stack: Stack,
) -> None:
    client, engine, _ = stack
    texts: list[str] = []
    with anyio.fail_after(10):
        stream = await client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "hi"}], stream=True,
            max_tokens=5, stream_options={"include_usage": True},
        )  # fmt: skip
        usage = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                texts.append(chunk.choices[0].delta.content)
                engine.gate.set()  # only now may the engine make the second token
            usage = chunk.usage or usage
    assert "".join(texts) == "".join(PIECES)
    assert len(texts) == len(PIECES)
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        3,
        len(PIECES),
    )  # "user: hi / assistant:"


async def test_a_second_stream_gets_429_and_a_disconnect_frees_the_slot(
    stack: Stack,
) -> None:
    client, engine, plane = stack
    with anyio.fail_after(10):
        first = await client.completions.create(
            model="scripted", prompt="hi", stream=True, max_tokens=5
        )
        chunk = await first.__anext__()
        assert chunk.choices[0].text == PIECES[0]
        assert replica_scrape(plane.metrics.exposition().decode()).in_flight == 1
        with pytest.raises(openai.RateLimitError) as refused:
            await client.completions.create(model="scripted", prompt="hi", max_tokens=5)
        assert refused.value.status_code == 429
        assert refused.value.body["type"] == "rate_limit_error"
        await first.close()  # the client goes away mid-stream; the gate never opens
        while plane.open_streams:  # the replica sees the disconnect on its own time
            await anyio.sleep(0.01)
    assert engine.closed == 1
    engine.gate.set()
    answer = await client.completions.create(model="scripted", prompt="hi", max_tokens=5)
    assert answer.choices[0].text == "".join(PIECES)


async def test_limits_answer_400_in_openai_shape(
    stack: Stack,
) -> None:
    client, _, _ = stack
    with pytest.raises(openai.BadRequestError) as long_prompt:
        await client.completions.create(model="scripted", prompt="a " * 20, max_tokens=2)
    error = long_prompt.value.body
    assert error["type"] == "invalid_request_error"
    assert "20 tokens" in error["message"]
    with pytest.raises(openai.BadRequestError, match="max_tokens 11 is over"):
        await client.completions.create(model="scripted", prompt="hi", max_tokens=11)
    with pytest.raises(openai.BadRequestError, match="temperature"):
        await client.completions.create(model="scripted", prompt="hi", temperature=3)


@pytest.mark.parametrize(
    ("stop", "text", "finish"),
    [(["lo w"], "Hel", "stop"), (["!"], "Hello world", "stop"), (["zz"], "Hello world", "length")],
)
async def test_stop_sequences_cut_the_text(
    stack: Stack, stop: list[str], text: str, finish: str
) -> None:
    client, engine, _ = stack
    engine.gate.set()
    max_tokens = 4 if finish == "length" else 5
    answer = await client.completions.create(
        model="scripted", prompt="hi there", stop=stop, max_tokens=max_tokens
    )
    assert answer.choices[0].text == text
    assert answer.choices[0].finish_reason == finish
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == 2


async def test_models_and_metrics(stack: Stack) -> None:
    client, engine, plane = stack
    engine.gate.set()
    listed = await client.models.list()
    assert [m.id for m in listed.data] == ["scripted"]
    await client.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    text = plane.metrics.exposition().decode()
    assert 'ferryman_llm_time_to_first_token_seconds_count{model="scripted"' in text
    assert "ferryman_llm_inter_token_latency_seconds_count" in text
    counts = [line for line in text.splitlines() if line.startswith("ferryman_llm_completion")]
    assert any(line.endswith(" 5.0") for line in counts), counts
    # The series every replica has, as the control plane reads them (autoscaler, monitor).
    scrape = replica_scrape(text)
    assert scrape.in_flight == 0
    assert scrape.traffic.requests == 1
    assert scrape.traffic.quantile_s(0.5) is not None


async def test_the_gateway_refuses_unknown_openai_paths_in_openai_shape() -> None:
    async with _gateway("http://127.0.0.1:9") as url, httpx.AsyncClient() as http:
        answer = await http.post(f"{url}/endpoints/chat/v1/embeddings", content=b"{}")
        missing = await http.post(f"{url}/endpoints/nope/v1/completions", content=b"{}")
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "not_found_error"
    assert missing.status_code == 404
    assert "'nope' is not deployed" in missing.json()["error"]["message"]


async def test_the_gateway_holds_a_stream_until_a_replica_is_routed(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    engine.gate.set()
    app = create_generation_app(
        Settings(data_dir=tmp_path), engine, ReplicaIdentity("scripted", "1", "onnx-genai")
    )
    gateway = Gateway(Settings().gateway)
    empty = VariantRoute(name="v1", model="scripted", version=1, weight=100, backends=())
    gateway.set_routes(table(endpoint(empty, name="chat", hold_timeout_s=10)))
    async with (
        serving(app, lifespan="on") as replica_url,
        serving(gateway, lifespan="on") as url,
        _client(f"{url}/endpoints/chat/v1") as client,
    ):
        asked = asyncio.ensure_future(
            client.completions.create(model="scripted", prompt="hi", max_tokens=5)
        )
        with anyio.fail_after(10):
            while not gateway.held():
                await anyio.sleep(0.01)
            ready = VariantRoute(
                name="v1", model="scripted", version=1, weight=100, backends=(replica_url,)
            )
            gateway.set_routes(table(endpoint(ready, name="chat"), generation=2))
            answer = await asked
            streamed = await client.completions.create(
                model="scripted", prompt="hi", max_tokens=5, stream=True
            )
            assert "".join([chunk.choices[0].text async for chunk in streamed if chunk.choices])
    assert answer.choices[0].text == "".join(PIECES)
    exposition = gateway.metrics.exposition().decode()
    # Time to first token: one stream observed; the whole (non-stream) answer is not one.
    assert 'ferryman_gateway_first_token_seconds_count{endpoint="chat",variant="v1"} 1.0' in (
        exposition
    )
    assert 'ferryman_gateway_inter_token_seconds_count{endpoint="chat",variant="v1"}' in exposition


async def test_the_gateway_sends_a_stream_to_the_replica_with_fewest_open(tmp_path: Path) -> None:
    """Two replicas of one slot each: while one streams, the next stream goes to the other
    (a random pick would send half of them to the busy one, which answers 429)."""
    engines = [ScriptedEngine(), ScriptedEngine()]
    limits = GenerationSettings(max_streams=1)
    apps = [
        create_generation_app(
            Settings(data_dir=tmp_path, generation=limits), engine,
            ReplicaIdentity("scripted", "1", "onnx-genai"),
        )
        for engine in engines
    ]  # fmt: skip
    async with (
        serving(apps[0], lifespan="on") as first_url,
        serving(apps[1], lifespan="on") as second_url,
    ):
        gateway = Gateway(Settings().gateway)
        both = VariantRoute(
            name="v1", model="scripted", version=1, weight=100, backends=(first_url, second_url)
        )
        gateway.set_routes(table(endpoint(both, name="chat")))
        async with (
            serving(gateway, lifespan="on") as url,
            _client(f"{url}/endpoints/chat/v1") as client,
        ):
            for _ in range(5):
                with anyio.fail_after(10):
                    held = await client.completions.create(
                        model="scripted", prompt="hi", max_tokens=5, stream=True
                    )
                    await held.__anext__()  # one replica's only slot is taken
                    other = await client.completions.create(
                        model="scripted", prompt="hi", max_tokens=1
                    )
                    assert other.choices[0].text == PIECES[0]
                    await held.close()
                    while any(app.state.plane.open_streams for app in apps):
                        await anyio.sleep(0.01)


async def test_a_replica_with_a_token_answers_its_holders_only(tmp_path: Path) -> None:
    """As a tensor replica: the fleet's secret on every route but liveness; the gateway
    holds it, a client going around the gateway gets a 401 in OpenAI's shape."""
    engine = ScriptedEngine()
    engine.gate.set()
    serving_settings = ServingSettings(token=SecretStr("fleet-secret"))
    settings = Settings(data_dir=tmp_path, serving=serving_settings)
    app = create_generation_app(settings, engine, ReplicaIdentity("scripted", "1", "onnx-genai"))
    async with serving(app, lifespan="on") as replica_url, httpx.AsyncClient() as http:
        body = {"model": "scripted", "prompt": "hi", "max_tokens": 2}
        refused = await http.post(f"{replica_url}/v1/completions", json=body)
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "authentication_error"
        assert refused.headers["www-authenticate"] == 'Bearer realm="ferryman"'
        for path in ("/metrics", "/ferryman/v1/payloads", "/v1/models"):
            assert (await http.get(replica_url + path)).status_code == 401, path
        assert (await http.get(f"{replica_url}/v2/health/live")).status_code == 200
        held = {"authorization": "Bearer fleet-secret"}
        assert (await http.get(f"{replica_url}/metrics", headers=held)).status_code == 200
        gateway_settings = GatewaySettings(replica_token=SecretStr("fleet-secret"))
        async with _gateway(replica_url, gateway_settings) as gateway_url:
            async with _client(f"{gateway_url}/endpoints/chat/v1") as client:
                answer = await client.completions.create(
                    model="scripted", prompt="hi", max_tokens=2
                )
            assert answer.choices[0].text == "Hello "
