"""The registry: models, their immutable versions, aliases and variants, with an audit log.

Registration writes the artifact first (temp file, fsync, rename) and the rows second, in
one transaction with their events. A crash in between leaves at most an unreferenced
artifact, never a version without its bytes; a failed transaction leaves nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ferryman.artifacts import (
    ArtifactStore,
    InspectedArtifact,
    StagedFile,
    StoredArtifact,
    create_store,
    inspect_artifact,
    inspect_file,
)
from ferryman.config import Settings
from ferryman.errors import (
    AliasNotFound,
    Conflict,
    InvalidInput,
    NotFound,
    RunNotFound,
    Unavailable,
)
from ferryman.names import validate_key, validate_name
from ferryman.reference import ReferenceData, with_graph_classes
from ferryman.registry.alerts import Alerts
from ferryman.registry.audit import append_event, query_events
from ferryman.registry.capacity import CapacityResults
from ferryman.registry.database import Database
from ferryman.registry.deliveries import Deliveries
from ferryman.registry.deployments import Deployments, DeploymentSpec, put_spec
from ferryman.registry.history import MetricHistory
from ferryman.registry.lookup import (
    VersionRef,
    aliases_by_version,
    find_model,
    find_version,
    model_records,
    variant_record,
    version_record,
    version_record_of,
)
from ferryman.registry.metadata import VersionMetadata, validate_alias
from ferryman.registry.outbox import WebhookOutbox
from ferryman.registry.payloads import Payloads
from ferryman.registry.policies import Policies
from ferryman.registry.records import (
    AliasRecord,
    EventRecord,
    ModelRecord,
    VariantRecord,
    VariantStatus,
    VersionRecord,
)
from ferryman.registry.rollouts import (
    RolloutRecord,
    Rollouts,
    apply_transition,
    revert_in,
    rollout_in,
)
from ferryman.registry.runs import RunLog
from ferryman.registry.tables import (
    AliasRow,
    ModelRow,
    RegistryMetaRow,
    RunRow,
    VariantRow,
    VersionRow,
)
from ferryman.registry.tokens import Tokens
from ferryman.signature import Signature, incompatibility


def utc_now() -> datetime:
    return datetime.now(UTC)


PRODUCTION = "production"
"""The alias the clients of a model call, which promotions move."""
FORCE_HINT = 'to move it anyway, pass --force (API: "force": true)'
REGISTER_HINT = "register it without the production alias, then move the alias with --force"


class Registry:
    """Durable truth about models. Every change is one transaction plus its events."""

    def __init__(
        self,
        database: Database,
        store: ArtifactStore,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = database
        self._store = store
        self._clock = clock
        self.runs = RunLog(database, clock)
        self.deployments = Deployments(database, clock)
        self.rollouts = Rollouts(database, clock)
        self.policies = Policies(database, clock)
        self.payloads = Payloads(database, clock)
        self.history = MetricHistory(database, clock)
        self.alerts = Alerts(database, clock)
        self.deliveries = Deliveries(database, clock)
        self.outbox = WebhookOutbox(database, clock)
        self.tokens = Tokens(database, clock)
        self.capacity = CapacityResults(database, clock)

    @classmethod
    def open(cls, settings: Settings) -> Registry:
        """The registry the settings name: migrated, with the artifact store they name."""
        database = Database(
            settings.resolved_database_url, busy_timeout_s=settings.sqlite_busy_timeout_s
        )
        database.migrate()
        return cls(database, create_store(settings))

    def close(self) -> None:
        self._db.dispose()

    @property
    def is_new(self) -> bool:
        """True if this process created the registry (its database had no schema)."""
        return self._db.was_created

    def identity(self) -> str:
        """The registry's identity: a UUID made with it, which the running fleet carries."""
        with self._db.reading() as session:
            row = session.get(RegistryMetaRow, "id")
        if row is None:
            raise Unavailable(
                f"the registry database {self._db.shown} has no identity row in registry_meta; "
                "restore it from a backup"
            )
        return row.value

    @property
    def store(self) -> ArtifactStore:
        return self._store

    # -- versions -------------------------------------------------------------------------

    def register(
        self,
        model: str,
        data: bytes,
        actor: str,
        metadata: VersionMetadata | None = None,
        reference: ReferenceData | None = None,
    ) -> VersionRecord:
        """Store ``data`` (an ONNX model) as the next version of ``model``, creating it if new.

        ``reference`` (golden requests, input and prediction summaries) is stored as a JSON
        artifact beside the model; :meth:`get_reference` reads it back, verified. Without
        class labels there, the classes the ONNX graph declares (a scikit-learn classifier's)
        are kept as the version's labels, so feedback and answers know its classes.
        """
        validate_name(model, "model name")
        inspected = inspect_artifact(data)
        stored = self._store.put(io.BytesIO(data))
        return self._add_version(model, (inspected, stored), actor, metadata, reference)

    def register_staged(
        self, model: str, staged: StagedFile, actor: str, metadata: VersionMetadata | None = None
    ) -> VersionRecord:
        """:meth:`register` for an upload already written to the store's folder (a sealed
        :meth:`ArtifactStore.stage` file): inspected through a memory map and moved into
        place, so its bytes are never held in memory but while the graph is parsed and
        checked (about twice its size)."""
        validate_name(model, "model name")
        inspected = inspect_file(staged.path)
        stored = self._store.put_staged(staged)
        return self._add_version(model, (inspected, stored), actor, metadata, None)

    def _add_version(
        self,
        model: str,
        artifact: tuple[InspectedArtifact, StoredArtifact],
        actor: str,
        metadata: VersionMetadata | None,
        reference: ReferenceData | None,
    ) -> VersionRecord:
        """The rows of a version whose artifact is stored (with its reference data, if any)."""
        inspected, stored = artifact
        metadata = metadata or VersionMetadata()
        if inspected.class_labels:
            reference = with_graph_classes(reference, inspected.class_labels)
        reference_digest = None
        if reference is not None:
            encoded = reference.model_dump_json().encode()
            reference_digest = self._store.put(io.BytesIO(encoded)).digest

        def work(session: Session) -> VersionRecord:
            now = self._clock()
            model_row = self._model_for_update(session, model, actor, now)
            if metadata.parent_run is not None and session.get(RunRow, metadata.parent_run) is None:
                raise RunNotFound(f"parent run {metadata.parent_run!r} does not exist")
            latest = session.scalar(
                select(func.max(VersionRow.number)).where(VersionRow.model_id == model_row.id)
            )
            row = VersionRow(
                model_id=model_row.id,
                number=(latest or 0) + 1,
                artifact_digest=stored.digest,
                artifact_format=inspected.format.value,
                size_bytes=stored.size_bytes,
                metrics=metadata.metrics,
                params=metadata.params,
                tags=metadata.tags,
                description=metadata.description,
                signature=inspected.signature.model_dump(mode="json"),
                data_fingerprint=metadata.data_fingerprint,
                reference_digest=reference_digest,
                parent_run_id=metadata.parent_run,
                created_by=actor,
                created_at=now,
            )
            session.add(row)
            session.flush()
            append_event(
                session,
                now,
                actor,
                "version.registered",
                ("version", f"{model}/{row.number}", model),
                details={"digest": stored.digest, "size_bytes": stored.size_bytes},
            )
            for alias in metadata.aliases:
                if alias == PRODUCTION:
                    _check_clients_can_call(session, model_row, row, REGISTER_HINT)
                self._move_alias(session, model_row, alias, row, actor, now=now)
            return version_record(session, model, row)

        return self._db.write(work)

    def get_version(self, model: str, ref: VersionRef) -> VersionRecord:
        with self._db.reading() as session:
            model_row = find_model(session, model)
            return version_record(session, model, find_version(session, model_row, ref))

    def get_reference(self, model: str, ref: VersionRef) -> ReferenceData | None:
        """The version's reference data (golden requests, summaries), or None if it has none."""
        digest = self.get_version(model, ref).reference_digest
        if digest is None:
            return None
        return ReferenceData.model_validate_json(self._store.read(digest))

    def class_labels(self, model: str, version: int) -> tuple[str, ...]:
        """The classes a version answers (its reference labels); () when unknown."""
        try:
            reference = self.get_reference(model, version)
        except NotFound:
            return ()
        return () if reference is None else reference.labels

    def list_versions(self, model: str, include_archived: bool = False) -> list[VersionRecord]:
        with self._db.reading() as session:
            model_row = find_model(session, model)
            query = select(VersionRow).where(VersionRow.model_id == model_row.id)
            if not include_archived:
                query = query.where(VersionRow.archived_at.is_(None))
            rows = session.scalars(query.order_by(VersionRow.number)).all()
            aliases = aliases_by_version(session, model_row.id)
            return [version_record_of(model, row, aliases.get(row.id, ())) for row in rows]

    def archive_version(self, model: str, ref: VersionRef, actor: str) -> VersionRecord:
        """Hide a version from listings and deployment; refused while an alias points at it."""

        def work(session: Session) -> VersionRecord:
            model_row = find_model(session, model, for_update=True)
            row = find_version(session, model_row, ref)
            held = aliases_by_version(session, model_row.id).get(row.id, ())
            if held:
                raise Conflict(
                    f"{model} v{row.number} is still aliased as {', '.join(held)}; "
                    f"move the alias first (ferryman alias set {model} {held[0]} VERSION)"
                )
            if row.archived_at is None:
                row.archived_at = now = self._clock()
                append_event(
                    session,
                    now,
                    actor,
                    "version.archived",
                    ("version", f"{model}/{row.number}", model),
                )
            return version_record(session, model, row)

        return self._db.write(work)

    # -- models ---------------------------------------------------------------------------

    def get_model(self, name: str) -> ModelRecord:
        with self._db.reading() as session:
            return model_records(session, [find_model(session, name)])[0]

    def list_models(self, include_archived: bool = False) -> list[ModelRecord]:
        with self._db.reading() as session:
            query = select(ModelRow).order_by(ModelRow.name)
            if not include_archived:
                query = query.where(ModelRow.archived_at.is_(None))
            return model_records(session, list(session.scalars(query)))

    def archive_model(self, name: str, actor: str) -> ModelRecord:
        """Refuse new versions of ``name`` and hide it from listings; nothing is deleted."""

        def work(session: Session) -> ModelRecord:
            row = find_model(session, name, for_update=True)
            if row.archived_at is None:
                row.archived_at = now = self._clock()
                append_event(session, now, actor, "model.archived", ("model", name, name))
            return model_records(session, [row])[0]

        return self._db.write(work)

    # -- aliases --------------------------------------------------------------------------

    def set_alias(
        self,
        model: str,
        alias: str,
        ref: VersionRef,
        actor: str,
        *,
        force: bool = False,
        as_of: datetime | None = None,
    ) -> AliasRecord:
        """Point ``alias`` at a version; moving it is recorded as an event.

        ``production`` is refused (409) on a version whose inputs its clients could not send
        (:func:`~ferryman.signature.incompatibility`), unless ``force``. ``as_of``: when the
        move was decided elsewhere (a webhook's timestamp); if the alias changed in a later
        second than that, the move is stale and refused with 409.
        """
        validate_alias(alias)

        def work(session: Session) -> AliasRecord:
            model_row = find_model(session, model, for_update=True)
            target = find_version(session, model_row, ref)
            if as_of is not None:
                _refuse_stale_move(session.get(AliasRow, (model_row.id, alias)), model, as_of)
            if alias == PRODUCTION and not force:
                _check_clients_can_call(session, model_row, target, FORCE_HINT)
            return self._move_alias(session, model_row, alias, target, actor, now=self._clock())

        return self._db.write(work)

    def remove_alias(self, model: str, alias: str, actor: str) -> None:
        def work(session: Session) -> None:
            model_row = find_model(session, model, for_update=True)
            row = session.get(AliasRow, (model_row.id, alias))
            if row is None:
                raise AliasNotFound(f"model {model!r} has no alias {alias!r}")
            number = session.get_one(VersionRow, row.version_id).number
            session.delete(row)
            append_event(
                session,
                self._clock(),
                actor,
                "alias.removed",
                ("alias", f"{model}@{alias}", model),
                details={"version": number},
            )

        self._db.write(work)

    # -- variants -------------------------------------------------------------------------

    def add_variant(
        self,
        model: str,
        ref: VersionRef,
        kind: str,
        data: bytes,
        actor: str,
        *,
        gate: dict[str, Any] | None = None,
        status: VariantStatus = VariantStatus.PENDING,
    ) -> VariantRecord:
        """Attach a servable form (``onnx-fp32``, ``onnx-int8``…) to a version."""
        validate_name(kind, "variant kind")
        inspect_artifact(data)
        stored = self._store.put(io.BytesIO(data))

        def work(session: Session) -> VariantRecord:
            model_row = find_model(session, model, for_update=True)
            version = find_version(session, model_row, ref)
            existing = session.scalar(
                select(VariantRow).where(
                    VariantRow.version_id == version.id, VariantRow.kind == kind
                )
            )
            if existing is not None:
                raise Conflict(f"{model} v{version.number} already has a variant {kind!r}")
            now = self._clock()
            row = VariantRow(
                version_id=version.id,
                kind=kind,
                artifact_digest=stored.digest,
                size_bytes=stored.size_bytes,
                status=status.value,
                gate=gate or {},
                created_by=actor,
                created_at=now,
            )
            session.add(row)
            append_event(
                session,
                now,
                actor,
                "variant.added",
                ("variant", f"{model}/{version.number}/{kind}", model),
                details={"digest": stored.digest, "status": status.value},
            )
            return variant_record(model, version.number, row)

        return self._db.write(work)

    def list_variants(self, model: str, ref: VersionRef) -> list[VariantRecord]:
        with self._db.reading() as session:
            version = find_version(session, find_model(session, model), ref)
            rows = session.scalars(
                select(VariantRow)
                .where(VariantRow.version_id == version.id)
                .order_by(VariantRow.id)
            )
            return [variant_record(model, version.number, row) for row in rows]

    # -- rollouts -------------------------------------------------------------------------

    def move_rollout(
        self,
        move: tuple[int, str, str],
        *,
        spec: DeploymentSpec | None = None,
        production: int | None = None,
        details: dict[str, Any] | None = None,
        **changes: Any,
    ) -> RolloutRecord:
        """One rollout transition (``move`` = rollout id, actor, action) with what it does to
        the world — the endpoint's new ``spec``, the ``production`` alias moved to a version —
        in one transaction: a crash leaves all of it or none (RELIABILITY F5).

        The alias's previous version is kept in the rollout's state (``production_before``),
        so a promotion can be undone.
        """

        def work(session: Session) -> RolloutRecord:
            now = self._clock()
            applied = dict(changes)
            if spec is not None:
                put_spec(session, now, spec, move[1])
            if production is not None:
                rollout = rollout_in(session, move[0])
                alias = self._production_to(session, rollout.model, production, move[1], now)
                before = {"production_before": alias.previous_version}
                applied["state"] = {**changes.get("state", rollout.state), **before}
            return apply_transition(session, now, move, details, applied)

        return self._db.write(work)

    def undo_promotion(
        self, who: tuple[int, str], spec: DeploymentSpec, production: int, reason: str
    ) -> RolloutRecord:
        """Roll back the endpoint's newest rollout after its promotion (``who`` = rollout id,
        actor): the endpoint's ``spec`` with the baseline back, the ``production`` alias back
        on a version, and the rollout marked, in one transaction (refused, 409, for any
        rollout but the newest promoted one)."""

        def work(session: Session) -> RolloutRecord:
            now = self._clock()
            reverted = revert_in(session, now, who, reason)
            put_spec(session, now, spec, who[1])
            self._production_to(session, reverted.model, production, who[1], now)
            return reverted

        return self._db.write(work)

    def _production_to(
        self, session: Session, model: str, version: int, actor: str, now: datetime
    ) -> AliasRecord:
        model_row = find_model(session, model, for_update=True)
        target = find_version(session, model_row, version)
        return self._move_alias(session, model_row, PRODUCTION, target, actor, now=now)

    # -- events ---------------------------------------------------------------------------

    def list_events(
        self,
        model: str | None = None,
        limit: int = 50,
        after_id: int | None = None,
        *,
        action: str | None = None,
        since: datetime | None = None,
    ) -> list[EventRecord]:
        """The newest events (oldest first), or those after ``after_id``; optionally only
        one ``action`` and only from ``since`` on."""
        if model is not None:
            validate_name(model, "model name")
        if not 1 <= limit <= 10_000:
            raise InvalidInput(f"limit {limit} is out of range; use 1..10000")
        with self._db.reading() as session:
            return query_events(session, model, limit, after_id, action=action, since=since)

    def record_event(
        self,
        actor: str,
        action: str,
        subject: tuple[str, str, str | None],
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append an event about something outside the registry's tables (a replica, a scale)."""
        validate_key(action, "action")

        def work(session: Session) -> None:
            append_event(session, self._clock(), actor, action, subject, details=details)

        self._db.write(work)

    # -- internals ------------------------------------------------------------------------

    def _model_for_update(self, session: Session, name: str, actor: str, now: datetime) -> ModelRow:
        """The model row, locked; created (with its event) if new. Refused if archived."""
        row = session.scalar(select(ModelRow).where(ModelRow.name == name).with_for_update())
        if row is None:
            row = ModelRow(name=name, description="", created_by=actor, created_at=now)
            session.add(row)
            session.flush()  # a concurrent creator makes this raise; Database.write retries
            append_event(session, now, actor, "model.created", ("model", name, name))
        if row.archived_at is not None:
            raise Conflict(f"model {name!r} is archived; it takes no new versions")
        return row

    def _move_alias(
        self,
        session: Session,
        model_row: ModelRow,
        alias: str,
        target: VersionRow,
        actor: str,
        *,
        now: datetime,
    ) -> AliasRecord:
        if target.archived_at is not None:
            raise Conflict(
                f"{model_row.name} v{target.number} is archived; aliases cannot point at it"
            )
        row = session.get(AliasRow, (model_row.id, alias))
        previous = None if row is None else session.get_one(VersionRow, row.version_id).number
        if row is None:
            row = AliasRow(model_id=model_row.id, name=alias)
            session.add(row)
        if previous != target.number:
            row.version_id, row.updated_by, row.updated_at = target.id, actor, now
            append_event(
                session,
                now,
                actor,
                "alias.set",
                ("alias", f"{model_row.name}@{alias}", model_row.name),
                details={"from": previous, "to": target.number},
            )
        return AliasRecord(
            model=model_row.name,
            alias=alias,
            version=target.number,
            previous_version=previous,
            updated_by=row.updated_by,
            updated_at=row.updated_at,
        )


def _check_clients_can_call(
    session: Session, model_row: ModelRow, target: VersionRow, fix: str
) -> None:
    """Refuse to move ``production`` where the clients of its version could not follow."""
    row = session.get(AliasRow, (model_row.id, PRODUCTION))
    if row is None or row.version_id == target.id:
        return
    current = session.get_one(VersionRow, row.version_id)
    problem = incompatibility(
        model_row.name,
        (current.number, Signature.model_validate(current.signature)),
        (target.number, Signature.model_validate(target.signature)),
        "production",
    )
    if problem is not None:
        raise Conflict(f"{problem}; {fix}")


def _refuse_stale_move(row: AliasRow | None, model: str, as_of: datetime) -> None:
    """409 when the alias changed in a later second than ``as_of`` (whole seconds: a
    webhook's timestamp has no fraction)."""
    if row is None or int(row.updated_at.timestamp()) <= int(as_of.timestamp()):
        return
    raise Conflict(
        f"{model}@{row.name} was changed at {row.updated_at.isoformat(timespec='seconds')} by "
        f"{row.updated_by}, after this move was sent ({as_of.isoformat(timespec='seconds')}); "
        "a stale move is refused, so the newer state stands (move the alias again to change it)"
    )
