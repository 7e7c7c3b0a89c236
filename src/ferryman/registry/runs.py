"""Training runs as records: params, metric series, status and checkpoints.

Training itself lives in ``ferryman.training``; this is only what it writes down, so that
a run can be listed, compared, resumed from its last checkpoint and named as the parent of
the version it produced.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.errors import Conflict, InvalidInput, RunNotFound
from ferryman.names import validate_digest, validate_key, validate_name
from ferryman.registry.audit import append_event
from ferryman.registry.database import Database
from ferryman.registry.records import (
    Checkpoint,
    MetricPoint,
    ParamValue,
    RunRecord,
    RunStatus,
)
from ferryman.registry.tables import RunMetricRow, RunRow

_FINISHED = {RunStatus.SUCCEEDED, RunStatus.FAILED}


class RunLog:
    """Creates runs, appends their metrics and checkpoints, and records how they ended."""

    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock

    def create(
        self,
        recipe: str,
        actor: str,
        model: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
    ) -> RunRecord:
        validate_key(recipe, "recipe")
        if model is not None:
            validate_name(model, "model name")
        run_id = uuid.uuid4().hex

        def work(session: Session) -> RunRecord:
            now = self._clock()
            row = RunRow(
                id=run_id,
                model_name=model,
                recipe=recipe,
                params=dict(params or {}),
                status=RunStatus.RUNNING.value,
                checkpoints=[],
                created_by=actor,
                started_at=now,
            )
            session.add(row)
            append_event(
                session,
                now,
                actor,
                "run.started",
                ("run", run_id, model),
                details={"recipe": recipe},
            )
            return _record(row, {})

        return self._db.write(work)

    def log_metrics(self, run_id: str, step: int, values: Mapping[str, float]) -> None:
        """Append one point per metric at ``step`` (an epoch, a batch…)."""
        for key, value in values.items():
            validate_key(key, "metric")
            if not math.isfinite(value):
                raise InvalidInput(
                    f"metric {key!r} is {value} at step {step}; metrics must be finite"
                )

        def work(session: Session) -> None:
            self._open_run(session, run_id)
            now = self._clock()
            session.add_all(
                RunMetricRow(run_id=run_id, key=key, step=step, value=float(value), recorded_at=now)
                for key, value in values.items()
            )

        self._db.write(work)

    def add_checkpoint(self, run_id: str, step: int, digest: str, size_bytes: int) -> None:
        """Record that the artifact ``digest`` holds the run's state after ``step``."""
        validate_digest(digest)

        def work(session: Session) -> None:
            row = self._open_run(session, run_id)
            entry = Checkpoint(step=step, digest=digest, size_bytes=size_bytes)
            row.checkpoints = [*row.checkpoints, entry.model_dump()]

        self._db.write(work)

    def finish(
        self, run_id: str, status: RunStatus, actor: str, error: str | None = None
    ) -> RunRecord:
        if status is RunStatus.RUNNING:
            raise InvalidInput("a run finishes as succeeded, failed or interrupted, not running")

        def work(session: Session) -> RunRecord:
            row = self._open_run(session, run_id)
            now = self._clock()
            row.status, row.error, row.finished_at = status.value, error, now
            append_event(
                session, now, actor, f"run.{status.value}", ("run", run_id, row.model_name)
            )
            return _record(row, _metrics(session, run_id))

        return self._db.write(work)

    def resume(self, run_id: str, actor: str) -> RunRecord:
        """Mark an interrupted (or abandoned running) run as running again."""

        def work(session: Session) -> RunRecord:
            row = _get(session, run_id)
            if RunStatus(row.status) in _FINISHED:
                raise Conflict(f"run {run_id} already {row.status}; start a new run instead")
            row.status, row.finished_at = RunStatus.RUNNING.value, None
            append_event(
                session, self._clock(), actor, "run.resumed", ("run", run_id, row.model_name)
            )
            return _record(row, _metrics(session, run_id))

        return self._db.write(work)

    def set_log_path(self, run_id: str, log_path: str) -> None:
        def work(session: Session) -> None:
            _get(session, run_id).log_path = log_path

        self._db.write(work)

    def get(self, run_id: str) -> RunRecord:
        with self._db.reading() as session:
            return _record(_get(session, run_id), _metrics(session, run_id))

    def list(self, model: str | None = None, limit: int = 100) -> list[RunRecord]:
        with self._db.reading() as session:
            query = select(RunRow).order_by(RunRow.started_at.desc()).limit(limit)
            if model is not None:
                query = query.where(RunRow.model_name == validate_name(model, "model name"))
            return [_record(row, {}) for row in session.scalars(query)]

    def _open_run(self, session: Session, run_id: str) -> RunRow:
        row = _get(session, run_id)
        if row.status != RunStatus.RUNNING.value:
            raise Conflict(f"run {run_id} is {row.status}; only a running run can change")
        return row


def _get(session: Session, run_id: str) -> RunRow:
    if not (len(run_id) == 32 and all(c in "0123456789abcdef" for c in run_id)):
        raise InvalidInput(f"run id {run_id[:40]!r} is not valid; expected 32 hex characters")
    row = session.get(RunRow, run_id)
    if row is None:
        raise RunNotFound(f"run {run_id} does not exist")
    return row


def _metrics(session: Session, run_id: str) -> dict[str, tuple[MetricPoint, ...]]:
    series: dict[str, list[MetricPoint]] = {}
    rows = session.scalars(
        select(RunMetricRow)
        .where(RunMetricRow.run_id == run_id)
        .order_by(RunMetricRow.key, RunMetricRow.step, RunMetricRow.id)
    )
    for row in rows:
        point = MetricPoint(step=row.step, value=row.value, recorded_at=row.recorded_at)
        series.setdefault(row.key, []).append(point)
    return {key: tuple(points) for key, points in series.items()}


def _record(row: RunRow, metrics: dict[str, tuple[MetricPoint, ...]]) -> RunRecord:
    return RunRecord(
        id=row.id,
        model=row.model_name,
        recipe=row.recipe,
        params=row.params,
        status=RunStatus(row.status),
        checkpoints=tuple(Checkpoint.model_validate(entry) for entry in row.checkpoints),
        metrics=metrics,
        log_path=row.log_path,
        error=row.error,
        created_by=row.created_by,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )
