"""A sweep started as a job stops with the control plane, and takes its replica with it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ferryman.capacity.jobs import CapacityJobs, JobStatus
from ferryman.capacity.sweep import SweepPlan, SweepRequest
from ferryman.config import Settings
from ferryman.registry import Registry

pytestmark = pytest.mark.e2e


def replicas_of(data_dir: Path) -> list[int]:
    """Pids of processes serving from ``data_dir`` (the sweep's replicas)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if str(data_dir).encode() in args and b"serve" in args:
            found.append(int(cmdline.parent.name))
    return found


def test_stopping_the_jobs_stops_the_sweep_and_its_replica(
    registry: Registry, affine: str, data_dir: Path
) -> None:
    jobs = CapacityJobs()
    plan = SweepPlan(
        batch_sizes=(1,),
        threads=(1,),
        start_qps=10,
        rate_factor=1.05,
        max_qps=1000,
        step_s=1,
        p99_target_ms=5000,
    )
    job = jobs.start(registry, Settings(data_dir=data_dir), SweepRequest(affine, 1, plan))
    deadline = time.monotonic() + 60
    while not jobs.get(job.id).now and time.monotonic() < deadline:
        time.sleep(0.2)  # the job's own thread: nothing to await here
    assert jobs.get(job.id).now, "no step measured in time"
    assert replicas_of(data_dir)
    jobs.stop()
    stopped = jobs.get(job.id)
    assert stopped.status == JobStatus.STOPPED
    assert stopped.error == "stopped with the control plane"
    assert replicas_of(data_dir) == []
