"""The vLLM engine behind the generation seam: runs only where a GPU and vLLM are present.

Without them it is skipped with a reason that says so in the summary (``-ra``): this test
did NOT run, and the vLLM engine is then untested on that machine.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ferryman.config import Settings
from ferryman.serving.metrics import ReplicaIdentity
from tests.gateway.conftest import serving


def _missing() -> str | None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        return "NO GPU HERE: the vLLM engine test needs an NVIDIA GPU; it did NOT run"
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (pip install vllm on the GPU machine); it did NOT run"
    return None


MISSING = _missing()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.anyio,
    pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init Llama (head size 64, which vLLM's kernels take) and a BPE tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM  # noqa: PLC0415

    from ferryman.training.language import corpus, train_tokenizer  # noqa: PLC0415

    folder = tmp_path_factory.mktemp("vllm") / "llama"
    tokenizer = train_tokenizer(corpus(8000)[0], 384, folder)
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=256, intermediate_size=512,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture
async def base_url(llama_folder: Path, tmp_path: Path) -> AsyncIterator[str]:
    from ferryman.engines.vllm import VllmEngine  # noqa: PLC0415
    from ferryman.serving.openai import create_generation_app  # noqa: PLC0415

    engine = VllmEngine(llama_folder, "llama", gpu_memory_fraction=0.2)
    identity = ReplicaIdentity("llama", "1", "vllm")
    app = create_generation_app(Settings(data_dir=tmp_path), engine, identity)
    async with serving(app, lifespan="on") as url:
        yield f"{url}/v1"


async def test_vllm_streams_and_reproduces_seeds_through_the_replica(base_url: str) -> None:
    import openai  # noqa: PLC0415

    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        pieces = [
            chunk.choices[0].text
            async for chunk in await client.completions.create(
                model="llama", prompt="The assert statement", max_tokens=16, stream=True,
                temperature=0,
            )
            if chunk.choices
        ]  # fmt: skip
        assert len([p for p in pieces if p]) > 1

        async def sample(seed: int) -> str:
            answer = await client.completions.create(
                model="llama", prompt="A class", max_tokens=16, temperature=1.0, seed=seed
            )
            return answer.choices[0].text

        assert await sample(5) == await sample(5)
