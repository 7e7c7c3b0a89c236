"""The error answers every control-plane route may give, as its OpenAPI declares them.

Every error is rendered by the app's handlers as ``{"error": "..."}``. Declaring that shape
once, for ``4XX`` and for 503 (the registry database busy), on every route keeps the
published schema true for clients and for the schema fuzz (RELIABILITY B1), which fails on
any answer the schema does not describe.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """What went wrong: the value, the rule and the fix, in one sentence."""

    error: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "The request was refused; `error` says why."},
    503: {"model": ErrorBody, "description": "Busy or unavailable for now; retry later."},
}
"""Declared on the app, so every route carries them (FastAPI then drops its default 422)."""
