"""The Prometheus traffic source: PromQL answers into the totals rollouts judge.

A real Prometheus reading a live gateway is tested in tests/control/e2e/test_monitoring.py;
here, the translation of its answers and every way a query can fail (each must be "no data",
never an exception in the control loop, never a promotion — RELIABILITY Z5).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from ferryman.config import ControlSettings, OutboundSettings, load_settings
from ferryman.control.loop import ControlLoop
from ferryman.control.metrics.promql import PrometheusTraffic, totals
from ferryman.control.metrics.traffic import Traffic
from ferryman.errors import InvalidInput
from ferryman.registry import Registry
from tests.support import free_port


def test_answers_become_the_gateways_totals() -> None:
    v1, v2 = {"endpoint": "m", "variant": "v1"}, {"endpoint": "m", "variant": "v2"}
    found = totals(
        requests=[({**v1, "code": "200"}, 90.0), ({**v1, "code": "503"}, 10.0),
                  ({**v2, "code": "200"}, 5.0)],
        buckets=[({**v1, "le": "0.1"}, 80.0), ({**v1, "le": "+Inf"}, 100.0)],
        shadow=[({**v2, "outcome": "equal"}, 4.0)],
    )  # fmt: skip
    assert found[("m", "v1")] == Traffic(100.0, 10.0, {0.1: 80.0, math.inf: 100.0})
    assert found[("m", "v1")].error_rate == 0.1
    assert found[("m", "v2")] == Traffic(5.0, 0.0, {}, {"equal": 4.0})


class _Answering(BaseHTTPRequestHandler):
    """A stand-in for Prometheus' query API that answers one fixed document."""

    document: bytes = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.document)

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def answering() -> Iterator[type[_Answering]]:
    handler = type("Handler", (_Answering,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "document",
    [
        {"status": "error", "errorType": "bad_data", "error": "parse error"},
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
        "not an object",
    ],
    ids=["error", "matrix", "malformed-series", "not-an-object"],
)
def test_a_bad_answer_is_no_data(answering: type[_Answering], document: object) -> None:
    answering.document = json.dumps(document).encode()
    with httpx.Client() as http:
        assert PrometheusTraffic(answering.url, http)() is None  # type: ignore[attr-defined]


def test_an_unreachable_prometheus_is_no_data() -> None:
    with httpx.Client() as http:
        assert PrometheusTraffic(f"http://127.0.0.1:{free_port()}", http, timeout_s=1)() is None


@pytest.mark.parametrize(
    "url", ["ftp://prometheus:9090", "http://user:secret@prometheus:9090", "prometheus:9090"]
)
def test_only_plain_http_urls_without_credentials_are_accepted(url: str) -> None:
    with pytest.raises(ValidationError):
        ControlSettings(prometheus_url=url)
    assert ControlSettings(prometheus_url="http://prometheus:9090/").prometheus_url


def test_the_control_loop_judges_rollouts_on_prometheus_when_one_is_named(
    tmp_path: Path, sqlite_url: str
) -> None:
    named = load_settings(
        data_dir=tmp_path, database_url=sqlite_url,
        control=ControlSettings(prometheus_url="http://127.0.0.1:9090"),
        outbound=OutboundSettings(allow=("127.0.0.1:9090",)),  # loopback: allowed by name
    )  # fmt: skip
    registry = Registry.open(named)
    try:
        assert isinstance(ControlLoop(named, registry).traffic, PrometheusTraffic)
        unlisted = named.model_copy(update={"outbound": OutboundSettings()})
        with pytest.raises(InvalidInput, match=r"127\.0\.0\.1:9090 is a loopback address"):
            ControlLoop(unlisted, registry)  # the outbound policy: refused at start, with why
        plain = load_settings(data_dir=tmp_path, database_url=sqlite_url)
        assert not isinstance(ControlLoop(plain, registry).traffic, PrometheusTraffic)
    finally:
        registry.close()
