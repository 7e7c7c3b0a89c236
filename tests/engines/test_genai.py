"""The ONNX Runtime GenAI engine on tiny-lm: streams advance together in rounds, and each
gets exactly what it would alone (greedy and seeded), ends where it should, and lets go."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferryman.artifacts import LocalArtifactStore
from ferryman.artifacts.bundle import unpack_bundle
from ferryman.config import load_settings
from ferryman.engines.generation import SamplingParams
from ferryman.errors import Unavailable
from ferryman.registry import Registry

pytest.importorskip("onnxruntime_genai")
from ferryman.engines.genai import GenaiEngine  # imports onnxruntime_genai

pytestmark = pytest.mark.e2e  # trains tiny-lm with the CLI (tiny_lm_data)

ASKED = [
    ("The assert statement", SamplingParams(max_tokens=9, temperature=0)),
    ("A class definition", SamplingParams(max_tokens=23, temperature=1.0, top_p=0.9, seed=7)),
    ("The for statement", SamplingParams(max_tokens=40, temperature=0)),
    ("The import system", SamplingParams(max_tokens=16, temperature=0.8, seed=3)),
]


@pytest.fixture(scope="module")
def folder(tiny_lm_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    registry = Registry.open(load_settings(data_dir=tiny_lm_data))
    try:
        version = registry.get_version("tiny-lm", 1)
    finally:
        registry.close()
    data = LocalArtifactStore(tiny_lm_data / "artifacts").read(version.digest)
    return unpack_bundle(data, version.digest, tmp_path_factory.mktemp("bundles"))


@pytest.fixture
def engine(folder: Path) -> Iterator[GenaiEngine]:
    made = GenaiEngine(folder, "tiny-lm")
    made.load()
    yield made
    made.unload()


async def complete(engine: GenaiEngine, prompt: str, params: SamplingParams) -> list[str]:
    return [text async for text in engine.generate(prompt, params)]


def test_streams_at_once_get_what_each_gets_alone(engine: GenaiEngine) -> None:
    async def alone() -> list[list[str]]:
        return [await complete(engine, prompt, params) for prompt, params in ASKED]

    async def at_once() -> list[list[str]]:
        return list(await asyncio.gather(*(complete(engine, p, s) for p, s in ASKED)))

    one_by_one = asyncio.run(alone())
    assert asyncio.run(at_once()) == one_by_one
    for tokens, (_, params) in zip(one_by_one, ASKED, strict=True):
        assert 0 < len(tokens) <= params.max_tokens  # one text per token, the limit kept
    assert asyncio.run(complete(engine, "The", SamplingParams(max_tokens=0))) == []


def test_a_stream_closed_early_leaves_the_others_as_they_were(engine: GenaiEngine) -> None:
    prompt, params = ASKED[2]

    async def run() -> tuple[list[str], list[str]]:
        whole = await complete(engine, prompt, params)
        closed = engine.generate("The with statement", SamplingParams(max_tokens=40))
        others = asyncio.ensure_future(complete(engine, prompt, params))
        await anext(closed)
        await closed.aclose()  # its generator goes; the other stream keeps its rounds
        return whole, await others

    whole, beside = asyncio.run(run())
    assert beside == whole


def test_unload_ends_an_open_stream_with_unavailable(engine: GenaiEngine) -> None:
    async def run() -> None:
        tokens = engine.generate("The while statement", SamplingParams(max_tokens=200))
        await anext(tokens)
        engine.unload()  # on the loop: no round is handed out before the executor is shut
        with pytest.raises(Unavailable, match="not loaded"):
            async for _ in tokens:
                pass

    asyncio.run(run())
