"""Capacity results kept with a version: measured once, read by ``recommend`` and the UI.

A result is keyed by its configuration (variant, batching, threads) and the p99 target it was
measured against; measuring the same configuration again replaces the row in one
transaction (``ferryman capacity --again``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from pydantic import Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ferryman.registry.database import Database
from ferryman.registry.lookup import VersionRef, find_model, find_version
from ferryman.registry.records import Record
from ferryman.registry.tables import CapacityRow


class LoadStep(Record):
    """One open-loop step: the rate asked for, what came of it."""

    target_qps: float
    achieved_qps: float
    sent: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    send_lag_ms: float = Field(
        default=0.0, description="how far the generator's sends fell behind their schedule"
    )


class ServingConfig(Record):
    """The serving settings a capacity sweep varies."""

    variant: str
    max_batch_size: int = Field(ge=1)
    max_delay_ms: float = Field(ge=0)
    intra_op_threads: int = Field(ge=0)

    def describe(self) -> str:
        threads = self.intra_op_threads or "auto"
        return (
            f"{self.variant} batch≤{self.max_batch_size} delay {self.max_delay_ms:g} ms "
            f"threads {threads}"
        )


class CapacityResult(Record):
    """The highest rate one configuration carried at p99 ≤ target with no errors (0: none)."""

    config: ServingConfig
    p99_target_ms: float
    max_qps: float
    p99_ms: float | None = None
    cpu_pct: float | None = Field(default=None, description="replica CPU at max_qps, % of a core")
    rss_bytes: float | None = Field(default=None, description="replica resident memory, bytes")
    stop_reason: str
    steps: tuple[LoadStep, ...] = ()
    cpu_count: int = Field(description="CPUs of the machine that measured it")
    measured_by: str = ""
    measured_at: datetime | None = None


class CapacityResults:
    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock

    def put(self, model: str, ref: VersionRef, result: CapacityResult, actor: str) -> None:
        """Keep ``result``, replacing an earlier one of the same configuration and target."""
        config = result.config

        def work(session: Session) -> None:
            version = find_version(session, find_model(session, model), ref)
            row = CapacityRow
            session.execute(
                delete(row).where(
                    row.version_id == version.id,
                    row.variant == config.variant,
                    row.max_batch_size == config.max_batch_size,
                    row.max_delay_ms == config.max_delay_ms,
                    row.intra_op_threads == config.intra_op_threads,
                    row.p99_target_ms == result.p99_target_ms,
                )
            )
            session.add(
                CapacityRow(
                    version_id=version.id,
                    **config.model_dump(),
                    p99_target_ms=result.p99_target_ms,
                    max_qps=result.max_qps,
                    p99_ms=result.p99_ms,
                    cpu_pct=result.cpu_pct,
                    rss_bytes=result.rss_bytes,
                    stop_reason=result.stop_reason[:200],
                    steps=[step.model_dump() for step in result.steps],
                    cpu_count=result.cpu_count,
                    measured_by=actor,
                    measured_at=self._clock(),
                )
            )

        self._db.write(work)

    def of(
        self, model: str, ref: VersionRef, p99_target_ms: float | None = None
    ) -> list[CapacityResult]:
        """The results of a version (those of one target when given), by configuration."""
        with self._db.reading() as session:
            version = find_version(session, find_model(session, model), ref)
            query = select(CapacityRow).where(CapacityRow.version_id == version.id)
            if p99_target_ms is not None:
                query = query.where(CapacityRow.p99_target_ms == p99_target_ms)
            rows: Sequence[CapacityRow] = session.scalars(query.order_by(CapacityRow.id)).all()
        return sorted((_record(row) for row in rows), key=_order)


def _order(result: CapacityResult) -> tuple[str, int, float, int, float]:
    c = result.config
    return (c.variant, c.max_batch_size, c.max_delay_ms, c.intra_op_threads, result.p99_target_ms)


def _record(row: CapacityRow) -> CapacityResult:
    config = ServingConfig(
        variant=row.variant,
        max_batch_size=row.max_batch_size,
        max_delay_ms=row.max_delay_ms,
        intra_op_threads=row.intra_op_threads,
    )
    return CapacityResult(
        config=config,
        p99_target_ms=row.p99_target_ms,
        max_qps=row.max_qps,
        p99_ms=row.p99_ms,
        cpu_pct=row.cpu_pct,
        rss_bytes=row.rss_bytes,
        stop_reason=row.stop_reason,
        steps=tuple(LoadStep.model_validate(step) for step in row.steps),
        cpu_count=row.cpu_count,
        measured_by=row.measured_by,
        measured_at=row.measured_at,
    )
