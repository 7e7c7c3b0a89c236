"""The replica's stream path: batches of ready pieces, and token events made from a template."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

import pytest

from ferryman.protocol.openai import chunk_body
from ferryman.serving.generation import Piece, ready_batches
from ferryman.serving.openai import _Stream

pytestmark = pytest.mark.anyio


async def test_pieces_made_while_one_is_sent_leave_together() -> None:
    gate = asyncio.Event()
    closed: list[bool] = []

    async def pieces() -> AsyncGenerator[Piece]:
        try:
            yield Piece("a")
            await gate.wait()  # the first is handed over before the rest exist
            for text in "bcd":
                yield Piece(text)
            yield Piece("", "stop")
        finally:
            closed.append(True)

    got: list[list[str | None]] = []
    async for batch in ready_batches(pieces()):
        got.append([p.text or p.finish for p in batch])
        gate.set()
        await asyncio.sleep(0.01)  # a slow socket: the engine runs ahead meanwhile
    assert got == [["a"], ["b", "c", "d", "stop"]]
    assert closed == [True]


async def test_an_error_of_the_source_comes_after_its_pieces() -> None:
    async def pieces() -> AsyncGenerator[Piece]:
        yield Piece("a")
        raise RuntimeError("engine failed")

    got: list[str] = []

    async def read() -> None:
        async for batch in ready_batches(pieces()):
            got.extend(p.text for p in batch)

    with pytest.raises(RuntimeError, match="engine failed"):
        await read()
    assert got == ["a"]


async def test_closing_the_batches_closes_the_source_at_once() -> None:
    closed = asyncio.Event()

    async def pieces() -> AsyncGenerator[Piece]:
        try:
            yield Piece("a")
            await asyncio.Event().wait()  # never more
        finally:
            closed.set()

    batches = ready_batches(pieces())
    assert [p.text for p in await anext(batches)] == ["a"]
    await batches.aclose()
    assert closed.is_set()


@pytest.mark.parametrize("is_chat", [True, False])
@pytest.mark.parametrize("text", ["plain", 'quo"te\\', "new\nline\t", "é ☃ 😀", "\x00\x1f", ""])
def test_a_token_event_is_the_chunk_document(is_chat: bool, text: str) -> None:
    stream = _Stream('id-"1"', "m\u2028odel", is_chat, wants_usage=False)
    event = stream.token_event(text)
    assert event.startswith(b"data: ")
    assert event.endswith(b"\n\n")
    document = json.loads(event[6:-2])
    expected = chunk_body('id-"1"', "m\u2028odel", is_chat=is_chat, text=text, finish=None)
    if is_chat:
        expected["choices"][0]["delta"] = {"content": text}  # even when empty: still a token
    document["created"] = expected["created"]
    assert document == expected
