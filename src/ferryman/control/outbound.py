"""Where Ferryman may send requests of its own: the outbound URL policy (an SSRF guard).

The control plane calls URLs that people give it — alert webhooks, ``prometheus_url``. Left
open, a token holder could aim them inward: at cloud metadata (169.254.169.254), at services
on private networks, at loopback, at the control plane itself. So a destination is refused
when any address its host resolves to is

- loopback, link-local (169.254/16, fe80::/10: metadata lives there), unspecified (0.0.0.0),
  private (RFC 1918, ULA fc00::/7, carrier-grade NAT 100.64/10), multicast or reserved;
- an IPv4 address of those kinds inside IPv6 (``::ffff:a.b.c.d``, NAT64, 6to4, Teredo);
- the control plane's own address;
- or written as an IPv4 address in a non-canonical form (``2130706433``, ``0x7f.1``,
  ``0177.0.0.1``), which resolvers read as an address but people do not.

unless ``outbound.allow`` names it: a CIDR (``10.0.0.0/8``) or a ``host:port``
(``hooks.internal:443``, ``127.0.0.1:9000``). :class:`PinnedTransport` resolves each
request's host once, checks every address, and connects to the checked one (the URL's host
stays the ``Host`` header and the TLS server name), so a DNS answer that changes between the
check and the connection (rebinding) changes nothing. It never follows redirects.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ferryman.config import Settings
from ferryman.errors import InvalidInput

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_FIX = "add it to outbound.allow (FERRYMAN_OUTBOUND__ALLOW) if you mean it"


class OutboundRefused(InvalidInput):
    """A destination the outbound policy does not allow (400 where a person gave it)."""


class OutboundDenied(httpx.TransportError):
    """A request the transport did not send: its destination is refused (see the message)."""


@dataclass(frozen=True)
class Destination:
    """A checked destination: the URL's host and port, and the address to connect to."""

    host: str
    port: int
    address: str


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to now, in the resolver's order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class OutboundPolicy:
    """Which destinations the control plane may call; see the module's docstring.

    >>> policy = OutboundPolicy(allow=("127.0.0.1:9000",))
    >>> policy.destination("127.0.0.1", 9000).address
    '127.0.0.1'
    >>> policy.destination("169.254.169.254", 80)
    Traceback (most recent call last):
    ferryman.control.outbound.OutboundRefused: ...
    """

    def __init__(
        self,
        allow: Iterable[str] = (),
        own: Iterable[tuple[str, int]] = (),
        resolver: Resolver = resolve,
    ) -> None:
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        endpoints: set[tuple[str, int]] = set()
        for entry in allow:
            _add_allowed(entry, self._networks, endpoints)
        self._endpoints = frozenset(endpoints)
        self._own = frozenset((ipaddress.ip_address(a), port) for a, port in own)
        self._resolver = resolver

    @classmethod
    def from_settings(cls, settings: Settings, resolver: Resolver = resolve) -> OutboundPolicy:
        """The policy of this control plane: ``outbound.allow``, and its own address."""
        control = settings.control
        return cls(settings.outbound.allow, own_addresses(control.host, control.port), resolver)

    def check_url(self, url: str) -> str:
        """``url`` if its host may be called (as written, and as it resolves now), else 400.

        A name that does not resolve yet is accepted here: each request checks it again.
        """
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise InvalidInput("the URL cannot be parsed; give http(s)://HOST/PATH") from None
        with contextlib.suppress(Unresolvable):
            self.destination(parts.hostname or "", port)
        return url

    def destination(self, host: str, port: int) -> Destination:
        """Resolve ``host`` once and check every address; the first is the one to use."""
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = [
                    ipaddress.ip_address(a.split("%")[0]) for a in self._resolver(host, port)
                ]
            except (OSError, UnicodeError, ValueError):
                addresses = []
            if not addresses:
                raise Unresolvable(f"host {host[:80]!r} does not resolve; check the URL")
        for address in addresses:
            self._check(host, address, port)
        return Destination(host, port, str(addresses[0]))

    def _check(self, host: str, address: Address, port: int) -> None:
        shown = f"{host[:80]}:{port}" if host == str(address) else f"{host[:80]}:{port} ({address})"
        if self._is_named(host, address, port):
            return
        if (address, port) in self._own:
            raise OutboundRefused(
                f"{shown} is the control plane's own address; it never calls itself ({_FIX})"
            )
        reason = denied_because(address)
        if reason is not None and not self._is_in_allowed_network(address):
            raise OutboundRefused(f"{shown} is {reason}; refused (outbound policy: {_FIX})")

    def _is_named(self, host: str, address: Address, port: int) -> bool:
        return (host.lower().strip("[]"), port) in self._endpoints or (
            str(address),
            port,
        ) in self._endpoints

    def _is_in_allowed_network(self, address: Address) -> bool:
        candidates = [address]
        embedded = embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded)
        return any(a in network for a in candidates for network in self._networks)


