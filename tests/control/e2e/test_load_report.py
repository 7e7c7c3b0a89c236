"""The load generator's report: rates, percentiles from the schedule, and who missed a rate.

Outcomes are made by hand here (no server): each case is one way a fixed-rate run can go.
"""

from __future__ import annotations

import pytest

from tests.control.e2e.harness import Load, Outcome


def run(late_s: float = 0.0, blocked_s: float = 0.0, latency_s: float = 0.005,
        count: int = 1000, status: int = 200, every: int = 1) -> Load:  # fmt: skip
    """A 100 req/s run of ``count`` requests; every ``every``-th one leaves ``late_s`` late,
    ``blocked_s`` of it waiting for its worker's previous answer."""
    load = Load("http://127.0.0.1:1/", rate=100)
    for i in range(count):
        due = i / 100
        late = late_s if i % every == 0 else 0.0
        blocked = blocked_s if i % every == 0 else 0.0
        load.outcomes.append(Outcome(due + late, status, latency_s, due_s=due, blocked_s=blocked))
    return load


def test_a_run_on_schedule_carries_the_rate_and_counts_latency_from_the_schedule() -> None:
    report = run(late_s=0.002).report()
    assert (report.sent, report.failed) == (1000, 0)
    assert report.achieved_rps == pytest.approx(100, rel=0.01)
    assert report.rate_problem() == ""
    assert report.p50_ms == pytest.approx(7.0)  # 2 ms late + 5 ms answer
    assert report.late_by_client == report.late_by_server == 0


def test_a_generator_that_falls_behind_is_named_not_the_server() -> None:
    load = run(late_s=0.0)
    for i, outcome in enumerate(load.outcomes):  # the sender woke later and later
        outcome.at_s = outcome.due_s + i * 0.0002
    report = load.report()
    assert report.late_by_client > 900
    assert "this machine could not generate the load" in report.rate_problem()
    assert "not a verdict on the server" in report.rate_problem()


def test_answers_too_slow_to_free_the_workers_are_the_servers() -> None:
    load = run(latency_s=0.2)
    for i, outcome in enumerate(load.outcomes):  # each waited for a slower answer
        outcome.at_s = outcome.due_s + i * 0.0002
        outcome.blocked_s = outcome.at_s - outcome.due_s
    report = load.report()
    assert report.late_by_server > 900
    assert "the server answered too slowly" in report.rate_problem()
    assert report.p99_ms > 200  # from the schedule: the waits count


def test_failures_and_wrong_bodies_lower_the_rate_and_are_named() -> None:
    load = run()
    for outcome in load.outcomes[::50]:
        outcome.wrong = "v2 answered [0] for [1], not [1]"
    report = load.report()
    assert report.failed == 20
    assert len(load.failures()) == 20
    assert "20 of 1000 requests failed" in report.rate_problem()
