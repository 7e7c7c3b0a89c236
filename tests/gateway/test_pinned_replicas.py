"""Requests pinned to a version, through a real gateway to real replicas: the figures the
rollout gates read on the replica side (top-1 classes, payload records) leave them out."""

from __future__ import annotations

import json
from collections.abc import Callable

import aiohttp
import pytest
from starlette.applications import Starlette

from ferryman.engines.onnx import OnnxEngine
from ferryman.gateway import Gateway
from ferryman.gateway.routes import VariantRoute
from ferryman.reference import ReferenceData
from ferryman.serving.app import create_app
from ferryman.serving.metrics import ReplicaIdentity
from tests.gateway.conftest import call, endpoint, sample, serving, table
from tests.serving.conftest import affine_model, settings_with

pytestmark = pytest.mark.anyio

LABELS = ("a", "b", "c", "d")


def replica(version: str) -> Starlette:
    identity = ReplicaIdentity("affine", version, "onnx-fp32")
    engine = OnnxEngine(affine_model())
    return create_app(settings_with(), engine, identity, ReferenceData(labels=LABELS))


def route(name: str, weight: int, url: str, version: int) -> VariantRoute:
    return VariantRoute(name=name, model="affine", version=version, weight=weight, backends=(url,))


def rows(row: list[float], count: int) -> str:
    data = row * count
    return json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [count, 4],
                                   "data": data}]})  # fmt: skip


async def test_pinned_requests_move_neither_the_candidates_class_counts_nor_its_judged_records(
    make_gateway: Callable[..., Gateway], session: aiohttp.ClientSession
) -> None:
    """A client that floods /versions/CANDIDATE with inputs of its choosing chose the
    candidate's top-1 classes: its prediction drift against the baseline was the client's to
    set. The candidate's replica counts no class of a pinned request and marks its record
    pinned (the control plane's input drift and accuracy leave those out)."""
    gateway = make_gateway(draw=lambda: 0.999)  # every request of the split: the canary
    async with (
        serving(replica("1"), "on") as stable,
        serving(replica("2"), "on") as canary,
        serving(gateway, "on") as gw,
    ):
        gateway.set_routes(
            table(endpoint(route("stable", 90, stable, 1), route("canary", 10, canary, 2),
                           name="affine"))
        )  # fmt: skip
        pinned = "/v2/models/affine/versions/2/infer"
        flood = [await call(session, gw + pinned, data=rows([9, 0, 0, 0], 8)) for _ in range(20)]
        assert {(reply.status, reply.variant) for reply in flood} == {(200, "canary")}
        split = await call(session, gw + "/v2/models/affine/infer", data=rows([0, 0, 0, 9], 1))
        assert (split.status, split.variant) == (200, "canary")
        async with session.get(canary + "/metrics") as response:
            metrics = await response.text()
        async with session.get(canary + "/ferryman/v1/payloads") as response:
            records = (await response.json())["records"]
    counted = {label: sample(metrics, "ferryman_predictions_total", **{"class": str(index)})
               for index, label in enumerate(LABELS)}  # fmt: skip
    assert counted == {"a": 0.0, "b": 0.0, "c": 0.0, "d": 1.0}  # the split's one row only
    marks = [(record["pinned"], record["predictions"][0]) for record in records]
    assert marks == [(True, "a")] * 20 + [(False, "d")]
