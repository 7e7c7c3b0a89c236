"""The payload collection path: a real replica on a loopback socket, a real registry (a
SQLite file, and PostgreSQL), and a collector that stops or dies mid-collection.

A page is kept in one transaction with its counts, and the cursor moves past it only once
it is stored, so whatever the control plane was handed and did not keep is read again by
the next collector; the counts (answered = collected + sampled out + dropped) stay exact.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import select

from ferryman.control.monitor.collector import PayloadCollection, PayloadCollector, Retention
from ferryman.engines.onnx import OnnxEngine
from ferryman.gateway.routes import EndpointRoute, RouteTable, VariantRoute
from ferryman.registry import Registry
from ferryman.registry.tables import PayloadRow
from ferryman.serving.app import create_app
from tests.serving.conftest import (
    AFFINE_BODY,
    IDENTITY,
    affine_model,
    serving_in_thread,
    settings_with,
)
from tests.support import SteppedClock

PAGE = 10
CAPACITY = 20


class Died(Exception):
    """The control plane's process ending between a page's answer and its write."""


@pytest.fixture
def replica_url() -> Iterator[str]:
    app = create_app(
        settings_with(payload_log_capacity=CAPACITY), OnnxEngine(affine_model()), IDENTITY
    )
    with serving_in_thread(app) as running:
        yield f"http://{running.address}"


def answer(url: str, count: int) -> list[str]:
    """``count`` inference requests; the request id of each answer."""
    ids = []
    with httpx.Client(base_url=url) as http:
        for _ in range(count):
            reply = http.post("/v2/models/tiny/infer", json=AFFINE_BODY)
            assert reply.status_code == 200
            ids.append(reply.headers["ferryman-request-id"])
    return ids


def table_of(url: str) -> RouteTable:
    route = VariantRoute(name="v1", model="tiny", version=3, weight=100, backends=(url,))
    return RouteTable(
        generation=1, endpoints={"tiny": EndpointRoute(endpoint="tiny", variants=(route,))}
    )


def on_pages(after: int, act: Callable[[], None]) -> dict[str, list[Callable[..., None]]]:
    """httpx event hooks that ``act`` once ``after`` pages of payloads have been answered
    (the first read of a collector without a cursor is its first look, not a page)."""
    answered = 0

    def hook(response: httpx.Response) -> None:
        nonlocal answered
        if response.url.path == "/ferryman/v1/payloads" and response.status_code == 200:
            answered += 1
            if answered == after + 1:
                act()

    return {"response": [hook]}


def kept_ids(registry: Registry) -> list[str]:
    with registry._db.reading() as session:
        return list(session.scalars(select(PayloadRow.request_id).order_by(PayloadRow.seq)))


def collect_all(registry: Registry, url: str) -> None:
    """A restarted control plane's collector, reading until it has caught up."""
    with httpx.Client(timeout=10) as http:
        collector = PayloadCollector(registry, http, Retention(), page_size=PAGE)
        while collector.tick(table_of(url)):
            pass


@pytest.mark.parametrize(
    ("later", "dropped"),
    [pytest.param(5, 0, id="ring-kept-it"), pytest.param(40, 30, id="ring-overwrote-it")],
)
def test_a_control_plane_that_dies_mid_page_loses_nothing_it_was_handed(
    registry: Registry, replica_url: str, later: int, dropped: int
) -> None:
    sent = answer(replica_url, 10)

    def die() -> None:
        raise Died

    with httpx.Client(timeout=10, event_hooks=on_pages(1, die)) as http:
        collector = PayloadCollector(registry, http, Retention(), page_size=PAGE)
        with pytest.raises(Died):  # the replica answered a page; nothing of it was stored
            collector.tick(table_of(replica_url))
    assert kept_ids(registry) == []
    sent += answer(replica_url, later)
    collect_all(registry, replica_url)
    kept = kept_ids(registry)
    (tally,) = registry.payloads.tallies("tiny")
    # the records the dead collector was handed are read again while the ring holds them;
    # those it no longer holds are counted as dropped, exactly (the replica counted them
    # as handed, so only the registry's count tells)
    assert kept == sent[dropped:]
    assert (tally.answered, tally.sampled_out, tally.dropped) == (len(sent), 0, dropped)
    assert len(kept) + tally.sampled_out + tally.dropped == tally.answered


def test_a_collector_told_to_stop_keeps_the_page_in_hand_and_reads_no_more(
    registry: Registry, replica_url: str
) -> None:
    sent = answer(replica_url, 15)
    stopping = threading.Event()
    with httpx.Client(timeout=10, event_hooks=on_pages(1, stopping.set)) as http:
        collector = PayloadCollector(registry, http, Retention(), page_size=PAGE)
        assert collector.tick(table_of(replica_url), stopping) == PAGE
    assert kept_ids(registry) == sent[:PAGE]
    (tally,) = registry.payloads.tallies("tiny")
    assert (tally.answered, tally.dropped) == (15, 0)  # stored with the page, in its transaction
    collect_all(registry, replica_url)
    assert kept_ids(registry) == sent


def test_the_collection_reads_on_at_once_while_a_pass_leaves_records_unread(
    registry: Registry, replica_url: str
) -> None:
    """Every read spends a whole pass's budget (the clock moves a second per reading), so
    each pass keeps one page: with an hour between passes, only passes that start at once
    while the collector is behind can read both pages and the empty answer after them
    before the hour is up."""
    sent = answer(replica_url, 2 * PAGE)
    clock = SteppedClock()

    def ticking() -> float:
        clock.now_s += 1
        return clock.now_s

    caught_up = threading.Event()

    def check(response: httpx.Response) -> None:
        if response.url.path == "/ferryman/v1/payloads":
            response.read()
            if len(response.json()["records"]) < PAGE:
                caught_up.set()  # the last page: its pass keeps it and is not behind

    with httpx.Client(timeout=10, event_hooks={"response": [check]}) as http:
        collector = PayloadCollector(registry, http, Retention(), ticking, page_size=PAGE)
        table = table_of(replica_url)
        collection = PayloadCollection(collector, lambda: table, interval_s=3600.0, clock=ticking)
        collection.start()
        try:
            assert caught_up.wait(timeout=60)
        finally:
            collection.stop()
    assert kept_ids(registry) == sent
    (tally,) = registry.payloads.tallies("tiny")
    assert (tally.answered, tally.dropped) == (len(sent), 0)


def test_a_pass_that_fails_behind_waits_its_interval(registry: Registry) -> None:
    """A pass that fell behind and then failed (the registry gone mid-pass) must not start
    the next one at once: failing passes back to back would spin and flood the log."""
    passes = threading.Semaphore(0)

    class FailingBehind(PayloadCollector):
        def tick(self, table: RouteTable | None, stopping: threading.Event | None = None) -> int:
            self.is_behind = True
            passes.release()
            raise RuntimeError("the registry went away")

    with httpx.Client(timeout=1) as http:
        collection = PayloadCollection(
            FailingBehind(registry, http, Retention()), lambda: None, interval_s=3600.0
        )
        collection.start()
        try:
            assert passes.acquire(timeout=10)
            assert not passes.acquire(timeout=0.5)  # no second pass within the hour
        finally:
            collection.stop()
