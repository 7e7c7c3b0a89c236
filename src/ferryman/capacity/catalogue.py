"""The instance catalogue: machine shapes and what they cost per hour, from a TOML file.

Prices are the user's: Ferryman ships an example file (``ferryman/data/
instances.example.toml``, prices marked as examples) and fetches nothing.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ferryman.errors import InvalidInput

EXAMPLE = "instances.example.toml"
MAX_SHAPES = 1000


class InstanceShape(BaseModel):
    """One machine shape one may rent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    vcpus: int = Field(ge=1, le=4096)
    memory_gib: float = Field(gt=0, le=1_000_000)
    gpus: int = Field(default=0, ge=0, le=64)
    gpu_model: str = Field(default="", max_length=128)
    price_per_hour: float = Field(ge=0)

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib * 1024**3


def example_catalogue_text() -> str:
    return (resources.files("ferryman") / "data" / EXAMPLE).read_text()


def load_catalogue(path: Path | None) -> tuple[InstanceShape, ...]:
    """The shapes of ``path``, or of the shipped example when None."""
    if path is None:
        return parse_catalogue(example_catalogue_text(), f"the example catalogue {EXAMPLE}")
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(
            f"cannot read the instance catalogue {path.name!r} ({exc.strerror}); pass an "
            f"existing TOML file with --catalogue (the shipped {EXAMPLE} shows the format)"
        ) from exc
    return parse_catalogue(text, path.name)


def parse_catalogue(text: str, source: str) -> tuple[InstanceShape, ...]:
    """Parse a catalogue; a bad one is an error naming the entry and the field."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{source} is not valid TOML: {exc}") from exc
    unknown = set(document) - {"instance"}
    if unknown:
        raise InvalidInput(
            f"{source}: unknown table {sorted(unknown)[0]!r}; a catalogue holds only "
            "[[instance]] entries"
        )
    entries = document.get("instance")
    if not isinstance(entries, list) or not entries:
        raise InvalidInput(
            f"{source} has no [[instance]] entries; add at least one with name, vcpus, "
            "memory_gib, gpus and price_per_hour"
        )
    if len(entries) > MAX_SHAPES:
        raise InvalidInput(f"{source} has {len(entries)} instances; at most {MAX_SHAPES}")
    shapes = tuple(_shape(entry, index, source) for index, entry in enumerate(entries, 1))
    names = [shape.name for shape in shapes]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InvalidInput(f"{source}: instance name {twice[0]!r} appears twice; names are keys")
    return shapes


def _shape(entry: Any, index: int, source: str) -> InstanceShape:
    name = entry.get("name") if isinstance(entry, dict) else None
    where = f"{source}: instance {index}" + (f" ({name})" if isinstance(name, str) else "")
    try:
        return InstanceShape.model_validate(entry)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "(the entry)"
        value = error.get("input")
        given = "missing" if error["type"] == "missing" else f"given {value!r}"
        raise InvalidInput(f"{where}: field {field!r} {error['msg'].lower()} ({given})") from exc
