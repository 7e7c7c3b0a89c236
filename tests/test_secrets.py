"""RELIABILITY S6 ``secrets_never_logged``: a secret that goes into Ferryman never comes out.

Each test plants distinct canary strings wherever a secret enters — the control-plane token
and a wrong one in ``Authorization`` headers and the dashboard's login form, a PostgreSQL
password in the registry URL, webhook URLs with ``user:password@`` and ``?token=``, a
webhook's signing secret, the MLflow webhook secret and MLflow sources with credentials,
AWS keys and other ``FERRYMAN_*`` settings in the environment — runs the parts at DEBUG,
then greps everything that comes back out: log files and captured records, ``/metrics``,
error bodies, API listings, dashboard pages, CLI output and process command lines. Zero hits.
Error bodies also never name an absolute path of the machine (data dir, artifact root,
registry file).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from ferryman.config import load_settings
from ferryman.control.api.mlflow import NotImported, resolve_source, sign
from ferryman.control.api.security import TOKEN_FILE
from ferryman.control.monitor.webhooks import RetryPolicy, WebhookSender
from ferryman.errors import InvalidInput, Unavailable
from ferryman.fleet_secret import FLEET_SECRET_FILE
from ferryman.registry import Database, Registry, WebhookTarget
from tests.conftest import make_onnx
from tests.control.e2e.harness import BODY, Stack, wait_for
from tests.control.webhook_receiver import loopback_transport, receiving
from tests.support import free_port


def canary(kind: str) -> str:
    """A string found nowhere else: ``CANARY`` + what it stands for + random hex."""
    return f"CANARY{kind}{secrets.token_hex(8)}"


def leaks(surfaces: dict[str, str], canaries: dict[str, str]) -> list[str]:
    """``surface: canary`` for every canary found in a surface."""
    return [
        f"{where}: {kind}"
        for where, found in surfaces.items()
        for kind, value in canaries.items()
        if value in found
    ]


def absolute_paths(bodies: dict[str, str], paths: list[Path]) -> list[str]:
    return [
        f"{where}: {path}" for where, body in bodies.items() for path in paths if str(path) in body
    ]


# -- the whole stack at DEBUG -----------------------------------------------------------------


@pytest.fixture
def canaries() -> dict[str, str]:
    names = (
        "TOKEN",
        "WRONGTOKEN",
        "DASHWRONG",
        "DBPASSWORD",
        "MLFLOWSECRET",
        "MLFLOWSIG",
        "HOOKUSERINFO",
        "HOOKQUERY",
        "HOOKSECRET",
        "SRCS3",
        "SRCHTTPS",
        "SRCSIGNED",
        "SRCFILE",
        "SRCQUERY",
        "AWSSECRET",
        "AWSKEYID",
        "INFERAUTH",
        "INFERQUERY",
    )
    return {name: canary(name) for name in names}


@pytest.fixture
def leaky_stack(
    tmp_path: Path, postgres_url: str, canaries: dict[str, str]
) -> Iterator[tuple[Stack, str]]:
    """``ferryman up`` at DEBUG on a PostgreSQL registry whose URL carries a password (trust
    auth ignores it), a planted token, secrets in its environment, and ``m`` v1 on 1 replica."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    token_file = data_dir / TOKEN_FILE
    token_file.write_text(canaries["TOKEN"] + "\n")
    token_file.chmod(0o600)
    (tmp_path / "mlflow").mkdir()
    database_url = postgres_url.replace("://root@", f"://root:{canaries['DBPASSWORD']}@")
    assert canaries["DBPASSWORD"] in database_url
    stack = Stack(data_dir)
    stack.extra_env = {
        "FERRYMAN_LOG_LEVEL": "DEBUG",
        "FERRYMAN_LOG_FORMAT": "json",
        "FERRYMAN_DATABASE_URL": database_url,
        "FERRYMAN_CONTROL__MLFLOW_WEBHOOK_SECRET": canaries["MLFLOWSECRET"],
        "FERRYMAN_CONTROL__MLFLOW_IMPORT_DIRS": json.dumps([str(tmp_path / "mlflow")]),
        "FERRYMAN_OUTBOUND__ALLOW": json.dumps(["127.0.0.1:9"]),  # the webhook's receiver
        "AWS_SECRET_ACCESS_KEY": canaries["AWSSECRET"],
        "AWS_ACCESS_KEY_ID": canaries["AWSKEYID"],
    }
    model = tmp_path / "m.onnx"
    model.write_bytes(make_onnx())
    stack.ferryman("register", str(model), "--model", "m")
    stack.up()
    try:
        stack.ferryman("deploy", "m", "--replicas", "1")
        wait_for(lambda: len(stack.ready_backends("m")) == 1, 60, "one ready replica")
        wait_for(lambda: _status(f"{stack.gateway}/v2/models/m/infer", BODY) == 200, 15, "route")
        yield stack, database_url
    finally:
        stack.down()


def _status(url: str, body: bytes) -> int:
    try:
        return httpx.post(url, content=body, timeout=5).status_code
    except httpx.HTTPError:
        return 0


class Surfaces:
    """What came back out of the stack, by where it came from; error bodies apart too."""

    def __init__(self) -> None:
        self.all: dict[str, str] = {}
        self.errors: dict[str, str] = {}

    def answer(self, where: str, answer: httpx.Response, *expected: int) -> httpx.Response:
        assert answer.status_code in expected, (where, answer.status_code, answer.text)
        self.all[where] = f"{answer.headers}\n{answer.text}"
        if answer.status_code >= 400:
            self.errors[where] = answer.text
        return answer


@pytest.mark.e2e
@pytest.mark.postgres
def test_the_stack_at_debug_lets_no_canary_out(
    leaky_stack: tuple[Stack, str], canaries: dict[str, str], tmp_path: Path
) -> None:
    stack, database_url = leaky_stack
    out = Surfaces()
    api = f"http://127.0.0.1:{stack.api_port}"
    auth = {"authorization": f"Bearer {canaries['TOKEN']}"}
    with httpx.Client(base_url=api, timeout=10) as client:
        _control_plane(client, auth, canaries, out)
        _mlflow_webhook(client, canaries, out, tmp_path)
        _listings(client, auth, out)
        _dashboard(api, canaries, out)
    _data_plane(stack, canaries, out)
    out.all["cli alerts webhooks"] = stack.ferryman("alerts", "webhooks")
    out.all["cli events"] = stack.ferryman("events", "--limit", "200", "--json")
    for log in sorted(stack.data_dir.rglob("*.log")):
        out.all[f"log {log.relative_to(stack.data_dir)}"] = log.read_text(errors="replace")
    assert any("DEBUG" in text for where, text in out.all.items() if where.startswith("log "))
    for pid, what in _processes(stack):
        out.all[f"argv of {what}"] = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    # The gateway needs neither the database nor the MLflow secret: it is not given them
    # (what is not Ferryman's, such as AWS keys, it inherits like any child process).
    gateway_pid = json.loads((stack.data_dir / "gateway.json").read_text())["pid"]
    environ = Path(f"/proc/{gateway_pid}/environ").read_bytes().decode()
    assert "FERRYMAN_LOG_LEVEL=DEBUG" in environ
    assert canaries["DBPASSWORD"] not in environ
    assert canaries["MLFLOWSECRET"] not in environ

    # The canaries did go in: the token and the MLflow secret were accepted, the webhook
    # URL is stored whole for the sender.
    registry = Registry.open(load_settings(data_dir=stack.data_dir, database_url=database_url))
    try:
        targets = {target.name: target for target in registry.alerts.webhook_targets()}
    finally:
        registry.close()
    assert canaries["HOOKQUERY"] in targets["query"].url
    assert targets["query"].secret == canaries["HOOKSECRET"]

    found = leaks(out.all, canaries)
    assert found == [], "canaries came out:\n" + "\n".join(found)
    machine_paths = [tmp_path.absolute(), stack.data_dir.absolute(), Path(sys.prefix)]
    assert len(out.errors) >= 12, sorted(out.errors)
    assert absolute_paths(out.errors, machine_paths) == []


def _control_plane(
    client: httpx.Client, auth: dict[str, str], canaries: dict[str, str], out: Surfaces
) -> None:
    wrong = canaries["WRONGTOKEN"]
    out.answer(
        "wrong bearer",
        client.get("/api/v1/models", headers={"authorization": f"Bearer {wrong}"}),
        401,
    )
    out.answer("bare token", client.get("/api/v1/models", headers={"authorization": wrong}), 401)
    out.answer(
        "wrong token on /metrics",
        client.get("/metrics", headers={"authorization": f"Bearer {wrong}"}),
        401,
    )
    out.answer("control /metrics", client.get("/metrics", headers=auth), 200)
    hooks = "/api/v1/alert-webhooks"
    userinfo = f"https://hook-user:{canaries['HOOKUSERINFO']}@hooks.example.com/alerts"
    body = {"url": userinfo, "secret": canaries["HOOKSECRET"]}
    out.answer("webhook with user info", client.put(f"{hooks}/leaky", json=body, headers=auth), 400)
    query = f"http://127.0.0.1:9/alerts?token={canaries['HOOKQUERY']}&team=ml"
    body = {"url": query, "secret": canaries["HOOKSECRET"]}
    out.answer(
        "webhook with a query token", client.put(f"{hooks}/query", json=body, headers=auth), 200
    )
    short = {"url": query, "secret": canaries["HOOKSECRET"][:12]}
    out.answer(
        "webhook secret too short", client.put(f"{hooks}/short", json=short, headers=auth), 400
    )
    bad = {"url": f"ftp://u:{canaries['HOOKUSERINFO']}@h/x?token={canaries['HOOKQUERY']}"}
    out.answer("webhook bad scheme", client.put(f"{hooks}/bad", json=bad, headers=auth), 400)
    unparseable = {"url": f"http://[{canaries['HOOKQUERY']}/x", "secret": canaries["HOOKSECRET"]}
    out.answer(
        "webhook unparseable", client.put(f"{hooks}/bad", json=unparseable, headers=auth), 400
    )
    out.answer("no such model", client.get("/api/v1/models/nosuch", headers=auth), 404)
    upload = client.post("/api/v1/models/m/versions", content=b"not onnx at all", headers=auth)
    out.answer("unsafe upload", upload, 415)
    out.answer(
        "bad deployment",
        client.put("/api/v1/deployments/m", json={"endpoint": "x"}, headers=auth),
        400,
    )


def _mlflow_webhook(
    client: httpx.Client, canaries: dict[str, str], out: Surfaces, tmp_path: Path
) -> None:
    sources = {
        "s3": f"s3://AKIAEXAMPLE:{canaries['SRCS3']}@models/m.onnx",
        "https": f"https://mlflow:{canaries['SRCHTTPS']}@mlflow.example.com/artifacts/m.onnx",
        "signed": f"https://bucket.example.com/m.onnx?X-Amz-Signature={canaries['SRCSIGNED']}",
        "file": f"file://u:{canaries['SRCFILE']}@localhost/srv/mlflow/m.onnx",
        "models": f"models:/m/1?token={canaries['SRCQUERY']}",
    }
    for number, (kind, source) in enumerate(sources.items(), start=1):
        data = {"name": "m", "version": str(number), "source": source}
        answer = _deliver(client, canaries["MLFLOWSECRET"], data)
        out.answer(f"mlflow source {kind}", answer, 200)
        assert answer.json()["status"] == "skipped", answer.text
        out.errors[f"mlflow source {kind}"] = answer.text
    forged = _deliver(client, canaries["MLFLOWSIG"], {"name": "m", "version": "9", "source": "/x"})
    out.answer("mlflow wrong secret", forged, 401)


def _deliver(client: httpx.Client, secret: str, data: dict[str, str]) -> httpx.Response:
    body = json.dumps({"entity": "model_version", "action": "created", "data": data}).encode()
    delivery, timestamp = secrets.token_hex(8), str(int(time.time()))
    headers = {
        "x-mlflow-delivery-id": delivery,
        "x-mlflow-timestamp": timestamp,
        "x-mlflow-signature": sign(secret, delivery, timestamp, body),
        "content-type": "application/json",
    }
    return client.post("/api/v1/webhooks/mlflow", content=body, headers=headers)


def _listings(client: httpx.Client, auth: dict[str, str], out: Surfaces) -> None:
    """Every GET route of the API whose path parameters name what the stack has."""
    schema = out.answer("openapi", client.get("/openapi.json", headers=auth), 200).json()
    values = {"model": "m", "endpoint": "m", "version": "1"}
    for path, operations in schema["paths"].items():
        names = re.findall(r"{(\w+)}", path)
        if "get" not in operations or any(name not in values for name in names):
            continue
        url = path.format(**values)
        declared = {param["name"] for param in operations["get"].get("parameters", [])}
        params = {"limit": 500} if "limit" in declared else {}
        out.answer(f"GET {url}", client.get(url, headers=auth, params=params), 200, 404)


def _dashboard(api: str, canaries: dict[str, str], out: Surfaces) -> None:
    with httpx.Client(base_url=api, timeout=10) as browser:
        refused = browser.post("/ui/login", data={"token": canaries["DASHWRONG"]})
        out.answer("dashboard wrong token", refused, 401)
        out.answer(
            "dashboard login", browser.post("/ui/login", data={"token": canaries["TOKEN"]}), 303
        )
        for page in ("/ui/", "/ui/models", "/ui/models/m", "/ui/endpoints/m", "/ui/events"):
            out.answer(f"dashboard {page}", browser.get(page), 200)
        for listing in ("/api/v1/endpoints", "/api/v1/events", "/api/v1/alert-webhooks"):
            out.answer(f"dashboard JSON {listing}", browser.get(listing), 200)


def _data_plane(stack: Stack, canaries: dict[str, str], out: Surfaces) -> None:
    headers = {"authorization": f"Bearer {canaries['INFERAUTH']}"}
    query = {"api_key": canaries["INFERQUERY"]}
    replica = stack.ready_backends("m")[0]
    refused = httpx.post(f"{replica}/v2/models/m/infer", content=BODY, headers=headers)
    out.answer("replica without the fleet secret", refused, 401)
    fleet = {"authorization": f"Bearer {(stack.data_dir / FLEET_SECRET_FILE).read_text().strip()}"}
    for name, base, path, sent in (
        ("gateway", stack.gateway, "/v2/models/m/infer", headers),
        ("replica", replica, "/v2/models/m/infer", fleet),  # only the fleet gets through
    ):
        with httpx.Client(base_url=base, timeout=10, headers=sent, params=query) as client:
            out.answer(f"{name} infer", client.post(path, content=BODY), 200)
            out.answer(f"{name} bad body", client.post(path, content=b'{"inputs": 7}'), 400)
            out.answer(
                f"{name} no such model", client.post("/v2/models/nosuch/infer", content=BODY), 404
            )
            out.answer(f"{name} /metrics", client.get("/metrics"), 200)


def _processes(stack: Stack) -> list[tuple[int, str]]:
    assert stack.process is not None
    found = [(stack.process.pid, "ferryman up")]
    found += [(pid, f"replica {name}") for name, pid in stack.replica_pids().items()]
    found.append((json.loads((stack.data_dir / "gateway.json").read_text())["pid"], "gateway"))
    return [(pid, what) for pid, what in found if Path(f"/proc/{pid}").exists()]


# -- the parts, in this process at DEBUG -------------------------------------------------------


def test_webhook_deliveries_log_neither_url_nor_secret(caplog: pytest.LogCaptureFixture) -> None:
    """A failing receiver and an unreachable one: every attempt and the giving up is logged,
    by the webhook's name only."""
    token, secret = canary("HOOKQUERY"), canary("HOOKSECRET")
    caplog.set_level(logging.DEBUG)
    sender = WebhookSender(
        RetryPolicy(max_attempts=2, base_s=0.01, max_s=0.01, timeout_s=2),
        transport=loopback_transport(),
    )
    sender.start()
    try:
        with receiving(fail_first=10) as receiver:
            targets = [
                WebhookTarget(
                    name="failing", url=f"{receiver.url}/{token}?token={token}", secret=secret
                ),
                WebhookTarget(
                    name="unreachable",
                    url=f"http://127.0.0.1:{free_port()}/x?token={token}",
                    secret=secret,
                ),
            ]
            for target in targets:
                assert sender.send(target, "alert.fired", {"rule": "r", "token_seen": False})
            wait_for(lambda: sender.given_up == 2, 10, "both deliveries given up")
            assert len(receiver.received) == 2
    finally:
        sender.stop()
    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "failing" in logged
    assert "unreachable" in logged
    assert token not in logged
    assert secret not in logged


@pytest.mark.parametrize(
    ("source", "still_shown"),
    [
        ("s3://AKIAEXAMPLE:{c}@bucket/m.onnx", "s3://***@bucket/m.onnx"),
        ("https://user:{c}@mlflow.example.com/m.onnx", "mlflow.example.com/m.onnx"),
        ("https://{c}@github.com/org/repo/m.onnx", "github.com/org/repo"),
        ("https://bucket.example.com/m.onnx?X-Amz-Signature={c}", "X-Amz-Signature=***"),
        ("models:/m/1?token={c}", "models:/m/1"),
        ("file://u:{c}@localhost/srv/m.onnx", "file://***@localhost/srv/m.onnx"),
        ("http://[{c}/m.onnx", "cannot be parsed"),
        ("relative/m.onnx#{c}", "relative/m.onnx#***"),
    ],
)
def test_refused_mlflow_sources_are_quoted_without_credentials(
    source: str, still_shown: str, tmp_path: Path
) -> None:
    secret = canary("SRC")
    with pytest.raises(NotImported) as refused:
        resolve_source(source.format(c=secret), (tmp_path,))
    assert secret not in refused.value.message
    assert still_shown in refused.value.message


def test_the_sqlite_registry_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    registry = Registry.open(load_settings(data_dir=tmp_path / "data"))
    try:
        registry.alerts.put_webhook("w", "http://127.0.0.1:9/x", canary("HOOKSECRET"), "test")
    finally:
        registry.close()
    files = sorted((tmp_path / "data").glob("registry.db*"))
    assert files[0].name == "registry.db"
    modes = {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in files}
    assert set(modes.values()) == {"0o600"}, modes


