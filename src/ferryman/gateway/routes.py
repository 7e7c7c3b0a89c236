"""The route table: what the gateway applies, and the one pure choice of a variant.

The control plane writes a :class:`RouteTable` (as JSON, atomically) and the gateway swaps it
in whole. Each endpoint lists its variants with traffic weights and the base URLs of their
ready replicas, header-match rules, an optional sticky header and an optional shadow variant.
Backend URLs come only from this table, never from a client request, and must name a
loopback host (or one the operator allowed, by name, address or network, see
:meth:`RouteTable.from_json`).

Weighted choice, sticky hashing and header rules are one pure function, :func:`pick_variant`.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ferryman.errors import InvalidInput
from ferryman.names import validate_name

STICKY_BUCKETS = 100
_DIGEST = r"^[0-9a-f]{64}$"
LOOPBACK_NAMES = frozenset({"localhost"})
_HEADER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


class VariantRoute(BaseModel):
    """One servable variant of an endpoint: its weight and the replicas that are ready."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Variant id within the endpoint, e.g. 'v3-onnx-fp32'.")
    model: str = Field(description="Model name the replicas serve (the upstream path segment).")
    version: int = Field(ge=1, description="Model version the replicas serve.")
    weight: int = Field(ge=0, le=100, description="Share of weighted traffic, in percent.")
    backends: tuple[str, ...] = Field(
        default=(), description="Base URLs of ready replicas, e.g. 'http://127.0.0.1:41234'."
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _as_value_error(validate_name, value, "variant name")

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        return _as_value_error(validate_name, value, "model name")

    @field_validator("backends")
    @classmethod
    def _check_backends(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        context = info.context if isinstance(info.context, Mapping) else {}
        allowed = frozenset(context.get("allowed_hosts", ()))
        return tuple(_as_value_error(check_backend_url, url, allowed) for url in value)


class HeaderRule(BaseModel):
    """Requests whose ``header`` equals ``equals`` go to ``variant``, before any weight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    header: str = Field(min_length=1, max_length=64, description="Lowercase header name.")
    equals: str = Field(max_length=256, description="Exact header value that matches.")
    variant: str = Field(description="Name of the variant matching requests go to.")

    @field_validator("header")
    @classmethod
    def _check_header(cls, value: str) -> str:
        return _as_value_error(check_header_name, value)


class EndpointRoute(BaseModel):
    """How one endpoint's traffic is split, mirrored and held."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str = Field(description="The name clients call, e.g. 'digits'.")
    variants: tuple[VariantRoute, ...] = Field(min_length=1, description="Variants, in order.")
    rules: tuple[HeaderRule, ...] = Field(default=(), description="Header rules, first wins.")
    sticky_header: str | None = Field(
        default=None, description="Header whose value's hash pins a client to a variant."
    )
    shadow: str | None = Field(
        default=None, description="Variant mirrored to, compared and never returned."
    )
    hold_timeout_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=30.0, description="How long a request waits for a replica when there is none."
    )
    max_held: Annotated[int, Field(ge=0, le=100_000)] = Field(
        default=256, description="Most requests held at once while waiting for a replica."
    )
    require_token: bool = Field(
        default=False,
        description="Requests need one of this endpoint's inference tokens "
        "(Authorization: Bearer): 401 without a valid one, 403 with another endpoint's.",
    )

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        return _as_value_error(validate_name, value, "endpoint name")

    @field_validator("sticky_header")
    @classmethod
    def _check_sticky(cls, value: str | None) -> str | None:
        return None if value is None else _as_value_error(check_header_name, value)

    @model_validator(mode="after")
    def _check_variants(self) -> Self:
        names = [variant.name for variant in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"endpoint {self.endpoint!r} lists a variant twice: {names}")
        for name in [rule.variant for rule in self.rules] + [self.shadow or names[0]]:
            if name not in names:
                raise ValueError(f"endpoint {self.endpoint!r} has no variant {name!r}: {names}")
        total = sum(variant.weight for variant in self.weighted())
        if total != 100:
            raise ValueError(
                f"endpoint {self.endpoint!r}: weights of its non-shadow variants sum to {total}; "
                "they must sum to 100"
            )
        return self

    def weighted(self) -> tuple[VariantRoute, ...]:
        """The variants that take weighted traffic: all but the shadow."""
        return self.weighted_variants

    @cached_property
    def weighted_variants(self) -> tuple[VariantRoute, ...]:
        """:meth:`weighted`, worked out once per table (the gateway asks on every request)."""
        return tuple(variant for variant in self.variants if variant.name != self.shadow)

    def variant(self, name: str) -> VariantRoute:
        """The variant called ``name`` (it exists: the validator checked every reference)."""
        return next(variant for variant in self.variants if variant.name == name)


class RouteTable(BaseModel):
    """Every endpoint's route, stamped with a generation that grows with each change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    generation: int = Field(
        ge=0, description="Grows by one with each table the control plane writes."
    )
    registry: str = Field(
        default="",
        max_length=64,
        description="Identity of the registry whose control plane wrote the table ('' if older).",
    )
    endpoints: dict[str, EndpointRoute] = Field(
        default_factory=dict, description="Routes by endpoint name."
    )
    inference_tokens: dict[Annotated[str, Field(pattern=_DIGEST)], str] = Field(
        default_factory=dict,
        description="The endpoint of every active inference token, by the token's SHA-256 "
        "(hex); never a token itself. Endpoints that require a token check it here.",
    )

    @model_validator(mode="after")
    def _check_keys(self) -> Self:
        for key, route in self.endpoints.items():
            if key != route.endpoint:
                raise ValueError(f"route table key {key!r} holds endpoint {route.endpoint!r}")
        return self

    @classmethod
    def from_json(cls, text: str | bytes, allowed_hosts: Iterable[str] = ()) -> RouteTable:
        """Parse a table; backends may name loopback hosts and those in ``allowed_hosts``.

        >>> RouteTable.from_json('{"generation": 1, "endpoints": {}}').generation
        1
        """
        context = {"allowed_hosts": tuple(allowed_hosts)}
        return cls.model_validate_json(text, context=context)


def pick_variant(route: EndpointRoute, headers: Mapping[str, str], draw: float) -> VariantRoute:
    """Choose the variant for one request: header rules, then the sticky hash, then ``draw``.

    ``headers`` has lowercase names; ``draw`` is uniform in [0, 1). A sticky key hashes to a
    bucket in 0..99 that falls in the cumulative weights of the variants in table order, so a
    key keeps its variant while the weights stay, and keeps it as the last variant (the
    candidate) grows. Pure: no I/O, no clock, no hidden state.

    >>> a = VariantRoute(name="a", model="m", version=1, weight=90)
    >>> b = VariantRoute(name="b", model="m", version=2, weight=10)
    >>> pick_variant(EndpointRoute(endpoint="m", variants=(a, b)), {}, 0.95).name
    'b'
    """
    for rule in route.rules:
        if headers.get(rule.header) == rule.equals:
            return route.variant(rule.variant)
    key = headers.get(route.sticky_header) if route.sticky_header else None
    point = float(sticky_bucket(key)) if key is not None else draw * STICKY_BUCKETS
    cumulative = 0
    for variant in route.weighted():
        cumulative += variant.weight
        if point < cumulative:
            return variant
    # Only a draw outside [0, 1) gets here: the last variant that takes traffic.
    return next(variant for variant in reversed(route.weighted()) if variant.weight > 0)


def sticky_bucket(key: str) -> int:
    """A stable bucket in 0..99 for a sticky key (the same in every process and release)."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % STICKY_BUCKETS


def check_backend_url(url: str, allowed_hosts: frozenset[str] = frozenset()) -> str:
    """Return ``url`` if it is a bare http(s) base URL on an allowed host, else raise."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = None
    is_bare = not (parts.path not in ("", "/") or parts.query or parts.fragment or "@" in url)
    if parts.scheme not in ("http", "https") or not is_bare or port is None:
        raise InvalidInput(
            f"backend {url[:80]!r} is not a base URL; expected http(s)://HOST:PORT with no "
            "path, query or user info, e.g. 'http://127.0.0.1:41234'"
        )
    if not (_is_loopback(host) or host in allowed_hosts or _in_networks(host, allowed_hosts)):
        raise InvalidInput(
            f"backend host {host!r} is neither loopback nor in gateway.backend_hosts; "
            "add it (or a network holding it, e.g. 10.0.0.0/8) there to allow it"
        )
    return url.rstrip("/")


def check_header_name(value: str) -> str:
    """Return ``value`` if it is a lowercase header name (letters, digits, '-', '_')."""
    if not value or not set(value) <= _HEADER_CHARS:
        raise InvalidInput(
            f"header name {value[:64]!r} is not allowed; use lowercase letters, digits, '-', '_'"
        )
    return value


def _as_value_error(check: Callable[..., str], *args: Any) -> str:
    # pydantic gathers ValueErrors into one ValidationError; a FerrymanError would escape it.
    try:
        return check(*args)
    except InvalidInput as exc:
        raise ValueError(exc.message) from exc


def _in_networks(host: str, allowed_hosts: frozenset[str]) -> bool:
    """``host`` is an IP address inside a network (``10.244.0.0/16``) of ``allowed_hosts``:
    how replicas whose addresses are not known in advance (pods of a Ray cluster on
    Kubernetes) are allowed without allowing every host."""
    networks = [entry for entry in allowed_hosts if "/" in entry]
    if not networks:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(entry, strict=False) for entry in networks)


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
