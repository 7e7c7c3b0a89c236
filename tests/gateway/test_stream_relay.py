"""The gateway's stream forwarding: what one read brings goes on as one piece, as bytes."""

from __future__ import annotations

import asyncio

import pytest

from ferryman.errors import DeadlineExceeded
from ferryman.gateway.messages import Message
from ferryman.gateway.streaming import _Response, _stream_answer

pytestmark = pytest.mark.anyio

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
EVENTS = [b'data: {"t":"a"}\n\n', b'data: {"t":"b"}\n\n', b"data: [DONE]\n\n"]


def chunked(piece: bytes) -> bytes:
    return f"{len(piece):x}\r\n".encode() + piece + b"\r\n"


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.messages if m["type"] == "http.response.body"]


async def test_events_that_arrive_together_are_sent_on_as_one_piece() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(HEAD + b"".join(map(chunked, EVENTS)) + b"0\r\n\r\n")
    sent = Recorder()
    response = _Response(sent)
    assert await _stream_answer(reader, response, timeout_s=5) == 200
    assert sent.bodies() == [b"".join(EVENTS), b""]
    assert response.is_stream
    headers = dict(sent.messages[0]["headers"])
    assert b"transfer-encoding" not in headers  # hop-by-hop: the client side frames anew


async def test_a_replica_silent_past_the_timeout_ends_the_answer_after_what_it_sent() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(HEAD + chunked(EVENTS[0]))
    sent = Recorder()
    with pytest.raises(DeadlineExceeded, match=r"the replica sent nothing for 0\.05 s"):
        await _stream_answer(reader, _Response(sent), timeout_s=0.05)
    assert sent.bodies() == [EVENTS[0]]


async def test_a_slow_client_is_not_taken_for_a_silent_replica() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(HEAD + chunked(EVENTS[0]))

    async def slow(message: Message) -> None:
        if message["type"] == "http.response.body" and message["body"]:
            await asyncio.sleep(0.2)  # longer than the replica's timeout
            reader.feed_data(b"".join(map(chunked, EVENTS[1:])) + b"0\r\n\r\n")

    assert await _stream_answer(reader, _Response(slow), timeout_s=0.1) == 200
