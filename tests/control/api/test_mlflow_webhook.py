"""MLflow's model-registry webhook against the real server: signed deliveries import local
ONNX files and move aliases; nothing unsigned, stale, remote or outside the import
directory gets in, and every refusal says why."""

from __future__ import annotations

import json
import os
import pickle
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ferryman.config import ControlSettings, load_settings
from ferryman.control.api.mlflow import sign
from ferryman.control.rollouts.controller import RolloutController
from ferryman.control.rollouts.observer import Sources
from ferryman.registry import DeploymentSpec, VariantSpec
from tests.control.api.conftest import RunningServer, start_server

SECRET = "mlflow-shared-secret"


@pytest.fixture
def imports(tmp_path: Path) -> Path:
    folder = tmp_path / "mlflow-models"
    folder.mkdir()
    return folder


@pytest.fixture
def server(tmp_path: Path, imports: Path) -> Iterator[RunningServer]:
    control = ControlSettings(
        mlflow_webhook_secret=SECRET,
        mlflow_import_dirs=(imports,),
        mlflow_models={"Fraud Detector": "fraud"},
    )
    settings = load_settings(data_dir=tmp_path / "data", control=control)
    uvicorn_server, thread, running = start_server(settings)
    yield running
    uvicorn_server.should_exit = True
    thread.join(timeout=10)
    running.registry.close()


def deliver(
    url: str,
    entity: str,
    action: str,
    data: dict[str, Any],
    *,
    secret: str = SECRET,
    age_s: float = 0,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a delivery the way MLflow does: JSON body, id, timestamp, v1 signature."""
    document = {"entity": entity, "action": action, "timestamp": "2026-12-08T10:00:00+00:00"}
    body = json.dumps({**document, "data": data}).encode()
    delivery_id, stamp = str(uuid.uuid4()), str(int(time.time() - age_s))
    sent = {
        "content-type": "application/json",
        "x-mlflow-delivery-id": delivery_id,
        "x-mlflow-timestamp": stamp,
        "x-mlflow-signature": sign(secret, delivery_id, stamp, body),
        **(headers or {}),
    }
    return httpx.post(f"{url}/api/v1/webhooks/mlflow", content=body, headers=sent)


def created(name: str, version: str, source: str) -> dict[str, Any]:
    return {"name": name, "version": version, "source": source, "run_id": "abcd1234",
            "tags": {}, "description": "from MLflow"}  # fmt: skip


def model_dir(root: Path, onnx: bytes, name: str = "model") -> Path:
    """An MLflow ONNX model directory: MLmodel and model.onnx."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors:\n  onnx:\n    data: model.onnx\n")
    (folder / "model.onnx").write_bytes(onnx)
    return folder


def test_a_new_mlflow_version_is_imported_and_its_policy_rolls_it_out(
    server: RunningServer, imports: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    registry = server.registry
    registry.register("digits", onnx_bytes(), "t")
    spec = DeploymentSpec(endpoint="digits", variants=(VariantSpec(model="digits", version=1),))
    registry.deployments.put(spec, "t")
    registry.policies.put("digits", "digits", "registered", {}, "t")
    source = model_dir(imports, onnx_bytes(seed_value=2.0))

    answer = deliver(server.url, "model_version", "created",
                     created("digits", "7", f"file://{source}"))  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "imported", "model": "digits", "version": 2}
    version = registry.get_version("digits", 2)
    assert version.tags["mlflow.version"] == "7"
    assert version.tags["mlflow.run_id"] == "abcd1234"
    assert version.created_by == "mlflow-webhook"
    events = [e for e in registry.list_events("digits") if e.object_type == "webhook"]
    assert events[-1].action == "webhook.imported"
    assert events[-1].details["mlflow"] == "digits v7"

    RolloutController(registry, Sources(dict)).tick()  # the policy fires as for any version
    rollouts = registry.rollouts.list("digits")
    assert [(r.baseline.version, r.candidate.version) for r in rollouts] == [(1, 2)]

    again = deliver(server.url, "model_version", "created",
                    created("digits", "7", f"file://{source}"))  # fmt: skip
    assert again.json() == {"status": "duplicate", "model": "digits", "version": 2}
    assert len(registry.list_versions("digits")) == 2


def test_an_mlflow_alias_moves_the_imported_version_s_alias(
    server: RunningServer, imports: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    source = model_dir(imports, onnx_bytes())
    deliver(server.url, "model_version", "created",
            created("Fraud Detector", "3", str(source / "model.onnx")))  # fmt: skip
    answer = deliver(server.url, "model_version_alias", "created",
                     {"name": "Fraud Detector", "alias": "candidate", "version": "3"})  # fmt: skip
    assert answer.json() == {"status": "aliased", "model": "fraud", "alias": "candidate",
                             "version": 1}  # fmt: skip
    assert server.registry.get_version("fraud", "candidate").version == 1
    unknown = deliver(server.url, "model_version_alias", "created",
                      {"name": "Fraud Detector", "alias": "candidate", "version": "4"})  # fmt: skip
    assert unknown.json()["status"] == "skipped"
    assert "v4 was never imported" in unknown.json()["reason"]


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"headers": {"x-mlflow-signature": ""}}, 401, "x-mlflow-signature header is missing"),
        ({"secret": "not-the-secret"}, 401, "signature does not match"),
        ({"headers": {"x-mlflow-signature": "v1,AAAA"}}, 401, "signature does not match"),
        ({"age_s": 600}, 400, "more than 300 s either way"),
        ({"age_s": -600}, 400, "more than 300 s either way"),
        ({"headers": {"x-mlflow-timestamp": "yesterday"}}, 400, "Unix seconds"),
        ({"headers": {"x-mlflow-delivery-id": "../../x"}}, 400, "1-64 letters"),
    ],
)
def test_unsigned_forged_and_stale_deliveries_are_refused(
    server: RunningServer,
    imports: Path,
    onnx_bytes: Callable[..., bytes],
    change: dict[str, Any],
    status: int,
    message: str,
) -> None:
    source = model_dir(imports, onnx_bytes())
    answer = deliver(server.url, "model_version", "created",
                     created("digits", "1", str(source)), **change)  # fmt: skip
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert server.registry.list_models() == []


def test_a_body_changed_in_transit_is_refused(server: RunningServer) -> None:
    body = json.dumps({"entity": "model_version", "action": "created", "data": {}}).encode()
    delivery_id, stamp = "d-1", str(int(time.time()))
    headers = {"x-mlflow-delivery-id": delivery_id, "x-mlflow-timestamp": stamp,
               "x-mlflow-signature": sign(SECRET, delivery_id, stamp, body)}  # fmt: skip
    tampered = body.replace(b"created", b"deleted")
    answer = httpx.post(f"{server.url}/api/v1/webhooks/mlflow", content=tampered, headers=headers)
    assert answer.status_code == 401


class Listener:
    """A TCP listener on 127.0.0.1 that counts connections: a server fetching a URL from the
    payload would show up here."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.hits += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close()


def test_sources_that_are_not_a_contained_local_onnx_file_are_never_imported(
    server: RunningServer, imports: Path, tmp_path: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    """RELIABILITY S5 and B6 at the webhook: remote URIs are not fetched (0 hits on a
    listener they name), and traversal, symlinks, other directories and pickles are refused."""
    outside = model_dir(tmp_path / "elsewhere", onnx_bytes())
    (imports / "link").symlink_to(outside, target_is_directory=True)
    (imports / "file-link.onnx").symlink_to(outside / "model.onnx")
    (imports / "empty").mkdir()
    (imports / "model.pkl").write_bytes(pickle.dumps({"weights": [1, 2]}))
    listener = Listener()
    port = listener.port
    sources = {
        "models:/m-0123456789": "not a local file",
        "runs:/abcd/model": "not a local file",
        "s3://bucket/model.onnx": "not a local file",
        f"http://127.0.0.1:{port}/model.onnx": "not a local file",
        f"file://127.0.0.1:{port}/model.onnx": "not a local file",
        f"{imports}/../elsewhere/model/model.onnx": "not a plain absolute path",
        f"file://{imports}/%2e%2e/elsewhere/model": "not a plain absolute path",
        "relative/model.onnx": "not a plain absolute path",
        f"{imports}/x\0.onnx": "not a plain absolute path",
        str(outside): "outside control.mlflow_import_dirs",
        f"{imports}/link": "symlink",
        f"{imports}/file-link.onnx": "symlink",
        f"{imports}/empty": "does not exist",
        f"{imports}/missing.onnx": "does not exist",
        f"{imports}/model.pkl": "pickle",
    }
    try:
        for number, (source, reason) in enumerate(sources.items(), 1):
            answer = deliver(server.url, "model_version", "created",
                             created("digits", str(number), source))  # fmt: skip
            assert answer.status_code == 200, (source, answer.text)
            assert answer.json()["status"] == "skipped", source
            assert reason in answer.json()["reason"], (source, answer.json())
        time.sleep(0.3)
    finally:
        listener.close()
    assert listener.hits == 0
    assert server.registry.list_models() == []
    skipped = [e for e in server.registry.list_events(limit=100) if e.action == "webhook.skipped"]
    assert len(skipped) == len(sources)
    assert all(e.details["reason"] for e in skipped)


def test_other_events_are_ignored_and_bad_names_explained(
    server: RunningServer, imports: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    assert deliver(server.url, "registered_model", "created", {"name": "x"}).json() == {
        "status": "ignored", "reason": "registered_model.created",
    }  # fmt: skip
    source = model_dir(imports, onnx_bytes())
    answer = deliver(server.url, "model_version", "created",
                     created("Some Model", "1", str(source)))  # fmt: skip
    assert "map it in control.mlflow_models" in answer.json()["reason"]
    answer = deliver(server.url, "model_version", "created", {"name": "digits", "version": "1"})
    assert "data.source is missing" in answer.json()["reason"]


def test_without_a_secret_or_import_directory_nothing_gets_in(
    tmp_path: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    uvicorn_server, thread, running = start_server(settings)
    try:
        answer = deliver(running.url, "model_version", "created", created("d", "1", "/x"))
        assert answer.status_code == 401
        assert "no MLflow webhook secret is configured" in answer.json()["error"]
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=10)
        running.registry.close()
    control = ControlSettings(mlflow_webhook_secret=SECRET)
    settings = load_settings(data_dir=tmp_path / "data2", control=control)
    uvicorn_server, thread, running = start_server(settings)
    try:
        folder = model_dir(tmp_path, onnx_bytes())
        answer = deliver(running.url, "model_version", "created", created("d", "1", str(folder)))
        assert answer.json()["reason"].startswith("no control.mlflow_import_dirs is configured")
        assert running.registry.list_models() == []
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=10)
        running.registry.close()


def test_the_secret_never_appears_in_answers_or_events(
    server: RunningServer, imports: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    """S6: the shared secret is not echoed anywhere a caller could read it."""
    source = model_dir(imports, onnx_bytes())
    answers = [
        deliver(server.url, "model_version", "created", created("digits", "1", str(source))),
        deliver(server.url, "model_version", "created", created("d", "2", "/x"), secret="bad"),
    ]
    events = json.dumps([e.model_dump(mode="json") for e in server.registry.list_events()])
    assert all(SECRET not in a.text for a in answers)
    assert SECRET not in events
    assert SECRET not in repr(server.settings)
    assert os.environ.get("FERRYMAN_CONTROL__MLFLOW_WEBHOOK_SECRET") is None


def signed(
    entity: str, action: str, data: dict[str, Any], *, age_s: float = 0
) -> tuple[bytes, dict[str, str]]:
    """One delivery's exact bytes and headers, to post (and post again) as they are."""
    body = json.dumps({"entity": entity, "action": action, "data": data}).encode()
    delivery_id, stamp = str(uuid.uuid4()), str(int(time.time() - age_s))
    return body, {
        "content-type": "application/json",
        "x-mlflow-delivery-id": delivery_id,
        "x-mlflow-timestamp": stamp,
        "x-mlflow-signature": sign(SECRET, delivery_id, stamp, body),
    }


def _two_imported_versions(url: str, imports: Path, onnx_bytes: Callable[..., bytes]) -> None:
    for mlflow_version, seed in (("1", 1.0), ("3", 3.0)):
        source = model_dir(imports, onnx_bytes(seed_value=seed), name=f"m{mlflow_version}")
        answer = deliver(url, "model_version", "created",
                         created("digits", mlflow_version, str(source)))  # fmt: skip
        assert answer.json()["status"] == "imported", answer.text


def test_a_replayed_delivery_is_refused_even_after_a_restart(
    server: RunningServer, imports: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    """Issue 14: re-posting a signed alias move within its window moved production back."""
    _two_imported_versions(server.url, imports, onnx_bytes)
    registry = server.registry
    body, headers = signed("model_version_alias", "created",
                           {"name": "digits", "alias": "production", "version": "3"})  # fmt: skip
    endpoint = f"{server.url}/api/v1/webhooks/mlflow"
    assert httpx.post(endpoint, content=body, headers=headers).json()["status"] == "aliased"
    assert registry.get_version("digits", "production").version == 2
    registry.set_alias("digits", "production", 1, "operator")

    replay = httpx.post(endpoint, content=body, headers=headers)
    assert replay.status_code == 409, replay.text
    assert "already received" in replay.json()["error"]
    assert headers["x-mlflow-delivery-id"] in replay.json()["error"]
    assert registry.get_version("digits", "production").version == 1

    settings = server.settings  # a new control plane on the same registry
    restarted, thread, running = start_server(settings)
    try:
        again = httpx.post(f"{running.url}/api/v1/webhooks/mlflow", content=body, headers=headers)
        assert again.status_code == 409, again.text
        assert "already received" in again.json()["error"]
        assert running.registry.get_version("digits", "production").version == 1
    finally:
        restarted.should_exit = True
        thread.join(timeout=10)
        running.registry.close()


def test_an_alias_move_older_than_the_alias_s_last_change_is_refused(
    server: RunningServer, imports: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    _two_imported_versions(server.url, imports, onnx_bytes)
    registry = server.registry
    registry.set_alias("digits", "production", 1, "operator")
    move = {"name": "digits", "alias": "production", "version": "3"}
    body, headers = signed("model_version_alias", "created", move, age_s=120)  # before it
    answer = httpx.post(f"{server.url}/api/v1/webhooks/mlflow", content=body, headers=headers)
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert "digits@production was changed at" in error
    assert "by operator" in error
    assert "stale move is refused" in error
    assert registry.get_version("digits", "production").version == 1
    refused = [e for e in registry.list_events("digits") if e.action == "webhook.refused"]
    assert len(refused) == 1
    assert refused[0].details["reason"] == error

    fresh_body, fresh = signed("model_version_alias", "created", move)
    moved = httpx.post(f"{server.url}/api/v1/webhooks/mlflow", content=fresh_body, headers=fresh)
    assert moved.json()["status"] == "aliased", moved.text  # a move sent after it still goes
    assert registry.get_version("digits", "production").version == 2
