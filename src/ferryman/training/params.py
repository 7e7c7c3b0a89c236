"""Recipe params: typed, with defaults, validated once when a run starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ferryman.errors import InvalidInput
from ferryman.registry.records import ParamValue

P = TypeVar("P", bound="RecipeParams")


class RecipeParams(BaseModel):
    """Base of each recipe's params; unknown names are refused. ``data`` is the data path,
    which the runner records as a param so that a resumed run reads the same data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: str | None = None


def parse_params(cls: type[P], params: Mapping[str, ParamValue], recipe: str) -> P:
    """Validate ``params`` for ``recipe``; a bad one raises InvalidInput naming it and the fix."""
    try:
        return cls.model_validate(dict(params))
    except ValidationError as exc:
        problem = exc.errors()[0]
        name = ".".join(str(part) for part in problem["loc"])
        known = ", ".join(sorted(cls.model_fields))
        raise InvalidInput(
            f"param {name!r} of recipe {recipe!r}: {problem['msg']} (its params: {known})"
        ) from None


def parse_param_text(text: str) -> tuple[str, ParamValue]:
    """``"lr=0.01"`` → ``("lr", 0.01)``: ints, floats and true/false are typed, rest strings."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InvalidInput(f"param {text!r} is not KEY=VALUE; write e.g. --param epochs=5")
    lowered = raw.lower()
    if lowered in {"true", "false"}:
        return key, lowered == "true"
    for kind in (int, float):
        try:
            return key, kind(raw)
        except ValueError:
            continue
    return key, raw
