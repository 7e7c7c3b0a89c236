"""How commands answer: Rich tables for people, JSON for scripts, one line for errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def print_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    """Write ``value`` to stdout as JSON (records in their API shape)."""
    if isinstance(value, BaseModel):
        payload: Any = value.model_dump(mode="json")
    elif isinstance(value, dict):
        payload = value
    else:
        payload = [item.model_dump(mode="json") for item in value]
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def size(size_bytes: int) -> str:
    value = float(size_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover


def pairs(values: dict[str, Any]) -> str:
    """``key=value, …`` for people: nested mappings as dotted keys, lists joined by ``/``.

    >>> pairs({"reason": "gates met", "plan": {"steps": [10, 50], "bake_s": 60.0}})
    'reason=gates met, plan.steps=10/50, plan.bake_s=60'
    """
    return ", ".join(f"{key}={value}" for key, value in _flattened(values, ""))


def _flattened(values: dict[str, Any], prefix: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for key, value in values.items():
        if isinstance(value, dict) and value:
            found += _flattened(value, f"{prefix}{key}.")
        else:
            found.append((f"{prefix}{key}", _shown(value)))
    return found


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "/".join(_shown(item) for item in value) or "-"
    if isinstance(value, dict):
        return "-"  # an empty mapping (a full one is flattened)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
