"""Deployments: the persisted desired state of each endpoint.

A deployment says which variants serve an endpoint, with what traffic weights, rules,
sticky key and shadow, and how many replicas (or autoscaling bounds). Every change bumps
its generation and writes an event; the reconciler makes the world match the newest
generation. Versions are pinned at deploy time: an alias is resolved then, so a later alias
move changes nothing until a rollout (or a new deploy) says so.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from ferryman.errors import Conflict, InvalidInput, NotFound, VersionNotFound
from ferryman.names import validate_name
from ferryman.registry.audit import append_event
from ferryman.registry.database import Database
from ferryman.registry.lookup import find_model, find_version
from ferryman.registry.records import Record, VariantStatus
from ferryman.registry.tables import DeploymentRow, VariantRow

MAX_REPLICAS = 64


class VariantSpec(BaseModel):
    """One servable variant of an endpoint and its share of traffic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="Model name.")
    version: int = Field(ge=1, description="Pinned version number.")
    kind: str | None = Field(
        default=None, description="Variant kind such as onnx-int8; None: the version's own file."
    )
    weight: int = Field(default=100, ge=0, le=100, description="Share of traffic, in percent.")
    replicas: int = Field(
        default=1, ge=0, le=MAX_REPLICAS, description="Replicas when not autoscaled."
    )
    standby_replicas: int | None = Field(
        default=None,
        ge=1,
        le=MAX_REPLICAS,
        description="With autoscaling, the fewest replicas kept whatever the load; set by a "
        "blue-green rollout on both pools (the new one warms in full, the old one stays "
        "warm for an instant rollback) and dropped when it ends.",
    )

    @property
    def name(self) -> str:
        """The variant's id within its endpoint: ``v3`` or ``v3-onnx-int8``."""
        return f"v{self.version}" if self.kind is None else f"v{self.version}-{self.kind}"


class HeaderRuleSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    header: str = Field(description="Lowercase header name, e.g. x-region.")
    equals: str = Field(description="Value that sends a request to the variant.")
    variant: str = Field(description="Variant name, e.g. v3.")


class Autoscaling(BaseModel):
    """Bounds and target of the autoscaler for every variant of the endpoint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_replicas: int = Field(default=1, ge=0, le=MAX_REPLICAS, description="0: scale to zero.")
    max_replicas: int = Field(default=4, ge=1, le=MAX_REPLICAS)
    target_in_flight: float = Field(
        default=4.0, gt=0, description="Concurrent requests one replica should carry."
    )
    scale_down_delay_s: float = Field(
        default=60.0, ge=0, description="Demand must stay low this long before scaling down."
    )
    idle_to_zero_s: float = Field(
        default=300.0, gt=0, description="With min_replicas 0: idle this long → zero replicas."
    )
    target_qps: float | None = Field(
        default=None, gt=0, description="Requests per second one replica should carry."
    )
    forecast_season_s: float | None = Field(
        default=None,
        gt=0,
        description="Length of the traffic's cycle (86400: daily); with target_qps, replicas "
        "are added ahead of the forecast rate one cold start before it arrives.",
    )
    forecast_step_s: float = Field(default=60.0, gt=0, description="Resolution of the forecast.")
    cold_start_s: float = Field(
        default=30.0, ge=0, description="Time from starting a replica to its first answer."
    )

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self


class DeploymentSpec(BaseModel):
    """The desired state of one endpoint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str
    variants: tuple[VariantSpec, ...] = Field(min_length=1, max_length=8)
    rules: tuple[HeaderRuleSpec, ...] = Field(default=(), max_length=32)
    sticky_header: str | None = None
    shadow: str | None = Field(default=None, description="Variant name mirrored, never served.")
    autoscaling: Autoscaling | None = None
    max_batch_size: int | None = Field(default=None, ge=1, le=4096)
    max_delay_ms: float | None = Field(default=None, ge=0, le=1000)
    intra_op_threads: int | None = Field(default=None, ge=0, le=256)
    require_token: bool = Field(
        default=False,
        description="Gateway requests need an inference token of this endpoint "
        "(ferryman tokens create --endpoint NAME --scope infer).",
    )

    def variant(self, name: str) -> VariantSpec:
        found = next((v for v in self.variants if v.name == name), None)
        if found is None:
            names = ", ".join(v.name for v in self.variants)
            raise NotFound(f"endpoint {self.endpoint!r} has no variant {name!r} ({names})")
        return found


class DeploymentRecord(Record):
    endpoint: str
    spec: DeploymentSpec
    generation: int
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


