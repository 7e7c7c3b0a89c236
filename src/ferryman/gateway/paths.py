"""The protocol paths the gateway serves, and the replica path each one becomes.

Only the endpoint segment (and a version number) is read from a client's path; the path
sent upstream is rebuilt from the variant's model name, so nothing else of the client's
path or query string ever reaches a replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from ferryman.errors import InvalidInput, MethodNotAllowed
from ferryman.names import validate_name

Protocol = Literal["v2", "v1", "predict", "openai"]
_V2_TAILS = MappingProxyType({(): "GET", ("ready",): "GET", ("infer",): "POST"})
OPENAI_TAILS = MappingProxyType(
    {"/v1/chat/completions": "POST", "/v1/completions": "POST", "/v1/models": "GET"}
)
"""OpenAI routes, called as ``/endpoints/ENDPOINT/v1/...`` (base_url ``.../endpoints/E/v1``)."""
_MAX_VERSION_DIGITS = 9


@dataclass(frozen=True, slots=True)
class Target:
    """A proxied request: the endpoint, an optional version, and what to call on a replica."""

    endpoint: str
    method: str
    protocol: Protocol
    tail: str = ""
    version: int | None = None

    def upstream_path(self, model: str) -> str:
        """The replica's path for this request, naming the variant's ``model``."""
        if self.protocol == "predict":
            return "/predict"
        if self.protocol == "openai":
            return self.tail
        if self.protocol == "v1":
            return f"/v1/models/{model}:predict"
        version = f"/versions/{self.version}" if self.version is not None else ""
        return f"/v2/models/{model}{version}{self.tail}"


def proxied_routes() -> tuple[tuple[str, str], ...]:
    """Every (method, path template) the gateway proxies to an endpoint's replicas.

    >>> ("POST", "/v2/models/{endpoint}/versions/{version}/infer") in proxied_routes()
    True
    """
    v2 = [
        (method, prefix + "".join(f"/{part}" for part in tail))
        for prefix in ("/v2/models/{endpoint}", "/v2/models/{endpoint}/versions/{version}")
        for tail, method in _V2_TAILS.items()
    ]
    return (
        *v2,
        ("POST", "/v1/models/{endpoint}:predict"),
        ("POST", "/endpoints/{endpoint}/predict"),
    )


def is_openai_path(path: str) -> bool:
    """True for ``/endpoints/ENDPOINT/v1/...``: relayed as a stream (gateway/streaming.py)."""
    return path.startswith("/endpoints/") and "/v1/" in path


def parse_target(method: str, path: str) -> Target | None:
    """The :class:`Target` of a proxied path, ``None`` for any other path.

    >>> parse_target("POST", "/v2/models/digits/versions/3/infer").upstream_path("mnist")
    '/v2/models/mnist/versions/3/infer'
    """
    target: Target | None = None
    if path.startswith("/v2/models/"):
        target = _v2(path.removeprefix("/v2/models/").split("/"))
    elif path.startswith("/v1/models/") and path.endswith(":predict"):
        target = Target(path[len("/v1/models/") : -len(":predict")], "POST", "v1")
    elif is_openai_path(path):
        target = _openai(path.removeprefix("/endpoints/"))
    elif path.startswith("/endpoints/") and path.endswith("/predict"):
        target = Target(path[len("/endpoints/") : -len("/predict")], "POST", "predict")
    if target is None:
        return None
    validate_name(target.endpoint, "endpoint name")
    if method != target.method:
        raise MethodNotAllowed(
            f"{path[:120]!r} takes {target.method}, not {method[:10]}", (target.method,)
        )
    return target


def _openai(rest: str) -> Target | None:
    endpoint, _, tail = rest.partition("/v1/")
    method = OPENAI_TAILS.get(f"/v1/{tail}")
    return None if method is None else Target(endpoint, method, "openai", f"/v1/{tail}")


def _v2(segments: list[str]) -> Target | None:
    endpoint, rest = segments[0], tuple(segments[1:])
    version: int | None = None
    if rest[:1] == ("versions",) and len(rest) >= 2:
        version, rest = _version(rest[1]), rest[2:]
    method = _V2_TAILS.get(rest)
    if method is None:
        return None
    tail = f"/{rest[0]}" if rest else ""
    return Target(endpoint, method, "v2", tail, version)


def _version(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_VERSION_DIGITS:
        raise InvalidInput(f"version {text[:20]!r} is not a version number; use e.g. 3")
    return int(text)
