"""A real webhook receiver on 127.0.0.1: ``http.server`` in a thread, failing on demand."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ferryman.control.outbound import OutboundPolicy, PinnedTransport

README = Path(__file__).parents[2] / "README.md"


def loopback_transport() -> PinnedTransport:
    """A transport to this module's receivers: the outbound policy, loopback allowed."""
    return PinnedTransport(OutboundPolicy(allow=("127.0.0.0/8",)))


def readme_verifier() -> Callable[[str, Any, bytes], bool]:
    """``is_genuine`` from the README's receiver snippet, exactly as the README shows it."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    [snippet] = [block for block in blocks if "def is_genuine(" in block]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    verifier: Callable[[str, Any, bytes], bool] = namespace["is_genuine"]
    return verifier


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    url: str
    fail_first: int = 0
    """Answer 500 to this many requests before answering 204."""
    hang_after: int | None = None
    """Answer nothing to requests after this many (until the receiver closes, at most 10 s)."""
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout_s)
            return list(self.received)

    def is_signed(self, request: Received, secret: str) -> bool:
        """Verify as the README tells receivers to: with its snippet."""
        return readme_verifier()(secret, request.headers, request.body)


@contextmanager
def receiving(fail_first: int = 0, hang_after: int | None = None) -> Iterator[Receiver]:
    receiver = Receiver(url="", fail_first=fail_first, hang_after=hang_after)
    closing = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            with receiver.arrived:
                status = 500 if len(receiver.received) < receiver.fail_first else 204
                headers = {key.lower(): value for key, value in self.headers.items()}
                receiver.received.append(Received(headers, body, status))
                receiver.arrived.notify_all()
                limit = receiver.hang_after
                hang = limit is not None and len(receiver.received) > limit
            if hang:
                closing.wait(timeout=10)
                return
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        closing.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