class Unresolvable(OutboundRefused):
    """A host that does not resolve (now)."""


_DENIED_KINDS = (
    ("is_unspecified", "the unspecified address (0.0.0.0 or ::)"),
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address (cloud metadata services live there)"),
    ("is_multicast", "a multicast address"),
    ("is_private", "a private address (RFC 1918, ULA fc00::/7, documentation ranges)"),
    ("is_reserved", "a reserved address"),
)


def denied_because(address: Address) -> str | None:
    """Why ``address`` may not be called without an allow-list entry; None: it is public."""
    embedded = embedded_ipv4(address)
    if embedded is not None:  # judged by the IPv4 address it reaches
        inner = denied_because(embedded)
        return None if inner is None else f"an IPv4 address inside IPv6 ({embedded}: {inner})"
    for attribute, reason in _DENIED_KINDS:
        if getattr(address, attribute):
            return reason
    return None if address.is_global else "not a public address (e.g. carrier-grade NAT)"


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries: mapped, 6to4, Teredo, NAT64 or compatible."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    teredo = address.teredo
    carried = (address.ipv4_mapped, address.sixtofour, teredo[1] if teredo else None)
    found = next((candidate for candidate in carried if candidate is not None), None)
    # 64:ff9b::a.b.c.d (NAT64) and ::a.b.c.d (the deprecated IPv4-compatible form)
    if found is None and (address in _NAT64 or 1 < int(address) <= 0xFFFFFFFF):
        found = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return found


def own_addresses(host: str, port: int) -> list[tuple[str, int]]:
    """The addresses a server bound to ``host``:``port`` answers on; for a wildcard bind,
    loopback and the addresses of this machine's name."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None and not address.is_unspecified:
        return [(str(address), port)]
    found = [("127.0.0.1", port), ("::1", port)]
    for name in [host] if address is None else [socket.gethostname()]:
        try:
            found += [(a.split("%")[0], port) for a in resolve(name, port)]
        except (OSError, UnicodeError):
            continue
    return found


def _literal(host: str) -> Address | None:
    """The address ``host`` writes literally; non-canonical IPv4 forms are refused."""
    name = host.strip("[]")
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    try:
        packed = socket.inet_aton(name)
    except (OSError, UnicodeError, ValueError):
        return None  # a name
    raise OutboundRefused(
        f"host {host[:80]!r} is an IPv4 address in a non-canonical form (decimal, octal or "
        f"hex: {ipaddress.IPv4Address(packed)}); write addresses in dotted decimal"
    )


def _add_allowed(
    entry: str,
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    endpoints: set[tuple[str, int]],
) -> None:
    """Parse one ``outbound.allow`` entry: a CIDR or an address, else ``host:port``."""
    text = entry.strip()
    try:
        networks.append(ipaddress.ip_network(text, strict=False))
        return
    except ValueError:
        pass
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise InvalidInput(
            f"outbound.allow entry {entry[:80]!r} is neither a CIDR (10.0.0.0/8, fd00::/8) nor "
            "host:port (hooks.internal:443, [::1]:9000); fix it"
        )
    endpoints.add((host.lower().strip("[]"), int(port)))


class PinnedTransport(httpx.BaseTransport):
    """Sends a request only to a destination the policy allows, at the address it checked.

    The request goes to the checked IP; the URL's host stays its ``Host`` header and the
    TLS server name (``sni_hostname``), so certificates are verified against the name.
    """

    def __init__(self, policy: OutboundPolicy, inner: httpx.BaseTransport | None = None) -> None:
        self._policy = policy
        self._inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            destination = self._policy.destination(url.host, port)
        except InvalidInput as exc:
            raise OutboundDenied(exc.message, request=request) from None
        pinned = httpx.Request(
            request.method,
            url.copy_with(host=destination.address),
            headers=request.headers,  # Host: the name, as the URL gave it
            stream=request.stream,
            extensions={**request.extensions, "sni_hostname": url.host},
        )
        return self._inner.handle_request(pinned)

    def close(self) -> None:
        self._inner.close()
