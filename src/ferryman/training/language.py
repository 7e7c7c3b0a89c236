"""The ``tiny-lm`` recipe: a small Llama decoder trained on text that ships with Python.

No hub, no download: the corpus is the text of ``pydoc_data.topics`` (Python's own
reference topics), the tokenizer a byte-level BPE trained on it with ``tokenizers``, the
model ``transformers``' Llama with tiny dimensions. The trained folder is exported with ONNX
Runtime GenAI's model builder (fp32, CPU) and registered as one bundle artifact (a tar of
ONNX, JSON and tokenizer files: :mod:`ferryman.artifacts.bundle`), with its held-out
perplexity and next-token accuracy as metrics (a policy's offline gate on
``held_out_token_accuracy`` holds back a worse model before any traffic). A user's own
Hugging Face folder registers the same way (``ferryman register DIR``, through
:func:`export_hf_folder`).

Params: ``steps`` (150), ``seq_len`` (64), ``batch_size`` (16), ``lr`` (3e-3), ``width``
(64), ``layers`` (2), ``vocab_size`` (384), ``corpus_bytes`` (16000), ``seed`` (0),
``threads`` (1).
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from pydoc_data.topics import topics

import torch
from pydantic import Field
from tokenizers import ByteLevelBPETokenizer
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from ferryman.artifacts.bundle import pack_bundle
from ferryman.errors import InvalidInput
from ferryman.training.context import Registration, RunContext
from ferryman.training.params import RecipeParams, parse_params

logger = logging.getLogger(__name__)

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
HELD_OUT_BYTES = 4000


class TinyLmParams(RecipeParams):
    steps: int = Field(default=150, ge=1, le=100_000)
    seq_len: int = Field(default=64, ge=8, le=1024)
    batch_size: int = Field(default=16, ge=1, le=1024)
    lr: float = Field(default=3e-3, gt=0, le=1.0)
    width: int = Field(default=64, ge=16, le=1024, description="hidden size; 4 heads")
    layers: int = Field(default=2, ge=1, le=32)
    vocab_size: int = Field(default=384, ge=300, le=32_000)
    corpus_bytes: int = Field(default=16_000, ge=2_000, le=400_000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    threads: int = Field(default=1, ge=1, le=64, description="torch threads")


def train_tiny_lm(ctx: RunContext) -> Registration:
    """Train, export and register a tiny language model (about 20 s on one CPU core)."""
    params = parse_params(TinyLmParams, ctx.params, ctx.run.recipe)
    torch.set_num_threads(params.threads)
    torch.manual_seed(params.seed)
    steps, seq_len = params.steps, params.seq_len

    text, held_out = corpus(params.corpus_bytes)
    with tempfile.TemporaryDirectory(prefix="tiny-lm-") as scratch:
        hf_dir = Path(scratch) / "hf"
        tokenizer = train_tokenizer(text, params.vocab_size, hf_dir)
        config = LlamaConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=params.width,
            intermediate_size=params.width * 2,
            num_hidden_layers=params.layers,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=max(256, seq_len * 2),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
        )
        model = LlamaForCausalLM(config)
        ids = torch.tensor(tokenizer(text)["input_ids"], dtype=torch.long)
        optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr)
        model.train()
        generator = torch.Generator().manual_seed(params.seed)
        for step in range(1, steps + 1):
            batch = _batch(ids, seq_len, params.batch_size, generator)
            loss = model(input_ids=batch, labels=batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 25 == 0 or step == steps:
                ctx.log_metrics(step, {"train_loss": loss.item()})
        quality = held_out_quality(model, tokenizer(held_out)["input_ids"], seq_len)
        ctx.log_metrics(steps, quality)
        model.save_pretrained(hf_dir, safe_serialization=True)
        bundle = export_hf_folder(hf_dir, Path(scratch) / "onnx")
    return ctx.register_bundle(
        bundle,
        metrics={**quality, "train_loss": loss.item()},
        description=(
            f"tiny-lm: Llama {params.layers}x{params.width}, BPE {tokenizer.vocab_size}, "
            f"{steps} steps"
        ),
    )


def corpus(size_bytes: int) -> tuple[str, str]:
    """Training text of ``size_bytes`` and a held-out text, from Python's pydoc topics."""
    whole = "\n\n".join(topics[key] for key in sorted(topics))
    if size_bytes + HELD_OUT_BYTES > len(whole):
        raise InvalidInput(f"corpus_bytes {size_bytes} is over {len(whole) - HELD_OUT_BYTES}")
    return whole[:size_bytes], whole[-HELD_OUT_BYTES:]


def export_hf_folder(hf_dir: Path, out_dir: Path) -> bytes:
    """A Hugging Face causal-LM folder as an ONNX Runtime GenAI bundle (fp32, CPU).

    The model builder runs as its own process (it is a script that puts its folder on
    ``sys.path``); its cache goes to a scratch folder beside ``out_dir``.
    """
    command = [
        sys.executable, "-m", "onnxruntime_genai.models.builder",
        "-i", str(hf_dir), "-o", str(out_dir), "-p", "fp32", "-e", "cpu",
        "-c", str(out_dir.parent / "builder-cache"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise InvalidInput(f"the ONNX Runtime GenAI model builder failed: {' | '.join(tail)}")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        source = hf_dir / name
        if source.is_file() and not (out_dir / name).exists():
            (out_dir / name).write_bytes(source.read_bytes())
    return pack_bundle(out_dir)


def train_tokenizer(text: str, vocab_size: int, folder: Path) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``text``, saved in Hugging Face form under ``folder``."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([text], vocab_size=vocab_size, special_tokens=[BOS, EOS, PAD])
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call,unused-ignore]
        tokenizer_object=bpe, bos_token=BOS, eos_token=EOS, pad_token=PAD
    )
    folder.mkdir(parents=True)
    tokenizer.save_pretrained(folder)
    return tokenizer


def _batch(
    ids: torch.Tensor, seq_len: int, batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    starts = torch.randint(0, len(ids) - seq_len - 1, (batch_size,), generator=generator)
    return torch.stack([ids[start : start + seq_len] for start in starts.tolist()])


@torch.no_grad()
def held_out_quality(model: LlamaForCausalLM, ids: list[int], seq_len: int) -> dict[str, float]:
    """Perplexity (lower is better) and next-token accuracy (higher is better, the form a
    policy's offline gate compares with production's) on held-out text."""
    model.eval()  # type: ignore[no-untyped-call,unused-ignore]
    windows = [ids[i : i + seq_len] for i in range(0, len(ids) - seq_len, seq_len)]
    batch = torch.tensor(windows, dtype=torch.long)
    output = model(input_ids=batch, labels=batch)
    guessed = output.logits[:, :-1].argmax(dim=-1) == batch[:, 1:]
    return {
        "held_out_perplexity": math.exp(float(output.loss)),
        "held_out_token_accuracy": float(guessed.float().mean()),
    }