def test_a_failed_statement_does_not_quote_its_values(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'r.db'}")
    secret = canary("PARAM")
    try:
        with database.reading() as session:
            session.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY)"))
        with pytest.raises(Exception) as failed:  # noqa: PT011 - any error, its text is the point
            database.write(
                lambda session: session.execute(
                    text("INSERT INTO t VALUES (:k), (:k)"), {"k": secret}
                )
            )
    finally:
        database.dispose()
    assert "INSERT INTO t" in str(failed.value)
    assert secret not in str(failed.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://root:{c}@127.0.0.1:{port}/test",
        "postgresql+psycopg://root:{c}@127.0.0.1:{port}/test?password={c}",
        "postgresql+psycopg://{c}@127.0.0.1:{port}/test",
    ],
)
def test_an_unreachable_database_is_a_clear_error_without_credentials(url: str) -> None:
    secret = canary("DBPASSWORD")
    database = Database(url.format(c=secret, port=free_port()))
    try:
        with pytest.raises(Unavailable) as refused:
            database.migrate()
    finally:
        database.dispose()
    message = refused.value.message
    assert "127.0.0.1" in message
    assert "cannot be reached" in message
    assert secret not in message


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://root:{c}@127.0.0.1:port{c}/test", "{c} is no URL", "mysql://u:{c}@h/d"],
)
def test_a_bad_database_url_is_refused_without_quoting_it(url: str) -> None:
    secret = canary("DBPASSWORD")
    with pytest.raises(InvalidInput) as refused:
        Database(url.format(c=secret))
    assert secret not in refused.value.message


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("FERRYMAN_DATABASE_URL", "postgresql+psycopg://root:{c}@127.0.0.1:{port}/test"),
        ("FERRYMAN_DATABASE_URL", "postgresql+psycopg://root:{c}@127.0.0.1:x{c}/test"),
        ("FERRYMAN_CONTROL__PROMETHEUS_URL", "http://prom:{c}@127.0.0.1:9090"),
    ],
)
def test_the_cli_at_debug_names_bad_settings_without_their_secrets(
    setting: str, value: str, tmp_path: Path
) -> None:
    secret = canary("SETTING")
    env = {key: val for key, val in os.environ.items() if not key.startswith("FERRYMAN_")}
    env |= {
        "FERRYMAN_DATA_DIR": str(tmp_path / "data"),
        "FERRYMAN_LOG_LEVEL": "DEBUG",
        setting: value.format(c=secret, port=free_port()),
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ferryman")), "models", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: "), done.stderr
    assert secret not in done.stdout + done.stderr
    assert str(tmp_path) not in done.stderr


@pytest.mark.e2e
def test_a_replica_with_a_shared_cache_url_keeps_its_password(tmp_path: Path) -> None:
    """``serving.cache_redis_url`` with a password, its server unreachable: every request
    fails with 500, and neither the answer, the log at DEBUG nor ``/metrics`` quotes it."""
    password, header, query = canary("REDIS"), canary("INFERAUTH"), canary("INFERQUERY")
    model = tmp_path / "m.onnx"
    model.write_bytes(make_onnx())
    port = free_port()
    env = {key: val for key, val in os.environ.items() if not key.startswith("FERRYMAN_")}
    env |= {
        "FERRYMAN_LOG_LEVEL": "DEBUG",
        "FERRYMAN_LOG_FORMAT": "json",
        "FERRYMAN_SERVING__CACHE_REDIS_URL": f"redis://ferryman:{password}@127.0.0.1:{free_port()}/0",
    }
    log = tmp_path / "replica.log"
    with log.open("wb") as sink:
        replica = subprocess.Popen(
            [str(Path(sys.executable).with_name("ferryman")), "serve", str(model),
             "--port", str(port)],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _status(f"{url}/v2/models/m/infer", BODY) == 500, 30, "replica")
        with httpx.Client(base_url=url, timeout=10) as client:
            headers, params = {"authorization": f"Bearer {header}"}, {"token": query}
            answer = client.post("/v2/models/m/infer", content=BODY, headers=headers, params=params)
            metrics = client.get("/metrics").text
        argv = Path(f"/proc/{replica.pid}/cmdline").read_bytes().decode()
    finally:
        replica.terminate()
        replica.wait(timeout=30)
    assert answer.status_code == 500
    logged = log.read_text()
    assert '"level": "ERROR"' in logged  # the failure is logged, with its traceback
    surfaces = {"answer": answer.text, "log": logged, "metrics": metrics, "argv": argv}
    assert leaks(surfaces, {"REDIS": password, "AUTH": header, "QUERY": query}) == []
    assert str(tmp_path) not in answer.text
