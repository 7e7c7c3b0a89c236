"""Capacity sweeps started over the API: one at a time, each on a thread of its own.

A sweep takes minutes, longer than an HTTP request should, so ``POST …/capacity`` starts a
job and answers 202 with its id; ``GET /api/v1/capacity/jobs/{id}`` shows its progress and the
configurations finished so far (each is stored as soon as it is known, as from the CLI). One
job at a time: the sweep owns the machine's cores while it measures.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from datetime import UTC, datetime
from enum import StrEnum

from ferryman.capacity.sweep import SweepRequest, sweep_version
from ferryman.config import Settings
from ferryman.errors import Conflict, FerrymanError, NotFound
from ferryman.registry import CapacityResult, LoadStep, Registry, ServingConfig
from ferryman.registry.records import Record

logger = logging.getLogger(__name__)

KEPT_JOBS = 20


class JobStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"


class SweepStopped(FerrymanError):
    """Raised between two steps of a job's sweep when the control plane stops."""


class CapacityJob(Record):
    id: str
    model: str
    version: int
    p99_target_ms: float
    status: JobStatus
    started_at: datetime
    finished_at: datetime | None = None
    now: str = ""
    """The step measured last, in words."""
    error: str | None = None
    results: tuple[CapacityResult, ...] = ()


class CapacityJobs:
    """The jobs of one control-plane process (the last few, finished ones included)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, CapacityJob] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()

    def start(self, registry: Registry, settings: Settings, request: SweepRequest) -> CapacityJob:
        request.plan.check()
        with self._lock:
            if self._stopping.is_set():
                raise Conflict("the control plane is stopping; start the sweep after it restarts")
            running = [j for j in self._jobs.values() if j.status == JobStatus.RUNNING]
            if running:
                raise Conflict(
                    f"capacity job {running[0].id} ({running[0].model} v{running[0].version}) "
                    "is still running; wait for it (GET /api/v1/capacity/jobs/ID)"
                )
            job = CapacityJob(
                id=uuid.uuid4().hex,
                model=request.model,
                version=request.version,
                p99_target_ms=request.plan.p99_target_ms,
                status=JobStatus.RUNNING,
                started_at=datetime.now(UTC),
            )
            self._jobs[job.id] = job
            for old in list(self._jobs)[:-KEPT_JOBS]:
                del self._jobs[old]
                self._threads.pop(old, None)
            thread = threading.Thread(
                target=self._run,
                args=(job.id, registry, settings, request),
                name=f"capacity-{job.id[:8]}",
                daemon=True,
            )
            self._threads[job.id] = thread
        thread.start()
        return job

    def get(self, job_id: str) -> CapacityJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no capacity job {job_id!r} (jobs are kept until the API restarts)")
        return job

    def wait(self, job_id: str, timeout_s: float) -> CapacityJob:
        """The job once it finished (or as it is after ``timeout_s``)."""
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout_s)
        return self.get(job_id)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop running sweeps after their current step; each stops its replica on the way
        out (replicas run in sessions of their own, so nothing else would stop them)."""
        self._stopping.set()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout_s)

    def _update(self, job_id: str, **changes: object) -> None:
        with self._lock:
            self._jobs[job_id] = self._jobs[job_id].model_copy(update=changes)

    def _run(
        self, job_id: str, registry: Registry, settings: Settings, request: SweepRequest
    ) -> None:
        found: list[CapacityResult] = []

        def on_step(config: ServingConfig, step: LoadStep) -> None:
            if self._stopping.is_set():
                raise SweepStopped("stopped with the control plane")
            self._update(
                job_id,
                now=f"{config.describe()}: {step.target_qps:g} qps -> "
                f"p99 {step.p99_ms or 0:.1f} ms, {step.errors} errors",
            )

        def on_result(result: CapacityResult, _: bool) -> None:
            found.append(result)
            self._update(job_id, results=tuple(found))

        try:
            asyncio.run(sweep_version(registry, settings, request, on_step, on_result))
        except SweepStopped as exc:
            self._finish(job_id, JobStatus.STOPPED, exc.message)
        except FerrymanError as exc:
            self._finish(job_id, JobStatus.FAILED, exc.message)
        except Exception as exc:  # a job thread must record every end, not die silently
            logger.exception("capacity job %s failed", job_id)
            self._finish(job_id, JobStatus.FAILED, f"{type(exc).__name__}: {exc}")
        else:
            self._finish(job_id, JobStatus.DONE, None)

    def _finish(self, job_id: str, status: JobStatus, error: str | None) -> None:
        self._update(job_id, status=status, error=error, finished_at=datetime.now(UTC))
