"""The payload log and feedback in the registry, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from ferryman.errors import InvalidInput
from ferryman.protocol.payload_sampling import is_logged
from ferryman.registry import (
    CollectedPage,
    CollectedPayload,
    Feedback,
    FeedbackStatus,
    PayloadTotals,
    Registry,
)


def record(
    seq: int, *, prediction: str = "7", status: int = 200, age_s: float = 0
) -> CollectedPayload:
    return CollectedPayload(
        seq=seq, request_id=f"req-{seq}", time=time.time() - age_s, status=status,
        latency_ms=1.5, predictions=[prediction] if status == 200 else None,
        summaries={"mean_intensity": [0.25]},
    )  # fmt: skip


def test_collecting_is_idempotent_per_replica_instance(registry: Registry) -> None:
    payloads = registry.payloads
    batch = [record(1), record(2)]
    payloads.add("digits", "v1", ("digits", 1), "inst-a", batch)
    payloads.add("digits", "v1", ("digits", 1), "inst-a", [*batch, record(3)])  # re-read
    payloads.add("digits", "v1", ("digits", 1), "inst-b", [record(1)])  # another replica
    assert payloads.count("digits") == 4


def test_feedback_joins_labels_to_predictions_whenever_it_arrives(registry: Registry) -> None:
    payloads = registry.payloads
    payloads.add("digits", "v1", ("digits", 1), "i", [record(1, prediction="3")])
    results = payloads.give_feedback(
        [Feedback(request_id="req-1", label="3"), Feedback(request_id="req-2", label="5")], "bob"
    )
    statuses = [result.status for result in results]
    assert statuses == [FeedbackStatus.STORED, FeedbackStatus.UNKNOWN_REQUEST]  # kept anyway
    payloads.add("digits", "v1", ("digits", 1), "i", [record(2, prediction="4")])
    labelled = payloads.labelled("digits", "v1")
    assert sorted(zip(labelled.predicted, labelled.actual, strict=True)) == [("3", "3"), ("4", "5")]
    assert labelled.version == 1
    payloads.give_feedback([Feedback(request_id="req-2", label="4")], "bob")  # corrected
    assert sorted(payloads.labelled("digits", "v1").actual) == ["3", "4"]


def test_feedback_says_what_it_did_with_each_label(registry: Registry) -> None:
    payloads = registry.payloads
    three_rows = CollectedPayload(
        seq=2, request_id="req-2", time=time.time(), status=200, latency_ms=1.0,
        predictions=["1", "2", "3"],
    )  # fmt: skip
    payloads.add("digits", "v1", ("digits", 1), "i", [record(1, prediction="3"), three_rows])
    payloads.add("digits", "v1", ("digits", 1), "i", [record(3, status=500)])
    digits = tuple(str(i) for i in range(10))
    given = [
        ("req-1", "3"), ("req-1", "4"), ("req-1", "4"), ("req-9", "1"), ("req-2", "1"),
        ("req-2", ["1", "2", "x"]), ("req-2", ["1", "2", "2"]), ("req-3", "1"),
    ]  # fmt: skip
    results = payloads.give_feedback(
        [Feedback(request_id=rid, label=label) for rid, label in given], "bob",
        lambda model, version: digits if (model, version) == ("digits", 1) else (),
    )  # fmt: skip
    assert [r.status.value for r in results] == [
        "stored", "corrected", "unchanged", "unknown_request", "wrong_row_count",
        "unknown_class", "stored", "no_prediction",
    ]  # fmt: skip
    assert results[1].previous == ["3"]
    assert "answered 3 rows and got 1 label; send a list of 3 labels" in results[4].detail
    assert "label 'x' is not a class of digits v1 (its classes: 0, 1, 2" in results[5].detail
    assert "answered 500" in results[7].detail
    labelled = payloads.labelled("digits", "v1")
    pairs = sorted(zip(labelled.predicted, labelled.actual, strict=True))
    assert pairs == [("1", "1"), ("2", "2"), ("3", "2"), ("3", "4")]  # each row once
    assert [r.labels for r in payloads.search("digits") if r.request_id == "req-1"] == [["4"]]


def test_a_label_counts_once_where_old_records_share_its_request_id(registry: Registry) -> None:
    """Before request ids were the replica's, clients could give several requests one id."""
    payloads = registry.payloads
    shared = [record(n, prediction=str(n)) for n in (1, 2, 3)]
    shared = [r.model_copy(update={"request_id": "client-id"}) for r in shared]
    payloads.add("digits", "v1", ("digits", 1), "i", shared)
    payloads.give_feedback([Feedback(request_id="client-id", label="3")], "bob")
    labelled = payloads.labelled("digits", "v1")
    assert (labelled.predicted, labelled.actual) == (["3"], ["3"])  # the newest, once


def test_search_filters_by_version_status_and_time(registry: Registry) -> None:
    payloads = registry.payloads
    payloads.add("digits", "v1", ("digits", 1), "i", [record(1, age_s=600), record(2)])
    payloads.add("digits", "v2", ("digits", 2), "j", [record(1), record(2, status=503)])
    assert [r.request_id for r in payloads.search("digits")] == ["req-2", "req-1", "req-2", "req-1"]
    assert {r.variant for r in payloads.search("digits", version=2)} == {"v2"}
    failed = payloads.search("digits", status=503)
    assert [(r.variant, r.status, r.predictions) for r in failed] == [("v2", 503, None)]
    recent = payloads.search("digits", version=1, since=datetime.now(UTC) - timedelta(minutes=5))
    assert [r.request_id for r in recent] == ["req-2"]
    assert payloads.search("digits", limit=1)[0].variant == "v2"
    with pytest.raises(InvalidInput, match="limit"):
        payloads.search("digits", limit=0)
    with pytest.raises(InvalidInput):
        payloads.search("../etc")


def test_prune_keeps_the_newest_rows_within_the_retention(registry: Registry) -> None:
    payloads = registry.payloads
    payloads.add("digits", "v1", ("digits", 1), "i", [record(1, age_s=7200)])
    payloads.add("digits", "v1", ("digits", 1), "i", [record(s) for s in range(2, 8)])
    removed = payloads.prune(retention_s=3600, max_rows_per_endpoint=4)
    assert removed == 3
    assert [r.request_id for r in payloads.search("digits")] == [
        f"req-{s}" for s in range(7, 3, -1)
    ]


def test_summaries_of_the_newest_requests(registry: Registry) -> None:
    registry.payloads.add("digits", "v1", ("digits", 1), "i", [record(s) for s in range(1, 4)])
    assert registry.payloads.summaries("digits", "v1", limit=2) == {"mean_intensity": [0.25, 0.25]}


def test_feedback_request_ids_are_validated() -> None:
    with pytest.raises(ValueError, match="request_id"):
        Feedback(request_id="../../x", label="1")


def test_tallies_count_what_replicas_logged_sampled_out_and_dropped(registry: Registry) -> None:
    payloads = registry.payloads
    key = ("digits", 1)
    payloads.add("digits", "v1", key, "inst-a", [record(3)], missed=2)
    totals = PayloadTotals(answered=10, sampled_out=6)
    page = CollectedPage("inst-a", [record(4)], missed=1, sample_rate=0.5, totals=totals)
    assert payloads.keep("digits", "v1", key, page) == 1
    payloads.keep(
        "digits", "v1", key, CollectedPage("inst-b", [], totals=PayloadTotals(answered=7))
    )
    (tally,) = payloads.tallies("digits")
    assert (tally.variant, tally.sample_rate) == ("v1", 0.5)
    assert (tally.answered, tally.logged, tally.sampled_out, tally.dropped) == (17, 11, 6, 3)
    assert payloads.last_seq("inst-a") == 4
    assert payloads.last_seq("inst-c") == 0


def test_a_label_for_a_sampled_out_request_says_so(registry: Registry) -> None:
    payloads = registry.payloads
    ids = [f"req-{n}" for n in range(40)]
    logged = next(i for i in ids if is_logged(i, 0.5))
    left_out = next(i for i in ids if not is_logged(i, 0.5))
    given = [Feedback(request_id=logged, label="1"), Feedback(request_id=left_out, label="1")]
    before = [r.status for r in payloads.give_feedback(given, "bob")]
    assert before == [FeedbackStatus.UNKNOWN_REQUEST] * 2  # no log has declared a rate yet
    totals = PayloadTotals(answered=40, sampled_out=20)
    payloads.keep("digits", "v1", ("digits", 1), CollectedPage("inst-a", [], 0, 0.5, totals))
    again = [Feedback(request_id=logged, label="2"), Feedback(request_id="req-x", label="1")]
    after = payloads.give_feedback([*again, Feedback(request_id=left_out, label="2")], "bob")
    assert after[2].status is FeedbackStatus.CORRECTED  # a correction stays a correction
    fresh = next(i for i in (f"new-{n}" for n in range(40)) if not is_logged(i, 0.5))
    (result,) = payloads.give_feedback([Feedback(request_id=fresh, label="1")], "bob")
    assert result.status is FeedbackStatus.SAMPLED_OUT
    assert "rate 0.5" in result.detail


def completion(seq: int, *, age_s: float = 0) -> CollectedPayload:
    return CollectedPayload(
        seq=seq, request_id=f"cmpl-{seq}", time=time.time() - age_s, status=200,
        latency_ms=40.0, kind="completion",
    )  # fmt: skip


def test_ratings_count_votes_up_and_down_and_nothing_else(registry: Registry) -> None:
    """Only ``up`` and ``down`` are votes: a label kept for an id before its completion was
    collected (checked against nothing then) is no vote if it is anything else."""
    payloads = registry.payloads
    payloads.give_feedback([Feedback(request_id="cmpl-5", label="great")], "bob")  # early
    payloads.add("chat", "v1", ("lm", 1), "i", [completion(1, age_s=3600), completion(2)])
    payloads.add("chat", "v1", ("lm", 1), "i", [completion(n) for n in (3, 4, 5)])
    votes = [("cmpl-1", "up"), ("cmpl-2", "down"), ("cmpl-3", "up"), ("cmpl-4", "up")]
    payloads.give_feedback([Feedback(request_id=i, label=v) for i, v in votes], "bob")
    rated = payloads.rated("chat", "v1")
    assert (rated.rated, rated.up, rated.down, rated.up_rate) == (4, 3, 1, 0.75)
    recent = payloads.rated("chat", "v1", since=datetime.now(UTC) - timedelta(minutes=5))
    assert (recent.up, recent.down) == (2, 1)
    unrated = payloads.rated("chat", "v2")
    assert (unrated.rated, unrated.down, unrated.up_rate) == (0, 0, None)
