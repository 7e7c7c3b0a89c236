"""The gateway's fast lane: a model request answered without the ASGI machinery around it.

uvicorn spends about 30 µs of CPU on every request before and after an ASGI app (measured:
a constant answer costs 39 µs per request through uvicorn and 9 µs from a bare asyncio
protocol on the same machine): a scope of a dozen keys, a request cycle with its event, a
task, ``receive`` and two ``send`` messages whose headers are checked one by one, and a
keep-alive timer. For a gateway that forwards a small request that is most of its cost.

:class:`GatewayHttpProtocol` is the server protocol of ``ferryman gateway``
(:func:`~ferryman.gateway.server.build_server`): uvicorn's guarded protocol, which takes the
common request itself: ``POST /v2/models/...`` over HTTP/1.1 with a ``content-length`` within
``max_body_bytes``, no query, no percent-escapes, no ``expect``, not pipelined behind another.
Its body is collected as it arrives (under the connection guard's deadlines), then
:meth:`~ferryman.gateway.app.Gateway.answer_read` answers it with the same checks as the
ASGI path (Host and Origin, header limits, route, token, metrics, holding, shadow), and the
answer goes out in one write. Every other request — the gateway's own paths, OpenAI streams,
anything unusual — takes uvicorn's ASGI path unchanged.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from ferryman.connection_limits import GuardedHttpProtocol
from ferryman.gateway.messages import Answer, Message, error_answer

if TYPE_CHECKING:
    from ferryman.gateway.app import Gateway

_V2_MODELS = b"/v2/models/"
_CLOSE = b"connection: close\r\n"


class FastCycle:
    """What uvicorn and the connection guard read of a request in the fast lane (the names
    of uvicorn's ``RequestResponseCycle``), and the client's disconnect while it is held."""

    __slots__ = ("_gone", "disconnected", "keep_alive", "response_complete", "response_started")

    def __init__(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self._gone: asyncio.Future[None] | None = None

    @property
    def message_event(self) -> FastCycle:
        return self  # uvicorn's connection_lost sets it: see set()

    def set(self) -> None:
        if self.disconnected and self._gone is not None and not self._gone.done():
            self._gone.set_result(None)

    async def receive(self) -> Message:
        """An ASGI ``receive`` after the body: returns when the client goes away."""
        if not self.disconnected:
            if self._gone is None:
                self._gone = asyncio.get_running_loop().create_future()
            await self._gone
        return {"type": "http.disconnect"}


class GatewayHttpProtocol(GuardedHttpProtocol):
    """uvicorn's guarded protocol with the gateway's fast lane (see the module's text)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app = self.app
        self.gateway: Gateway | None = app if hasattr(app, "answer_read") else None
        self._max_body = self.gateway.settings.max_body_bytes if self.gateway else 0
        self._fast: FastCycle | None = None
        self._body: list[bytes] = []
        self._is_reading = False
        self._body_timer: asyncio.TimerHandle | None = None

    def on_message_begin(self) -> None:
        self._fast = None
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        if self.gateway is None or not self._takes_fast_lane():
            super().on_headers_complete()
            return
        self._unset_keepalive_if_required()
        self._fast = FastCycle(keep_alive=self.parser.should_keep_alive())
        self.cycle = self._fast  # type: ignore[assignment]  # read by uvicorn and the guard
        self._body = []
        self._is_reading = True
        self.body_begins()

    def _takes_fast_lane(self) -> bool:
        url = self.url
        if not url.startswith(_V2_MODELS) or b"?" in url or b"%" in url or not url.isascii():
            return False
        parser = self.parser
        is_plain = (
            parser.get_method() == b"POST"
            and parser.get_http_version() == "1.1"
            and not (self.expect_100_continue or parser.should_upgrade() or self.pipeline)
            and self.limit_concurrency is None  # uvicorn's own 503 when set
            # pipelined behind a request still being answered: uvicorn queues it
            and (self.cycle is None or self.cycle.response_complete)
        )
        return is_plain and self._has_sized_body()

    def _has_sized_body(self) -> bool:
        """One ``content-length`` within ``max_body_bytes``, no ``transfer-encoding``."""
        length = None
        for name, value in self.headers:
            if name == b"content-length":
                if length is not None:
                    return False
                length = value
            elif name == b"transfer-encoding":
                return False
        return length is not None and length.isdigit() and int(length) <= self._max_body

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._is_reading and self._body_timer is None and self.gateway is not None:
            # A body still coming after this read: timed from here, as the ASGI path times
            # its read (a body that came with its head, the usual case, needs no timer).
            timeout_s = self.gateway.settings.request_timeout_s
            self._body_timer = self.loop.call_later(timeout_s, self._body_is_late)

    def _body_is_late(self) -> None:
        self._body_timer = None
        if not self._is_reading or self.gateway is None or self.transport.is_closing():
            return
        self._is_reading = False
        self.request_read()  # answered here: the connection guard has nothing left to time
        if self._fast is not None:
            self._fast.response_started = self._fast.response_complete = True
        late = error_answer(self.gateway.late_body())
        self.transport.write(self._encode(late, keep_alive=False))
        self.transport.close()

    def on_body(self, body: bytes) -> None:
        if self._fast is None:
            super().on_body(body)
            return
        self.body_arrives(len(body))
        self._body.append(body)

    def on_message_complete(self) -> None:
        fast = self._fast
        if fast is None:
            super().on_message_complete()
            return
        self.request_read()
        self._is_reading = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        body = b"".join(self._body)
        self._body = []
        # The head is passed on now: a pipelined request parsed next replaces url and headers.
        answer = self._answer(fast, self.url.decode("ascii"), self.headers, body)
        task = self.loop.create_task(answer)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _answer(
        self, fast: FastCycle, path: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        assert self.gateway is not None  # noqa: S101 - only a gateway's protocol gets here
        try:
            answer = await self.gateway.answer_read(
                "POST", path, headers, self.scheme or "http", body, fast.receive
            )
        except BaseException:  # cancelled at shutdown: no answer can be sent
            fast.response_complete = True
            self.transport.close()
            raise
        fast.response_started = True
        if fast.disconnected:
            fast.response_complete = True
            return
        self.transport.write(self._encode(answer, fast.keep_alive))
        fast.response_complete = True
        if not fast.keep_alive:
            self.transport.close()
        self.on_response_complete()

    def _encode(self, answer: Answer, keep_alive: bool) -> bytes:
        """The whole answer as bytes. Header values come from the gateway's constants or a
        replica's answer parsed by httptools, so none holds a line break."""
        parts = [STATUS_LINE[answer.status]]
        for name, value in self.server_state.default_headers:  # date, as uvicorn sends
            parts += (name, b": ", value, b"\r\n")
        for name, value in answer.headers:
            parts += (name, b": ", value, b"\r\n")
        parts += (b"content-length: %d\r\n" % len(answer.body), b"" if keep_alive else _CLOSE)
        parts += (b"\r\n", answer.body)
        return b"".join(parts)
