"""The outbound URL policy (issue 14): webhooks and Prometheus cannot be aimed inward."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from ferryman.config import OutboundSettings, load_settings
from ferryman.control.api.app import create_app
from ferryman.control.outbound import OutboundPolicy, OutboundRefused, PinnedTransport
from ferryman.errors import InvalidInput
from ferryman.registry import Registry
from tests.control.webhook_receiver import receiving

SECRET = "0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def control(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A control plane on a port its settings name, with loopback allowed outbound."""
    port = free_port()
    settings = load_settings(
        data_dir=tmp_path, control={"port": port},
        outbound=OutboundSettings(allow=("127.0.0.0/8",)),
    )  # fmt: skip
    registry = Registry.open(settings)
    token = "t" * 40
    app = create_app(settings, registry, token)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", {"authorization": f"Bearer {token}"}
    server.should_exit = True
    thread.join(timeout=10)
    registry.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "inside IPv6 (169.254.169.254: a link-local"),
        ("http://[::ffff:a9fe:a9fe]/", "inside IPv6"),
        ("http://[64:ff9b::a9fe:a9fe]/", "inside IPv6"),
        ("http://10.0.0.1/hook", "a private address"),
        ("http://192.168.1.1/hook", "a private address"),
        ("http://[fc00::1]/hook", "a private address"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://100.100.100.200/", "not a public address"),
        ("http://2130706433/hook", "non-canonical form (decimal, octal or hex: 127.0.0.1)"),
        ("http://0x7f000001/hook", "non-canonical form"),
        ("http://0177.0.0.1/hook", "non-canonical form"),
        ("http://127.1/hook", "non-canonical form"),
        ("http://0.0.0.0:8000/hook", "the unspecified address"),
        ("http://[::]/hook", "the unspecified address"),
    ],
)
def test_webhooks_aimed_inward_are_400(
    control: tuple[str, dict[str, str]], url: str, says: str
) -> None:
    base, auth = control
    answer = httpx.put(f"{base}/api/v1/alert-webhooks/ops", headers=auth,
                       json={"url": url, "secret": SECRET})  # fmt: skip
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["error"]
    assert "outbound.allow" in answer.json()["error"] or "non-canonical" in says
    assert httpx.get(f"{base}/api/v1/alert-webhooks", headers=auth).json() == []


def test_a_webhook_at_the_control_plane_itself_is_400(
    control: tuple[str, dict[str, str]],
) -> None:
    """Even with loopback allowed, the control plane never posts to its own API."""
    base, auth = control
    for own in (base, base.replace("127.0.0.1", "localhost")):
        answer = httpx.put(f"{base}/api/v1/alert-webhooks/ops", headers=auth,
                           json={"url": own + "/api/v1/models", "secret": SECRET})  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert "the control plane's own address" in answer.json()["error"]
    receiver = httpx.put(f"{base}/api/v1/alert-webhooks/ops", headers=auth,
                         json={"url": "http://127.0.0.1:9/hook", "secret": SECRET})  # fmt: skip
    assert receiver.status_code == 200  # loopback itself is allowed by outbound.allow


def test_a_pinned_request_goes_to_the_checked_address_with_the_name_as_host() -> None:
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]  # a second answer (rebinding) would never be asked for

    policy = OutboundPolicy(allow=("127.0.0.0/8",), resolver=resolver)
    with receiving() as receiver, httpx.Client(transport=PinnedTransport(policy)) as client:
        port = receiver.url.split(":")[2].split("/")[0]
        answer = client.post(f"http://hooks.test:{port}/hook", content=b"{}")
        [request] = receiver.wait_for(1)
    assert answer.status_code == 204
    assert request.headers["host"] == f"hooks.test:{port}"
    assert calls == ["hooks.test"]


def test_a_name_with_any_inward_address_is_refused() -> None:
    policy = OutboundPolicy(resolver=lambda host, port: ["93.184.216.34", "10.1.2.3"])
    with pytest.raises(OutboundRefused, match=r"hooks\.test:443 \(10\.1\.2\.3\) is a private"):
        policy.destination("hooks.test", 443)
    assert OutboundPolicy(resolver=lambda h, p: ["93.184.216.34"]).destination("a.test", 443)


def test_redirects_are_not_followed() -> None:
    with receiving() as inner:
        policy = OutboundPolicy(allow=("127.0.0.0/8",))
        redirect = httpx.MockTransport(
            lambda request: httpx.Response(302, headers={"location": inner.url})
        )
        with httpx.Client(transport=PinnedTransport(policy, redirect)) as client:
            answer = client.post("http://127.0.0.1:9/hook", content=b"{}")
        assert answer.status_code == 302
        assert inner.received == []


@pytest.mark.parametrize(
    ("allow", "host", "port", "is_allowed"),
    [
        (("127.0.0.1:9000",), "127.0.0.1", 9000, True),
        (("127.0.0.1:9000",), "127.0.0.1", 9001, False),
        (("[::1]:9000",), "::1", 9000, True),
        (("10.0.0.0/8",), "10.2.3.4", 80, True),
        (("10.0.0.0/8",), "[::ffff:10.2.3.4]", 80, True),
        (("10.0.0.0/8",), "192.168.0.1", 80, False),
    ],
)
def test_the_allow_list_names_cidrs_and_host_ports(
    allow: tuple[str, ...], host: str, port: int, is_allowed: bool
) -> None:
    policy = OutboundPolicy(allow=allow)
    if is_allowed:
        assert policy.destination(host, port).port == port
    else:
        with pytest.raises(OutboundRefused):
            policy.destination(host, port)


@pytest.mark.parametrize("entry", ["hooks.internal", "10.0.0.0/33", "host:0", ":80"])
def test_a_bad_allow_entry_says_what_it_should_be(entry: str) -> None:
    with pytest.raises(InvalidInput, match="neither a CIDR"):
        OutboundPolicy(allow=(entry,))
