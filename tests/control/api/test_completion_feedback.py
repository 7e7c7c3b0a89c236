"""Thumbs up or down per completion id through the feedback API (issue 17).

A real language-model replica (a scripted engine behind the real OpenAI routes) on a
loopback socket, the official ``openai`` client, the payload collector and the control
plane's ``POST /api/v1/feedback`` over HTTP: a completion's id is the server's own, its
rating joins the version that wrote it, a second rating is a correction, and an id no
replica answered is said to be unknown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from ferryman.config import Settings
from ferryman.control.metrics.feedback import FeedbackSignals
from ferryman.control.monitor.collector import PayloadCollector, Retention
from ferryman.engines.generation import GenerationInfo, SamplingParams
from ferryman.gateway.routes import EndpointRoute, RouteTable, VariantRoute
from ferryman.serving.metrics import ReplicaIdentity
from ferryman.serving.openai import create_generation_app
from tests.control.api.conftest import RunningServer
from tests.serving.conftest import serving_in_thread

openai = pytest.importorskip("openai")


class WordsEngine:
    """Answers every prompt with the same few words (the routes are what is tested)."""

    def load(self) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        for word in ("a ", "fine ", "answer")[: params.max_tokens]:
            yield word

    def unload(self) -> None:
        pass

    def metadata(self) -> GenerationInfo:
        return GenerationInfo("words", "words", 64)


@pytest.fixture
def lm_url(tmp_path: Path) -> Iterator[str]:
    app = create_generation_app(
        Settings(data_dir=tmp_path / "replica"), WordsEngine(),
        ReplicaIdentity("lm", "1", "onnx-genai"),
    )  # fmt: skip
    with serving_in_thread(app) as running:
        yield f"http://{running.address}"


def routes(url: str) -> RouteTable:
    route = VariantRoute(name="v1", model="lm", version=1, weight=100, backends=(url,))
    return RouteTable(
        generation=1, endpoints={"lm": EndpointRoute(endpoint="lm", variants=(route,))}
    )


def test_completions_are_rated_up_or_down_by_their_id(control: RunningServer, lm_url: str) -> None:
    client = openai.OpenAI(base_url=f"{lm_url}/v1", api_key="unused", max_retries=0, timeout=10)
    chat = client.chat.completions.create(
        model="lm", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    streamed = [chunk.id for chunk in client.completions.create(
        model="lm", prompt="hi", max_tokens=3, stream=True
    )]  # fmt: skip
    assert chat.id.startswith("chatcmpl-")
    assert len(set(streamed)) == 1
    assert streamed[0].startswith("cmpl-")
    with httpx.Client(timeout=5) as http:
        assert PayloadCollector(control.registry, http, Retention()).tick(routes(lm_url)) == 2
    kinds = {r.request_id: r.kind for r in control.registry.payloads.search("lm")}
    assert kinds == {chat.id: "completion", streamed[0]: "completion"}

    api = httpx.Client(base_url=control.url, headers={"authorization": f"Bearer {control.token}"})
    told = api.post("/api/v1/feedback", json=[
        {"completion_id": chat.id, "label": "down"},
        {"completion_id": streamed[0], "label": "up"},
        {"completion_id": chat.id, "label": "up"},  # changed their mind: a correction
        {"completion_id": chat.id, "label": "up"},
        {"completion_id": "chatcmpl-nobodyansweredthis", "label": "down"},
        {"completion_id": streamed[0], "label": "meh"},
    ])  # fmt: skip
    assert told.status_code == 200, told.text
    items = told.json()["items"]
    assert [i["status"] for i in items] == [
        "stored", "stored", "corrected", "unchanged", "unknown_request", "unknown_class",
    ]  # fmt: skip
    assert items[2]["previous"] == ["down"]
    assert "no collected answer has this request id yet" in items[4]["detail"]
    assert f"request {streamed[0]} is a completion of lm v1" in items[5]["detail"]
    assert "'up' or 'down'" in items[5]["detail"]
    rated = FeedbackSignals(control.registry).rated("lm", "v1")
    assert (rated.rated, rated.up, rated.up_rate) == (2, 2, 1.0)

    refused = api.post("/api/v1/feedback", json={"completion_id": chat.id, "label": ["up", "up"]})
    assert refused.status_code == 400
    assert refused.json()["error"].startswith(f"unknown_class: request {chat.id} is a completion")


def test_a_completion_is_not_a_classifier_answer(control: RunningServer, lm_url: str) -> None:
    """Ratings never count as accuracy labels, nor class labels as ratings."""
    answer = httpx.post(f"{lm_url}/v1/completions", json={"model": "lm", "prompt": "hi"})
    completion_id = answer.json()["id"]
    assert answer.headers["ferryman-request-id"] == completion_id
    with httpx.Client(timeout=5) as http:
        PayloadCollector(control.registry, http, Retention()).tick(routes(lm_url))
    api = httpx.Client(base_url=control.url, headers={"authorization": f"Bearer {control.token}"})
    stored = api.post("/api/v1/feedback", json={"request_id": completion_id, "label": "down"})
    assert stored.json()["stored"] == 1
    assert control.registry.payloads.labelled("lm", "v1").actual == []
    assert FeedbackSignals(control.registry).rated("lm", "v1").up_rate == 0.0
