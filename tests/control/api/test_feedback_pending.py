"""Labels for request ids no collected answer has yet are kept for joining, but only up to
``control.max_pending_feedback``: a client sending labels for ids that never come must not
fill the database. Past the cap an item is not kept, and its answer says so. Over real HTTP
on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ferryman.config import ControlSettings, load_settings
from ferryman.registry import CollectedPayload
from tests.control.api.conftest import RunningServer, serving

CAP = 3


@pytest.fixture
def control(tmp_path: Path, database_url: str) -> Iterator[RunningServer]:
    settings = load_settings(data_dir=tmp_path / "data", database_url=database_url,
                             control=ControlSettings(max_pending_feedback=CAP))  # fmt: skip
    with serving(settings) as running:
        yield running


def rate(api: httpx.Client, *ids: str, vote: str = "up") -> httpx.Response:
    return api.post("/api/v1/feedback", json=[{"completion_id": i, "label": vote} for i in ids])


def completion(seq: int, request_id: str) -> CollectedPayload:
    """A completion as the payload collector keeps it."""
    return CollectedPayload(seq=seq, request_id=request_id, time=time.time(), status=200,
                            latency_ms=5.0, kind="completion")  # fmt: skip


def test_labels_waiting_for_their_answers_are_capped(control: RunningServer,
                                                     api: httpx.Client) -> None:  # fmt: skip
    answer = rate(api, "a", "b", "c", "d", "e")
    assert answer.status_code == 200, answer.text
    counts = answer.json()
    assert [item["status"] for item in counts["items"]] == ["unknown_request"] * 3 + [
        "not_kept"
    ] * 2
    assert (counts["unknown"], counts["not_kept"], counts["refused"]) == (3, 2, 2)
    assert "control.max_pending_feedback" in counts["items"][3]["detail"]

    all_over = rate(api, "f")  # nothing of it kept: a 400 that says why
    assert all_over.status_code == 400
    assert "not_kept" in all_over.json()["error"]
    assert rate(api, "a", vote="down").json()["items"][0]["status"] == "corrected"

    control.registry.payloads.add("chat", "v1", ("lm", 1), "inst", [completion(1, "a")])
    joined = rate(api, "f", "g").json()  # "a" joined its answer: room for one more
    assert [item["status"] for item in joined["items"]] == ["unknown_request", "not_kept"]


def test_the_cap_is_off_for_answered_requests(control: RunningServer, api: httpx.Client) -> None:
    rate(api, "x1", "x2", "x3")
    answered = [completion(n, f"r{n}") for n in range(1, 6)]
    control.registry.payloads.add("chat", "v1", ("lm", 1), "inst", answered)
    stored = rate(api, *(f"r{n}" for n in range(1, 6))).json()
    assert stored["stored"] == 5
    assert stored["not_kept"] == 0