class Deployments:
    """Create, change, read and remove deployments; each change is one event."""

    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock

    def put(self, spec: DeploymentSpec, actor: str) -> DeploymentRecord:
        """Create the endpoint's deployment or replace its spec (generation + 1)."""
        validate_name(spec.endpoint, "endpoint name")
        return self._db.write(lambda session: put_spec(session, self._clock(), spec, actor))

    def get(self, endpoint: str) -> DeploymentRecord:
        with self._db.reading() as session:
            return _record(_active(session, endpoint))

    def list(self) -> list[DeploymentRecord]:
        with self._db.reading() as session:
            rows = session.scalars(
                select(DeploymentRow)
                .where(DeploymentRow.removed_at.is_(None))
                .order_by(DeploymentRow.endpoint)
            )
            return [_record(row) for row in rows]

    def remove(self, endpoint: str, actor: str) -> DeploymentRecord:
        """Undeploy: the reconciler drains and stops its replicas; the row stays, marked."""

        def work(session: Session) -> DeploymentRecord:
            row = _active(session, endpoint)
            now = self._clock()
            row.removed_at, row.generation = now, row.generation + 1
            row.updated_by, row.updated_at = actor, now
            model = DeploymentSpec.model_validate(row.spec).variants[0].model
            append_event(
                session, now, actor, "deployment.removed", ("deployment", endpoint, model),
                details={"generation": row.generation},
            )  # fmt: skip
            return _record(row)

        return self._db.write(work)


def put_spec(session: Session, now: datetime, spec: DeploymentSpec, actor: str) -> DeploymentRecord:
    """Write ``spec`` (generation + 1) and its event in the caller's transaction."""
    for variant in spec.variants:
        _check_deployable(session, variant)
    row = session.scalar(
        select(DeploymentRow).where(DeploymentRow.endpoint == spec.endpoint).with_for_update()
    )
    action = "deployment.updated"
    if row is None:
        action = "deployment.created"
        row = DeploymentRow(endpoint=spec.endpoint, generation=0, created_by=actor, created_at=now)
        session.add(row)
    elif row.removed_at is not None:
        action, row.removed_at = "deployment.created", None
    row.spec = spec.model_dump(mode="json")
    row.generation += 1
    row.updated_by, row.updated_at = actor, now
    summary = {v.name: v.weight for v in spec.variants}
    append_event(
        session, now, actor, action, ("deployment", spec.endpoint, spec.variants[0].model),
        details={"generation": row.generation, "weights": summary},
    )  # fmt: skip
    return _record(row)


def scaled(
    spec: DeploymentSpec, replicas: int | None, autoscaling: Autoscaling | None
) -> DeploymentSpec:
    """``spec`` with a fixed replica count per variant (autoscaling off) or new bounds."""
    if (replicas is None) == (autoscaling is None):
        raise InvalidInput("give either a replica count or autoscaling bounds, not both or neither")
    if autoscaling is not None:
        return spec.model_copy(update={"autoscaling": autoscaling})
    variants = tuple(v.model_copy(update={"replicas": replicas}) for v in spec.variants)
    return spec.model_copy(update={"variants": variants, "autoscaling": None})


def _active(session: Session, endpoint: str) -> DeploymentRow:
    validate_name(endpoint, "endpoint name")
    row = session.scalar(select(DeploymentRow).where(DeploymentRow.endpoint == endpoint))
    if row is None or row.removed_at is not None:
        raise NotFound(f"endpoint {endpoint!r} is not deployed (ferryman endpoints list)")
    return row


def _check_deployable(session: Session, spec: VariantSpec) -> None:
    """The version exists and is not archived; a named variant exists and passed its gate."""
    version = find_version(session, find_model(session, spec.model), spec.version)
    if version.archived_at is not None:
        raise Conflict(f"{spec.model} v{spec.version} is archived and cannot be deployed")
    if spec.kind is None:
        return
    variant = session.scalar(
        select(VariantRow).where(
            VariantRow.version_id == version.id,
            VariantRow.kind == validate_name(spec.kind, "variant kind"),
        )
    )
    if variant is None:
        raise VersionNotFound(f"{spec.model} v{spec.version} has no variant {spec.kind!r}")
    if variant.status == VariantStatus.REJECTED.value:
        reason = variant.gate.get("reason", "it failed its gate")
        raise InvalidInput(
            f"{spec.model} v{spec.version} {spec.kind} was rejected ({reason}); it can never be "
            "deployed"
        )


def _record(row: DeploymentRow) -> DeploymentRecord:
    return DeploymentRecord(
        endpoint=row.endpoint,
        spec=DeploymentSpec.model_validate(row.spec),
        generation=row.generation,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )
