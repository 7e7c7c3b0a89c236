"""``GET /api/v1/routes``: the long poll that remote gateways read the route table from,
and the gateway side of it (:class:`~ferryman.gateway.routewatch.RouteWatch`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from ferryman.config import load_settings
from ferryman.control.api.app import create_app
from ferryman.gateway.routes import RouteTable
from ferryman.gateway.routewatch import RouteFeed, RouteWatch, route_token
from ferryman.registry import Registry

TOKEN = "t" * 43


@dataclass
class Board:
    """The control loop's table, as the API sees it."""

    table: RouteTable | None = None

    def __call__(self) -> RouteTable | None:
        return self.table


@dataclass
class Api:
    url: str
    board: Board
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = load_settings(data_dir=tmp_path / "data")
    registry = Registry.open(settings)
    board = Board()
    app = create_app(settings, registry, TOKEN, routes=board)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    running = Api(f"http://127.0.0.1:{port}", board, server, thread)
    yield running
    running.stop()
    registry.close()


def _table(generation: int) -> RouteTable:
    return RouteTable.model_validate({
        "generation": generation,
        "endpoints": {"m": {"endpoint": "m", "variants": [
            {"name": "v1", "model": "m", "version": 1, "weight": 100,
             "backends": ["http://127.0.0.3:9000"]}]}},
    })  # fmt: skip


def _get(api: Api, **params: float) -> httpx.Response:
    headers = {"authorization": f"Bearer {route_token(TOKEN)}"}
    return httpx.get(f"{api.url}/api/v1/routes", params=params, headers=headers, timeout=10)


def test_the_table_comes_at_once_when_newer_and_after_a_change_when_not(api: Api) -> None:
    assert _get(api, wait_s=0).status_code == 503  # nothing published yet
    api.board.table = _table(3)
    answer = _get(api, after_generation=2, wait_s=5)
    assert answer.status_code == 200
    assert RouteTable.model_validate(answer.json()) == _table(3)

    started = time.monotonic()
    assert _get(api, after_generation=3, wait_s=0.3).status_code == 304
    assert time.monotonic() - started >= 0.3

    threading.Timer(0.3, lambda: setattr(api.board, "table", _table(4))).start()
    started = time.monotonic()
    answer = _get(api, after_generation=3, wait_s=10)
    assert answer.json()["generation"] == 4
    assert time.monotonic() - started < 5  # answered on the change, not at the deadline


@pytest.mark.parametrize(
    ("credential", "status"),
    [("", 401), ("Bearer nope", 401), (f"Basic {TOKEN}", 401),
     (f"Bearer {route_token(TOKEN)}", 200), (f"Bearer {TOKEN}", 200)],
)  # fmt: skip
def test_the_route_table_needs_the_route_token_or_the_control_token(
    api: Api, credential: str, status: int
) -> None:
    api.board.table = _table(1)
    headers = {"authorization": credential} if credential else {}
    answer = httpx.get(f"{api.url}/api/v1/routes?wait_s=0", headers=headers)
    assert answer.status_code == status
    if status == 401:
        assert "route token" in answer.json()["error"]


def test_the_route_token_reads_nothing_else(api: Api) -> None:
    headers = {"authorization": f"Bearer {route_token(TOKEN)}"}
    assert httpx.get(f"{api.url}/api/v1/models", headers=headers).status_code == 401
    assert route_token(TOKEN) != route_token("u" * 43)


@pytest.mark.parametrize("query", ["after_generation=-2", "wait_s=61", "wait_s=x"])
def test_bad_parameters_are_refused(api: Api, query: str) -> None:
    headers = {"authorization": f"Bearer {route_token(TOKEN)}"}
    answer = httpx.get(f"{api.url}/api/v1/routes?{query}", headers=headers)
    assert answer.status_code == 400
    assert query.split("=", maxsplit=1)[0] in answer.json()["error"]


def test_a_gateway_watch_writes_each_table_and_keeps_the_last_when_the_api_is_away(
    api: Api, tmp_path: Path
) -> None:
    path = tmp_path / "node" / "routes.json"
    watch = RouteWatch(RouteFeed(api.url, route_token(TOKEN)), path)
    api.board.table = _table(7)
    with httpx.Client(timeout=30) as http:
        assert watch.poll(http)
        assert RouteTable.from_json(path.read_bytes()) == _table(7)
        api.stop()
        assert not watch.poll(http)  # the control plane is away
    assert RouteTable.from_json(path.read_bytes()) == _table(7)
    assert watch.generation == 7


def test_a_watch_with_a_wrong_token_keeps_its_table(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    path.write_text(_table(1).model_dump_json())
    api.board.table = _table(2)
    with httpx.Client(timeout=30) as http:
        assert not RouteWatch(RouteFeed(api.url, "wrong"), path).poll(http)
    assert RouteTable.from_json(path.read_bytes()) == _table(1)
