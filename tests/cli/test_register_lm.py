"""``ferryman register DIR``: a language model's folder becomes one bundle version."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime_genai")
transformers = pytest.importorskip("transformers")

Run = Callable[..., tuple[int, str, str]]


def _hf_folder(folder: Path) -> Path:
    """A random-init tiny Llama with a BPE tokenizer, as a user's own Hugging Face folder."""
    from ferryman.training.language import corpus, train_tokenizer  # noqa: PLC0415

    tokenizer = train_tokenizer(corpus(4000)[0], 320, folder)
    config = transformers.LlamaConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
        max_position_embeddings=128, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    transformers.LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


def test_a_hugging_face_folder_is_exported_and_registered(run: Run, tmp_path: Path) -> None:
    folder = _hf_folder(tmp_path / "my-llama")
    data = ["--data-dir", str(tmp_path / "data")]
    code, _, err = run("register", str(folder), "--model", "my-llama", *data)
    assert code == 0, err
    code, out, _ = run("versions", "list", "my-llama", "--json", *data)
    assert json.loads(out)[0]["format"] == "onnx-genai"


def test_a_folder_with_pickled_weights_is_refused(run: Run, tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
    code, _, err = run("register", str(folder), "--model", "x", "--data-dir", str(tmp_path / "d"))
    assert code == 1
    assert "pytorch_model.bin: pickled weights run code" in err


def test_a_folder_that_is_no_model_says_what_is_expected(run: Run, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run("register", str(tmp_path / "empty"), "--model", "x")
    assert code == 1
    assert "neither genai_config.json" in err
