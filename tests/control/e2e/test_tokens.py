"""Issue 14 end to end, with ``ferryman up``, its gateway and a replica as real processes.

An endpoint that requires a token takes its own inference tokens only (401 without, 403
with another endpoint's), a revoked token stops working at the next route-table publish,
and the replica answers nobody but the gateway and the control plane: the fleet secret is
handed over in the environment, and the control plane's probes, scrapes and payload reads
still work with it.
"""

from __future__ import annotations

import json
import os
import stat
import time

import httpx
import pytest

from ferryman.fleet_secret import FLEET_SECRET_FILE
from ferryman.registry import token_digest
from tests.control.e2e.harness import BODY, Stack, wait_for

pytestmark = pytest.mark.e2e


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def create_token(stack: Stack, endpoint: str) -> dict[str, object]:
    created: dict[str, object] = json.loads(
        stack.ferryman("tokens", "create", "--endpoint", endpoint, "--scope", "infer", "--json")
    )
    return created


def test_an_endpoint_token_the_fleet_secret_and_revocation(stack: Stack) -> None:
    mine, theirs = create_token(stack, "m"), create_token(stack, "n")
    token = str(mine["token"])
    stack.ferryman("deploy", "m", "--replicas", "1", "--require-token")
    wait_for(lambda: len(stack.ready_backends("m")) == 1, 60, "a ready replica")
    table = stack.routes()
    assert table is not None
    assert table.endpoints["m"].require_token
    assert table.inference_tokens == {
        token_digest(token): "m",
        token_digest(str(theirs["token"])): "n",
    }
    assert token not in (stack.data_dir / "routes.json").read_text()
    infer = f"{stack.gateway}/v2/models/m/infer"
    wait_for(lambda: httpx.post(infer, content=BODY, headers=bearer(token)).status_code == 200,
             10, "the gateway serves with the token")  # fmt: skip

    assert httpx.post(infer, content=BODY).status_code == 401
    assert httpx.post(infer, content=BODY, headers=bearer(str(theirs["token"]))).status_code == 403
    answer = httpx.post(infer, content=BODY, headers=bearer(token))
    assert answer.status_code == 200
    assert answer.json()["outputs"][0]["data"] == [1.0, 0.0, 3.0, 0.0]

    # Around the gateway, the replica answers nothing but liveness.
    replica = stack.ready_backends("m")[0]
    for method, path in (("GET", "/ferryman/v1/payloads"), ("GET", "/metrics"),
                         ("POST", "/v2/models/m/infer"), ("GET", "/v2/health/ready")):  # fmt: skip
        refused = httpx.request(method, replica + path, content=BODY, headers=bearer(token))
        assert refused.status_code == 401, path
    assert httpx.get(replica + "/v2/health/live").status_code == 200

    # The fleet secret: private on disk, in the children's environment, never their argv.
    secret_file = stack.data_dir / FLEET_SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    gateway_pid = json.loads((stack.data_dir / "gateway.json").read_text())["pid"]
    for pid in (*stack.replica_pids().values(), gateway_pid):
        assert secret.encode() not in open(f"/proc/{pid}/cmdline", "rb").read()  # noqa: SIM115
        assert secret.encode() in open(f"/proc/{pid}/environ", "rb").read()  # noqa: SIM115
    assert httpx.get(replica + "/ferryman/v1/payloads", headers=bearer(secret)).status_code == 200

    # The control plane still collects the replica's payload log (it sends the secret).
    api = f"http://127.0.0.1:{stack.api_port}/api/v1/endpoints/m/payloads"
    admin = bearer((stack.data_dir / "control-token").read_text().strip())
    wait_for(lambda: len(httpx.get(api, headers=admin).json()["records"]) >= 1, 15,
             "payloads collected from the replica")  # fmt: skip

    # Revocation reaches the gateway with the next route table.
    stack.ferryman("tokens", "revoke", str(mine["record"]["id"]))  # type: ignore[index]
    revoked_at = time.monotonic()
    took_s = wait_for(
        lambda: httpx.post(infer, content=BODY, headers=bearer(token)).status_code == 401,
        5, "the revoked token refused",
    )  # fmt: skip
    print(f"revocation took effect at the gateway in {took_s:.2f} s")
    assert time.monotonic() - revoked_at < 5
    assert os.path.exists(stack.data_dir / "routes.json")
