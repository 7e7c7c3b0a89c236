"""wrk, the load generator of the bench scripts: one closed-loop POST run, read back as figures.

Every script loads a server the same way: one request (a body and its headers) posted again
and again over keep-alive connections for a fixed time, then requests per second, latency
percentiles and failures read from wrk's report. The request is written into a Lua script in
a temporary directory (the body as a file beside it, so binary and multi-megabyte bodies
work), removed when wrk is done.

Scripts import it with the repository on ``sys.path`` (``from bench.wrk import ...``), as
they import their own siblings; the tests import it the same way.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MS_PER_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
"""wrk's latency units (it switches to the next one past 1,000 us, 1,000 ms, 60 s, 60 m)."""


@dataclass(frozen=True)
class Load:
    """How hard and how long one wrk run loads the server."""

    duration_s: int
    connections: int
    """Keep-alive connections, each with one request in flight (a closed loop)."""
    threads: int = 1
    """wrk's own threads; at most ``connections``."""
    timeout_s: int | None = None
    """A request unanswered this long counts as a timeout error (None: wrk's 2 s)."""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured (its ``--latency`` report)."""

    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    socket_errors: int
    """Connect, read and write errors, and timeouts."""
    non_2xx: int
    """Answers whose status was neither 2xx nor 3xx."""

    @property
    def errors(self) -> int:
        """Every request that failed: socket errors and non-2xx/3xx answers."""
        return self.socket_errors + self.non_2xx


class WrkError(RuntimeError):
    """wrk did not run to the end (no connection, a bad URL) or its report was unreadable."""


def run_wrk(url: str, body: bytes, headers: Mapping[str, str], load: Load) -> WrkResult:
    """POST ``body`` with ``headers`` to ``url`` under ``load``; wrk must be on the PATH.

    For example, eight connections for five seconds against a replica::

        result = run_wrk(f"{replica}/v2/models/digits/infer", body,
                         {"Content-Type": "application/json"}, Load(duration_s=5, connections=8))
        print(f"{result.requests_per_s:,.0f} req/s, p99 {result.p99_ms:.2f} ms")
    """
    with tempfile.TemporaryDirectory(prefix="wrk-") as directory:
        body_file, script = Path(directory) / "body", Path(directory) / "post.lua"
        body_file.write_bytes(body)
        script.write_text(lua_script(body_file, headers))
        timeout = [] if load.timeout_s is None else ["--timeout", f"{load.timeout_s}s"]
        command = ["wrk", f"-t{load.threads}", f"-c{load.connections}", f"-d{load.duration_s}s",
                   "--latency", *timeout, "-s", str(script), url]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or done.stderr.strip():  # wrk reports a Lua error, then GETs
        raise WrkError(f"wrk failed on {url}: {done.stderr.strip()[-500:]}")
    return parse_wrk(done.stdout)


def lua_script(body_file: Path, headers: Mapping[str, str]) -> str:
    """The wrk script that POSTs the contents of ``body_file`` with ``headers``."""
    lines = [
        'wrk.method = "POST"',
        f'local f = assert(io.open({lua_string(str(body_file))}, "rb"))',
        'wrk.body = f:read("*a")',
        "f:close()",
    ]
    lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


def lua_string(text: str) -> str:
    """A Lua string literal of ``text``: bytes other than printable ASCII, the quote and the
    backslash are written as decimal escapes, which every Lua reads the same."""
    return '"' + "".join(
        chr(byte) if 32 <= byte < 127 and chr(byte) not in '"\\' else f"\\{byte:03d}"
        for byte in text.encode()
    ) + '"'  # fmt: skip


def parse_wrk(report: str) -> WrkResult:
    """The figures of a ``wrk --latency`` report (its stdout)."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)\s*$", report, re.MULTILINE)
    if rate is None:
        raise WrkError(f"no 'Requests/sec' in wrk's report: {report[-500:]!r}")
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    return WrkResult(
        requests_per_s=float(rate.group(1)),
        p50_ms=latency_ms(report, 50),
        p90_ms=latency_ms(report, 90),
        p99_ms=latency_ms(report, 99),
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def latency_ms(report: str, percentile: int) -> float:
    """One line of the report's latency distribution, in milliseconds."""
    line = rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m|h)\s*$"
    found = re.search(line, report, re.MULTILINE)
    if found is None:
        raise WrkError(f"no {percentile}% latency in wrk's report (run it with --latency)")
    return float(found.group(1)) * MS_PER_UNIT[found.group(2)]
