"""A replica with a token (the fleet secret under ``ferryman up``): in process, every route
but liveness refuses a request without it, before it is counted or logged."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from ferryman.engines.onnx import OnnxEngine
from tests.serving.conftest import AFFINE_BODY, affine_model, replica, running

pytestmark = pytest.mark.anyio
SECRET = "replica-secret"
INFER = "/v2/models/tiny/infer"
GOOD = {"authorization": f"Bearer {SECRET}"}


async def test_without_the_token_nothing_but_liveness_answers() -> None:
    app = replica(OnnxEngine(affine_model()), token=SecretStr(SECRET))
    async with running(app) as http:
        assert (await http.get("/v2/health/live")).status_code == 200
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": SECRET},
                        {"authorization": f"Basic {SECRET}"}):  # fmt: skip
            refused = await http.post(INFER, json=AFFINE_BODY, headers=headers)
            assert refused.status_code == 401
            assert "Authorization: Bearer" in refused.json()["error"]
            assert refused.headers["www-authenticate"] == 'Bearer realm="ferryman"'
            assert (await http.get("/ferryman/v1/payloads", headers=headers)).status_code == 401
            assert (await http.get("/metrics", headers=headers)).status_code == 401
            assert (await http.post("/v2/health/live", headers=headers)).status_code == 401

        metrics = (await http.get("/metrics", headers=GOOD)).text
        assert 'code="401"' not in metrics  # refusals are not traffic
        assert 'code="200"' not in metrics
        assert (await http.get("/ferryman/v1/payloads", headers=GOOD)).json()["records"] == []
        served = await http.post(INFER, json=AFFINE_BODY, headers=GOOD)
        assert served.status_code == 200
        assert served.json()["outputs"][0]["data"] == [3, 5, 7, 9]
        assert len((await http.get("/ferryman/v1/payloads", headers=GOOD)).json()["records"]) == 1
        assert 'code="200"' in (await http.get("/metrics", headers=GOOD)).text


async def test_without_a_token_setting_a_replica_serves_anyone() -> None:
    """``ferryman serve`` on its own, no --token: as before."""
    async with running(replica(OnnxEngine(affine_model()))) as http:
        assert (await http.post(INFER, json=AFFINE_BODY)).status_code == 200
        assert (await http.get("/ferryman/v1/payloads")).status_code == 200
