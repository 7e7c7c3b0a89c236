"""What a caller may attach to a new version, validated once at the edge."""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ferryman.errors import InvalidInput
from ferryman.names import validate_key, validate_name
from ferryman.registry.records import ParamValue

MAX_ENTRIES = 256
MAX_VALUE_CHARS = 1024
MAX_DESCRIPTION_CHARS = 10_000
RESERVED_ALIASES = frozenset({"latest"})


class VersionMetadata(BaseModel):
    """Metrics, params, tags, lineage and aliases of a version being registered.

    >>> VersionMetadata(metrics={"accuracy": 0.97}, aliases=("candidate",)).metrics
    {'accuracy': 0.97}
    """

    model_config = ConfigDict(frozen=True)

    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    aliases: tuple[str, ...] = ()
    data_fingerprint: str | None = None
    parent_run: str | None = None

    @field_validator("metrics")
    @classmethod
    def _finite_metrics(cls, metrics: dict[str, float]) -> dict[str, float]:
        _check_keys(metrics, "metric")
        for key, value in metrics.items():
            if not math.isfinite(value):
                raise InvalidInput(f"metric {key!r} is {value}; metrics must be finite numbers")
        return metrics

    @field_validator("params", "tags")
    @classmethod
    def _bounded_values(cls, values: dict[str, ParamValue]) -> dict[str, ParamValue]:
        _check_keys(values, "key")
        for key, value in values.items():
            if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
                raise InvalidInput(
                    f"value of {key!r} has {len(value)} characters; at most {MAX_VALUE_CHARS}"
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidInput(f"value of {key!r} is {value}; numbers must be finite")
        return values

    @field_validator("description")
    @classmethod
    def _bounded_description(cls, description: str) -> str:
        if len(description) > MAX_DESCRIPTION_CHARS:
            raise InvalidInput(
                f"description has {len(description)} characters; at most {MAX_DESCRIPTION_CHARS}"
            )
        return description

    @field_validator("aliases")
    @classmethod
    def _valid_aliases(cls, aliases: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(validate_alias(alias) for alias in aliases)

    @field_validator("data_fingerprint")
    @classmethod
    def _bounded_fingerprint(cls, fingerprint: str | None) -> str | None:
        if fingerprint is not None:
            validate_key(fingerprint, "data fingerprint")
        return fingerprint


def validate_alias(alias: str) -> str:
    validate_name(alias, "alias")
    if alias in RESERVED_ALIASES:
        raise InvalidInput(f"alias {alias!r} is reserved (it always means the newest version)")
    return alias


def _check_keys(values: Mapping[str, object], kind: str) -> None:
    if len(values) > MAX_ENTRIES:
        raise InvalidInput(f"{len(values)} {kind}s given; at most {MAX_ENTRIES}")
    for key in values:
        validate_key(key, kind)


def build_metadata(**fields: object) -> VersionMetadata:
    """Construct :class:`VersionMetadata`, turning type errors into a 400-class error."""
    try:
        return VersionMetadata.model_validate(fields)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise InvalidInput(f"{where}: {problem['msg']}") from None
