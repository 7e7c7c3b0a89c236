"""The OpenAI API's shapes for text generation: requests, answers, stream chunks, errors.

Only what a replica serves: ``/v1/completions``, ``/v1/chat/completions`` and
``/v1/models``. Unknown request fields are ignored (clients send ``user`` and others), but
a field Ferryman cannot honour (``n`` > 1, a list of prompts) is refused by name.
"""

from __future__ import annotations

import time
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ferryman.errors import InvalidInput

MAX_STOP_SEQUENCES = 4
COMPLETION_KIND = "completion"
"""The payload-log kind of a completion: its feedback is a rating, ``up`` or ``down``."""
RATINGS = ("up", "down")
R = TypeVar("R", bound="GenerationRequest")


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    include_usage: bool = False


class GenerationRequest(BaseModel):
    """The fields both routes share."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str = Field(max_length=200)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOP_SEQUENCES or any(not s or len(s) > 100 for s in stops):
            raise ValueError(f"give at most {MAX_STOP_SEQUENCES} stop sequences of 1-100 chars")
        return value

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def wanted_tokens(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class CompletionRequest(GenerationRequest):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError(f"give one prompt, not a list of {len(value)}; send one request each")
        return value

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class ChatRequest(GenerationRequest):
    messages: list[Message] = Field(min_length=1, max_length=256)

    def text(self) -> str:
        """The conversation as the prompt a plain decoder continues, ending with its turn."""
        turns = "".join(f"{m.role}: {m.content}\n" for m in self.messages)
        return f"{turns}assistant:"


def parse_request(kind: type[R], body: bytes) -> R:
    """Validate a JSON body; a bad field raises InvalidInput naming it and the rule."""
    try:
        return kind.model_validate_json(body)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        raise InvalidInput(f"{where}: {problem['msg']}") from None


def error_body(message: str, status: int) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message", "type", "code"}}``."""
    kinds = {
        400: ("invalid_request_error", "invalid_request"),
        401: ("authentication_error", "invalid_api_key"),
        404: ("not_found_error", "model_not_found"),
        413: ("invalid_request_error", "payload_too_large"),
        429: ("rate_limit_error", "rate_limit_exceeded"),
    }
    kind, code = kinds.get(status, ("server_error", "unavailable" if status == 503 else "error"))
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_body(
    request_id: str, model: str, *, is_chat: bool, text: str, finish: str | None
) -> dict[str, Any]:
    """A whole answer (``usage`` added by the caller), or one stream chunk's worth of text."""
    if is_chat:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
        }
        kind = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        kind = "text_completion"
    return {
        "id": request_id,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }


def chunk_body(
    request_id: str, model: str, *, is_chat: bool, text: str, finish: str | None
) -> dict[str, Any]:
    """One server-sent event's payload of a stream."""
    if is_chat:
        choice: dict[str, Any] = {
            "index": 0,
            "delta": {"content": text} if text else {},
            "finish_reason": finish,
        }
        kind = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        kind = "text_completion"
    return {
        "id": request_id,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }
