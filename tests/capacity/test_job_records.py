"""Capacity jobs are bounded: one runs at a time, and only the newest finished ones are kept
(the records live in the control plane's memory until it restarts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferryman.capacity.jobs import KEPT_JOBS, CapacityJobs, JobStatus
from ferryman.capacity.sweep import SweepPlan, SweepRequest
from ferryman.config import load_settings
from ferryman.errors import NotFound
from ferryman.registry import Registry


def test_only_the_newest_finished_jobs_are_kept(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    registry = Registry.open(settings)
    jobs = CapacityJobs()
    try:
        started = []
        for _ in range(KEPT_JOBS + 5):
            job = jobs.start(registry, settings, SweepRequest("ghost", 1, SweepPlan()))
            assert jobs.wait(job.id, timeout_s=30).status == JobStatus.FAILED  # no such model
            started.append(job.id)
    finally:
        jobs.stop()
        registry.close()

    for forgotten in started[:5]:
        with pytest.raises(NotFound):
            jobs.get(forgotten)
    assert [jobs.get(kept).status for kept in started[5:]] == [JobStatus.FAILED] * KEPT_JOBS
