"""The generation contract: what every engine that runs a language model satisfies.

Engines stream token texts; the replica (``serving/openai.py``) turns them into the OpenAI
shape, applies stop sequences and counts usage, so every engine behaves the same there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to draw the next tokens. ``temperature`` 0 means greedy; ``seed`` fixes the draw."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class GenerationInfo:
    """What a loaded language model is: its name, engine and context length in tokens."""

    model: str
    engine: str
    context_length: int


class GenerationEngine(Protocol):
    """Loads one language model and streams completions of prompts.

    ``generate`` is an async iterator of token texts (the piece each new token adds); an
    iterator that is closed early (a client went away) frees everything it held.
    """

    def load(self) -> None:
        """Make the model ready (slow: call it off the event loop)."""

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` encodes to (prompt limits and usage)."""

    def generate(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        """The texts of the tokens that follow ``prompt``, each as soon as it exists."""

    def unload(self) -> None:
        """Release the model's memory."""

    def metadata(self) -> GenerationInfo:
        """The model's name, engine and context length."""


__all__ = ["GenerationEngine", "GenerationInfo", "SamplingParams"]
