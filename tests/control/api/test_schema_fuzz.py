"""RELIABILITY B1 on the control plane: schemathesis over its own OpenAPI, against the server.

The real server on 127.0.0.1, a SQLite registry holding model ``m`` (versions 1 and 2, alias
``production``), endpoint ``m`` and a rollout, and the bearer token on every request, so the
routes run past authentication. Each operation gets valid and invalid requests (positive and
negative generation), half of them with the path naming the real objects. Every answer must
be below 500 and must be what the published schema says: a declared status, a declared
content type, and a body matching the declared schema (errors are ``{"error": str}``).

Failures are collected rather than raised, so one run reports every distinct failure. By
default 40 seeded examples per operation (seconds); ``-m soak`` runs 1 000.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ferryman.config import ControlSettings, load_settings
from ferryman.registry import DeploymentSpec, TokenRole, VariantSpec
from tests.conftest import make_onnx
from tests.control.api.conftest import RunningServer, start_server

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
CANARY = {
    "steps": [50, 100], "interval_s": 5, "threshold": 1,
    "gates": {"min_requests": 10, "min_success_rate": 0.95},
}  # fmt: skip


@dataclass
class Figures:
    """What a fuzz run did: examples per operation and each distinct failure once."""

    examples: Counter[str] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[RunningServer, dict[str, str]]]:
    """The server over a registry with real objects, and the path values that name them."""
    settings = load_settings(
        data_dir=tmp_path / "data", control=ControlSettings(max_upload_bytes=64 * 1024)
    )
    server, thread, running = start_server(settings)
    registry = running.registry
    for seed in (0.0, 1.0):
        registry.register("m", make_onnx(seed_value=seed), "t")
    registry.deployments.put(
        DeploymentSpec(endpoint="m", variants=(VariantSpec(model="m", version=1),)), "t"
    )
    registry.set_alias("m", "production", 1, "t")
    rollout = httpx.post(
        running.url + "/api/v1/rollouts",
        json={"endpoint": "m", "version": 2, "strategy": "canary", "plan": CANARY},
        headers={"authorization": f"Bearer {running.token}"},
    )
    assert rollout.status_code == 201, rollout.text
    token = registry.tokens.create("fuzz", TokenRole.VIEWER, "t")
    real = {
        "model": "m", "version": "1", "alias": "production", "endpoint": "m",
        "rollout_id": str(rollout.json()["id"]), "name": "fuzz", "run_id": "none",
        "token_id": str(token.record.id),
        "job_id": "none",
    }  # fmt: skip
    yield running, real
    server.should_exit = True
    thread.join(timeout=10)
    registry.close()


def fuzz(running: RunningServer, real: dict[str, str], examples: int) -> Figures:
    """``examples`` generated requests to every operation; the failures, one of each kind."""
    headers = {"authorization": f"Bearer {running.token}"}
    schema = schemathesis.openapi.from_url(running.url + "/openapi.json", headers=headers)
    figures = Figures()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result  # narrows Ok | Err for the type checker
            operation = result.ok()
            named = {p.name: real[p.name] for p in operation.path_parameters}
            strategies = [
                operation.as_strategy(generation_mode=mode, path_parameters=path)
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                for path in ([{}, named] if named else [{}])
            ]  # fmt: skip

            @settings(
                max_examples=examples, derandomize=True, database=None, deadline=None,
                phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
            )  # fmt: skip
            @given(case=st.one_of(strategies))
            def call(case: Case[APIOperation[Any, Any, Any, Any]]) -> None:
                label = case.operation.label
                figures.examples[label] += 1
                try:
                    case.call_and_validate(session=session, headers=headers, checks=CHECKS)
                except BaseExceptionGroup as failure:  # schemathesis' FailureGroup
                    figures.failures.setdefault(f"{label}: {failure.message[:60]}", str(failure))

            call()
    return figures


def report(figures: Figures, seconds: float, examples: int) -> str:
    """Requests, time, the operations that ran out of distinct inputs first, the failures."""
    short = {label: n for label, n in figures.examples.items() if n < examples}
    return (
        f"{len(figures.examples)} operations, {figures.examples.total()} requests in "
        f"{seconds:.0f} s; {len(figures.examples) - len(short)} operations got {examples} "
        f"examples, these fewer (their inputs ran out): {short}; "
        f"{len(figures.failures)} failures:\n" + "\n\n".join(figures.failures.values())
    )


def test_every_operation_answers_as_its_schema_says(
    seeded: tuple[RunningServer, dict[str, str]],
) -> None:
    started, examples = time.monotonic(), 40
    figures = fuzz(*seeded, examples)
    assert len(figures.examples) >= 40, report(figures, time.monotonic() - started, examples)
    assert not figures.failures, report(figures, time.monotonic() - started, examples)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_1000_examples_per_operation(
    seeded: tuple[RunningServer, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    started, examples = time.monotonic(), 1000
    figures = fuzz(*seeded, examples)
    with capsys.disabled():
        print("\n" + report(figures, time.monotonic() - started, examples))
    assert not figures.failures, report(figures, time.monotonic() - started, examples)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        # A single feedback object (not a list) was a 500: the list's length limit was applied
        # to the object too.
        ("POST", "/api/v1/feedback", {"request_id": "r1", "label": "a"}, 200),
        # Numbers past the database's integers were 500s (OverflowError in SQLite's driver,
        # or int() of 5 000 digits); a version past 2**31 overflows PostgreSQL's INTEGER.
        ("GET", "/api/v1/events?after_id=2457719953988899569664", None, 400),
        ("GET", "/api/v1/endpoints/m/payloads?version=2147483648", None, 400),
        ("GET", "/api/v1/models/m/versions/99999999999999999999", None, 400),
        ("GET", "/api/v1/models/m/versions/" + "9" * 5000, None, 400),
        ("PUT", "/api/v1/models/m/aliases/prod", {"version": 2**63}, 400),
        ("DELETE", "/api/v1/tokens/99999999999999999999", None, 400),
    ],
)
def test_the_5xx_the_fuzz_found_stay_fixed(
    seeded: tuple[RunningServer, dict[str, str]],
    method: str,
    path: str,
    body: object,
    status: int,
) -> None:
    running, _ = seeded
    answer = httpx.request(
        method, running.url + path, json=body,
        headers={"authorization": f"Bearer {running.token}"},
    )  # fmt: skip
    assert answer.status_code == status, answer.text
    assert answer.status_code == 200 or "error" in answer.json()
