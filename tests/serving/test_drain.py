"""Graceful drain on SIGTERM (in-flight requests finish, new ones are turned away), safe binds."""

from __future__ import annotations

import signal
import threading

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette

from ferryman.config import load_settings
from ferryman.engines.function import FunctionEngine
from ferryman.errors import Forbidden
from ferryman.serving.server import build_server, check_bind
from tests.serving.conftest import replica, running, serving_in_thread
from tests.serving.test_batching import SIGNATURE, GatedModel, body

URL = "/v2/models/tiny/infer"


def test_in_flight_requests_finish_after_sigterm() -> None:
    model = GatedModel()
    app = replica(FunctionEngine(SIGNATURE, model))
    x = np.ones((2, 4), dtype=np.float32)
    answers: list[httpx.Response] = []
    with serving_in_thread(app, drain_timeout_s=10) as live:
        url = f"http://{live.address}{URL}"
        caller = threading.Thread(target=lambda: answers.append(httpx.post(url, json=body(x))))
        caller.start()
        assert model.entered.wait(10)
        live.server.handle_exit(signal.SIGTERM, None)
        assert app.state.plane.is_draining
        model.gate.set()
        caller.join(10)
        live.thread.join(10)
        assert not live.thread.is_alive(), "the server did not stop after draining"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{live.address}/v2/health/live")
    assert [a.status_code for a in answers] == [200]
    assert answers[0].json()["outputs"][0]["data"] == [2.0] * 8


@pytest.mark.anyio
async def test_a_draining_replica_turns_new_requests_away() -> None:
    model = GatedModel()
    model.gate.set()
    app = replica(FunctionEngine(SIGNATURE, model))
    async with running(app) as client:
        app.state.plane.is_draining = True
        refused = await client.post(URL, json=body(np.ones((1, 4), "f4")))
        ready = await client.get("/v2/health/ready")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "draining" in refused.json()["error"]
    assert ready.status_code == 503


@pytest.mark.parametrize(
    ("host", "is_allowed", "refused"),
    [("127.0.0.1", False, False), ("::1", False, False), ("localhost", False, False),
     ("0.0.0.0", False, True), ("10.1.2.3", False, True), ("0.0.0.0", True, False)],
)  # fmt: skip
def test_only_loopback_binds_without_an_explicit_allowance(
    host: str, is_allowed: bool, refused: bool
) -> None:
    if refused:
        with pytest.raises(Forbidden, match="refusing to listen"):
            check_bind(host, is_allowed)
    else:
        check_bind(host, is_allowed)


@pytest.mark.parametrize(("token", "refused"), [(None, True), ("fleet-secret", False)])
def test_a_replica_with_a_token_may_listen_on_its_nodes_address(
    token: str | None, refused: bool
) -> None:
    """The Ray runtime's replicas bind their node's address, behind the fleet secret."""
    settings = load_settings(
        serving={"host": "10.1.2.3", "token": token}, connections={"insecure_http": True}
    )
    app = Starlette()
    app.state.plane = None
    if refused:
        with pytest.raises(Forbidden, match="without a token"):
            build_server(settings, app)
    else:
        assert build_server(settings, app).config.host == "10.1.2.3"  # built, not started
