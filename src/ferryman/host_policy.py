"""Which ``Host`` and ``Origin`` a server answers: the DNS-rebinding guard of every server.

Loopback is not authentication: a page on ``evil.example`` whose name an attacker re-points
at 127.0.0.1 reaches a local server from the victim's browser, with ``Host: evil.example``.
So every Ferryman server (control plane, gateway, replica) answers only requests whose
``Host`` names it — loopback names, the address it is bound to, or names its settings allow
— and refuses a state-changing request from another origin (scheme, host *and* port).

:meth:`HostPolicy.refusal` is on the data plane's hot path: one pass over the raw headers
and, for the usual ``Host`` value, one frozenset lookup of its bytes.

>>> policy = HostPolicy.for_server("127.0.0.1", 8080)
>>> policy.refusal([(b"host", b"127.0.0.1:8080")], "POST", "http") is None
True
>>> policy.refusal([(b"host", b"evil.example")], "GET", "http").status_code
403
>>> policy.refusal([(b"host", b"localhost:8080"), (b"origin", b"http://localhost:9")],
...                "POST", "http").status_code
403
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from ferryman.errors import FerrymanError, Forbidden, InvalidInput

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


# Built once: a refusal is rendered, never raised, so one instance serves every request.
DUPLICATE_HOST = InvalidInput(
    "the request has more than one Host header; send exactly one (request smuggling guard)"
)
DUPLICATE_CREDENTIAL = InvalidInput(
    "the request has more than one Authorization or Origin header; send at most one of each "
    "(servers and proxies could each read a different one)"
)
FOREIGN_HOST = Forbidden(
    "the Host header does not name this server; refused (DNS rebinding guard: add the name "
    "to the server's allowed_hosts setting if it is yours)",
)
CROSS_ORIGIN = Forbidden(
    "cross-origin request refused: its Origin (scheme, host and port) is not this server's; "
    "call the server directly (CLI, SDK, or the dashboard it serves)",
)


def hostname(netloc: str) -> str:
    """``host[:port]`` → host, lowercased; IPv6 literals keep their brackets.

    >>> hostname("LocalHost:7070"), hostname("[::1]:80"), hostname("::1")
    ('localhost', '[::1]', '[::1]')
    """
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc.split("]", 1)[0] + "]"
    if netloc.count(":") == 1:
        return netloc.rsplit(":", 1)[0]
    return f"[{netloc}]" if ":" in netloc else netloc  # a bare IPv6 address


class HostPolicy:
    """The host names one server answers to, and its same-origin rule."""

    def __init__(self, names: Iterable[str], port: int | None = None) -> None:
        self.names = frozenset(hostname(name) for name in names if name.strip())
        raw = {name.encode("latin-1") for name in self.names}
        if port:
            raw |= {b"%s:%d" % (name, port) for name in raw}
        self._raw = frozenset(raw)

    @classmethod
    def for_server(
        cls, bound_host: str, port: int | None, allowed: Iterable[str] = ()
    ) -> HostPolicy:
        """Loopback names, the bound address (unless it is a wildcard) and ``allowed``."""
        names = [*LOOPBACK_NAMES, *allowed]
        if not _is_wildcard(bound_host):
            names.append(bound_host)
        return cls(names, port)

    def refusal(
        self, headers: Sequence[tuple[bytes, bytes]], method: str, scheme: str
    ) -> FerrymanError | None:
        """None when the request may go on; else why not (400 or 403), to render."""
        host: bytes | None = None
        origin: bytes | None = None
        has_authorization = False
        for name, value in headers:
            if name == b"host":
                if host is not None:
                    return DUPLICATE_HOST
                host = value
            elif name == b"origin":
                if origin is not None:
                    return DUPLICATE_CREDENTIAL
                origin = value
            elif name == b"authorization":
                if has_authorization:
                    return DUPLICATE_CREDENTIAL
                has_authorization = True
        if host is None or (
            host not in self._raw and hostname(host.decode("latin-1")) not in self.names
        ):
            return FOREIGN_HOST
        if (
            origin is not None
            and method not in SAFE_METHODS
            and not is_same_origin(origin, host, scheme)
        ):
            return CROSS_ORIGIN
        return None


def is_same_origin(origin: bytes, host: bytes, scheme: str) -> bool:
    """Whether ``origin`` is ``scheme://host`` — scheme, host and port all equal.

    >>> is_same_origin(b"http://127.0.0.1:7070", b"127.0.0.1:7070", "http")
    True
    >>> is_same_origin(b"http://127.0.0.1:7071", b"127.0.0.1:7070", "http")
    False
    >>> is_same_origin(b"https://a.example", b"a.example:443", "https")
    True
    """
    text = origin.decode("latin-1").strip().lower()
    origin_scheme, separator, netloc = text.partition("://")
    if not separator or origin_scheme != scheme or "/" in netloc:
        return False
    return _endpoint(netloc, scheme) == _endpoint(host.decode("latin-1").lower(), scheme)


def _endpoint(netloc: str, scheme: str) -> tuple[str, int] | None:
    """(host, port) of a netloc, the scheme's default port filled in; None if malformed."""
    name = hostname(netloc)
    rest = netloc.strip()[len(name) :] if netloc.strip().startswith(name) else ""
    if not rest:
        return name, _DEFAULT_PORTS.get(scheme, 0)
    if not rest.startswith(":") or not rest[1:].isdigit():
        return None
    return name, int(rest[1:])


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False
