"""RELIABILITY S1 on the data plane: every route of a replica (REST and gRPC) and of the
gateway, each with its auth decided in a literal table here, tried over real HTTP and gRPC
against ``ferryman serve`` and ``ferryman gateway`` processes on 127.0.0.1.

A replica takes only its fleet's secret (the gateway and the control plane hold it) on
every route but liveness; the gateway takes an endpoint's inference token when the
endpoint requires one. A route added to either without a line here fails the census.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc  # type: ignore[import-untyped,unused-ignore]  # as src/ferryman/serving/grpc.py
import httpx
import pytest

from ferryman.gateway.app import OWN_PATHS
from ferryman.gateway.paths import proxied_routes
from ferryman.gateway.routes import VariantRoute
from ferryman.protocol import grpc_predict_v2_pb2 as pb
from ferryman.registry import token_digest
from tests.gateway.conftest import endpoint, table
from tests.gateway.test_replica_e2e import wait_for_gateway
from tests.support import free_port

serving_conftest = pytest.importorskip("tests.serving.conftest")
from ferryman.serving.grpc import RPCS  # noqa: E402 - needs the serve extra
from ferryman.serving.http import ROUTES  # noqa: E402

pytestmark = pytest.mark.e2e
FERRYMAN = str(Path(sys.executable).parent / "ferryman")
FLEET_SECRET = "fleet-secret-of-the-census"
DIGITS_TOKEN = "fm_census-digits-token"
OTHER_TOKEN = "fm_census-other-token"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

LIVENESS, FLEET, OPEN, ENDPOINT_TOKEN = "liveness", "fleet secret", "open", "endpoint token"
REPLICA_AUTH = {
    ("GET", "/v2/health/live"): LIVENESS,
    ("GET", "/v2/health/ready"): FLEET,
    ("GET", "/v2"): FLEET,
    ("GET", "/v2/models/{model}"): FLEET,
    ("GET", "/v2/models/{model}/versions/{version}"): FLEET,
    ("GET", "/v2/models/{model}/ready"): FLEET,
    ("GET", "/v2/models/{model}/versions/{version}/ready"): FLEET,
    ("POST", "/v2/models/{model}/infer"): FLEET,
    ("POST", "/v2/models/{model}/versions/{version}/infer"): FLEET,
    ("POST", "/v1/models/{model}:predict"): FLEET,
    ("POST", "/predict"): FLEET,
    ("GET", "/metrics"): FLEET,
    ("GET", "/ferryman/v1/payloads"): FLEET,
}
GRPC_AUTH = {
    "ServerLive": LIVENESS,
    "ServerReady": FLEET,
    "ModelReady": FLEET,
    "ServerMetadata": FLEET,
    "ModelMetadata": FLEET,
    "ModelInfer": FLEET,
}
GATEWAY_AUTH = {
    ("GET", "/metrics"): OPEN,
    ("GET", "/-/healthz"): OPEN,
    ("GET", "/v2/health/live"): OPEN,
    ("GET", "/v2/health/ready"): OPEN,
    ("GET", "/-/held"): OPEN,
    ("GET", "/v2"): OPEN,  # the server metadata: names and extensions, nothing of a request
    ("GET", "/v2/models/{endpoint}"): ENDPOINT_TOKEN,
    ("GET", "/v2/models/{endpoint}/ready"): ENDPOINT_TOKEN,
    ("POST", "/v2/models/{endpoint}/infer"): ENDPOINT_TOKEN,
    ("GET", "/v2/models/{endpoint}/versions/{version}"): ENDPOINT_TOKEN,
    ("GET", "/v2/models/{endpoint}/versions/{version}/ready"): ENDPOINT_TOKEN,
    ("POST", "/v2/models/{endpoint}/versions/{version}/infer"): ENDPOINT_TOKEN,
    ("POST", "/v1/models/{endpoint}:predict"): ENDPOINT_TOKEN,
    ("POST", "/endpoints/{endpoint}/predict"): ENDPOINT_TOKEN,
}
BODY = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}'


@dataclass(frozen=True)
class DataPlane:
    replica: str
    grpc_address: str
    gateway: str


@pytest.fixture(scope="module")
def data_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    """A replica with the fleet secret (REST and gRPC) behind a gateway that holds it;
    endpoint ``digits`` requires its inference token, ``other`` does not."""
    tmp_path = tmp_path_factory.mktemp("census")
    model = tmp_path / "tiny.onnx"
    model.write_bytes(serving_conftest.affine_model())
    replica_port, grpc_port, gateway_port = free_port(), free_port(), free_port()
    backend = f"http://127.0.0.1:{replica_port}"
    digits = endpoint(
        VariantRoute(name="v1", model="tiny", version=1, weight=100, backends=(backend,)),
        require_token=True,
    )
    other = digits.model_copy(update={"endpoint": "other", "require_token": False})
    tokens = {token_digest(DIGITS_TOKEN): "digits", token_digest(OTHER_TOKEN): "other"}
    routes = tmp_path / "routes.json"
    routes.write_text(
        table(digits, other).model_copy(update={"inference_tokens": tokens}).model_dump_json()
    )
    data = ["--data-dir", str(tmp_path / "data")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRYMAN_")}
    processes = [
        subprocess.Popen(
            [FERRYMAN, "serve", str(model), "--name", "tiny", "--port", str(replica_port),
             "--grpc-port", str(grpc_port), *data],
            env={**env, "FERRYMAN_SERVING__TOKEN": FLEET_SECRET},
        ),
        subprocess.Popen(
            [FERRYMAN, "gateway", "--port", str(gateway_port), "--routes-file", str(routes),
             *data],
            env={**env, "FERRYMAN_GATEWAY__REPLICA_TOKEN": FLEET_SECRET},
        ),
    ]  # fmt: skip
    try:
        gateway = f"http://127.0.0.1:{gateway_port}"
        wait_for_gateway(f"{backend}/v2/health/live")
        wait_for_gateway(f"{gateway}/-/healthz")
        yield DataPlane(backend, f"127.0.0.1:{grpc_port}", gateway)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def concrete(template: str, name: str) -> str:
    return template.replace("{model}", name).replace("{endpoint}", name).replace("{version}", "1")


def test_every_replica_route_has_an_auth_decision() -> None:
    exposed = {(m, route.path) for route in ROUTES for m in route.methods or () if m != "HEAD"}
    assert exposed == set(REPLICA_AUTH)
    assert set(RPCS) == set(GRPC_AUTH)


def test_every_gateway_route_has_an_auth_decision() -> None:
    exposed = {("GET", path) for path in OWN_PATHS} | set(proxied_routes())
    assert exposed == set(GATEWAY_AUTH)


def test_a_replica_refuses_every_route_and_method_without_the_fleet_secret(
    data_plane: DataPlane,
) -> None:
    """Nothing on the host reaches a replica's payloads, metrics or inference around the
    gateway: 401 on every route and method (an unknown path too) but liveness."""
    paths = {concrete(path, "tiny") for _, path in REPLICA_AUTH} | {"/nothing/here"}
    live = concrete("/v2/health/live", "tiny")
    for path in sorted(paths):
        for method in METHODS:
            for headers in ({}, bearer("wrong"), bearer(DIGITS_TOKEN),
                            {"authorization": FLEET_SECRET}):  # fmt: skip
                reply = httpx.request(method, data_plane.replica + path, headers=headers)
                if path == live and method == "GET":
                    assert reply.status_code == 200
                    continue
                assert reply.status_code == 401, (method, path, headers)
                assert "Authorization: Bearer" in reply.json()["error"]
                assert b"records" not in reply.content
                assert b"ferryman_" not in reply.content


def test_the_fleet_secret_opens_every_replica_route(data_plane: DataPlane) -> None:
    for method, template in REPLICA_AUTH:
        path = concrete(template, "tiny")
        reply = httpx.request(method, data_plane.replica + path, headers=bearer(FLEET_SECRET),
                              content=BODY if method == "POST" else None)  # fmt: skip
        assert reply.status_code not in (401, 403), (method, path, reply.text)
        if method == "GET" or template.endswith("/infer"):  # the others take other bodies
            assert reply.status_code == 200, (method, path, reply.text)


def test_grpc_refuses_every_rpc_but_server_live_without_the_fleet_secret(
    data_plane: DataPlane,
) -> None:
    with grpc.insecure_channel(data_plane.grpc_address) as channel:
        for name, request_type in RPCS.items():
            call = channel.unary_unary(
                f"/inference.GRPCInferenceService/{name}",
                request_serializer=lambda message: message.SerializeToString(),
                response_deserializer=lambda data: data,
            )
            request = (
                request_type(name="tiny") if hasattr(request_type(), "name") else request_type()
            )
            for metadata in ((), (("authorization", "Bearer wrong"),)):
                if GRPC_AUTH[name] == LIVENESS:
                    call(request, metadata=metadata, timeout=10)
                    continue
                with pytest.raises(grpc.RpcError) as refused:
                    call(request, metadata=metadata, timeout=10)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
            if name == "ModelInfer":
                request = pb.ModelInferRequest(model_name="tiny", inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name="x", datatype="FP32", shape=[1, 4],
                        contents=pb.InferTensorContents(fp32_contents=[1, 2, 3, 4]))])  # fmt: skip
            call(request, metadata=(("authorization", f"Bearer {FLEET_SECRET}"),), timeout=10)


def test_the_gateway_asks_an_endpoint_token_on_every_endpoint_route(
    data_plane: DataPlane,
) -> None:
    for (method, template), decision in GATEWAY_AUTH.items():
        path = concrete(template, "digits")
        body = BODY if method == "POST" else None
        if decision == OPEN:
            assert httpx.request(method, data_plane.gateway + path).status_code == 200, path
            continue
        for headers, status in (
            ({}, 401),
            (bearer("fm_unknown"), 401),
            (bearer(FLEET_SECRET), 401),  # the fleet's secret is not an inference token
            (bearer(OTHER_TOKEN), 403),
        ):
            reply = httpx.request(method, data_plane.gateway + path, headers=headers, content=body)
            assert reply.status_code == status, (method, path, headers, reply.text)
            assert "ferryman-variant" not in reply.headers  # nothing was forwarded
        for other in set(METHODS) - {method}:  # no other method reaches a replica either
            reply = httpx.request(other, data_plane.gateway + path, content=body)
            assert reply.status_code in (401, 404, 405), (other, path)  # 405: a known path
            assert "ferryman-variant" not in reply.headers
        allowed = httpx.request(method, data_plane.gateway + path, headers=bearer(DIGITS_TOKEN),
                                content=body)  # fmt: skip
        assert allowed.status_code not in (401, 403), (method, path, allowed.text)
        assert allowed.headers["ferryman-variant"] == "v1"
        # An endpoint that asks for no token serves without one, through the fleet secret.
        open_path = concrete(template, "other")
        assert httpx.request(
            method, data_plane.gateway + open_path, content=body
        ).status_code not in (401, 403)
