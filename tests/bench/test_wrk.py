"""bench/wrk.py, the bench scripts' load generator: wrk's report read back, and real wrk runs
against a server on 127.0.0.1.

The reports under ``wrk_reports/`` are wrk 4.1's stdout, captured as they came: a fast
server (latencies in µs and ms), one that drops connections, stalls past ``--timeout`` and
answers 503 (``failures``), one that takes 1.5 s an answer (latencies in s, with wrk's
trailing blank), and a run without ``--latency``.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from bench.wrk import Load, WrkError, WrkResult, parse_wrk, run_wrk

from tests.support import free_port

REPORTS = Path(__file__).parent / "wrk_reports"
needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None,
    reason="WRK MISSING: the bench scripts' load runs are NOT checked; install Debian 'wrk' "
    "(scripts/system-deps.sh does)",
)


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ("fast", WrkResult(38164.17, 0.151, 2.06, 9.91, socket_errors=0, non_2xx=0)),
        ("failures", WrkResult(68.81, 0.135, 0.494, 1.01, socket_errors=50, non_2xx=40)),
        ("seconds", WrkResult(0.99, 1510.0, 1510.0, 1510.0, socket_errors=0, non_2xx=0)),
    ],
)
def test_a_report_gives_the_rate_percentiles_in_ms_and_failures(
    report: str, expected: WrkResult
) -> None:
    parsed = parse_wrk((REPORTS / f"{report}.txt").read_text())

    assert astuple(parsed) == pytest.approx(astuple(expected))


def test_errors_are_socket_errors_and_non_2xx_answers() -> None:
    parsed = parse_wrk((REPORTS / "failures.txt").read_text())

    assert parsed.errors == 34 + 16 + 40  # read, timeout; 503s


def test_a_report_without_the_latency_distribution_is_refused() -> None:
    with pytest.raises(WrkError, match="--latency"):
        parse_wrk((REPORTS / "no_latency.txt").read_text())


def test_output_that_is_no_report_is_refused() -> None:
    with pytest.raises(WrkError, match="Requests/sec"):
        parse_wrk("unable to connect to 127.0.0.1:9 Connection refused\n")


@dataclass(frozen=True)
class Seen:
    method: str
    headers: dict[str, str]
    body: bytes


@contextmanager
def server(status: int) -> Iterator[tuple[str, list[Seen]]]:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 answering ``status``: its URL and the
    requests it saw."""
    seen: list[Seen] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {name.lower(): value for name, value in self.headers.items()}
            seen.append(Seen(self.command, headers, body))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v2/models/m/infer", seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@needs_wrk
def test_a_run_posts_the_body_and_headers_and_removes_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    body = bytes(range(256)) * 4  # every byte value: binary bodies arrive intact
    headers = {"Content-Type": "application/octet-stream", "X-Bench": 'a "quoted" \\ value'}

    with server(200) as (url, seen):
        result = run_wrk(url, body, headers, Load(duration_s=1, connections=2))

    assert seen
    assert {request.method for request in seen} == {"POST"}
    assert {request.body for request in seen} == {body}
    assert {request.headers["x-bench"] for request in seen} == {'a "quoted" \\ value'}
    assert {request.headers["content-type"] for request in seen} == {"application/octet-stream"}
    assert result.requests_per_s > 0
    assert result.errors == 0
    assert list(tmp_path.iterdir()) == []  # the script and the body are gone


@needs_wrk
def test_a_run_counts_answers_other_than_2xx() -> None:
    with server(503) as (url, _):
        result = run_wrk(url, b"{}", {}, Load(duration_s=1, connections=1, timeout_s=5))

    assert result.non_2xx > 0
    assert result.errors == result.non_2xx


@needs_wrk
def test_a_run_that_cannot_connect_raises() -> None:
    url = f"http://127.0.0.1:{free_port()}/"

    with pytest.raises(WrkError, match=f"wrk failed on {url}"):
        run_wrk(url, b"{}", {}, Load(duration_s=1, connections=1))
