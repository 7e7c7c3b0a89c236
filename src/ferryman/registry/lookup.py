"""Reading the registry's rows: find models and versions, and turn rows into records.

Shared by every part of the registry that needs a model or version by name, number or
alias; each function works in the caller's session (and so in its transaction).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ferryman.errors import InvalidInput, ModelNotFound, VersionNotFound
from ferryman.names import validate_name
from ferryman.registry.records import ModelRecord, VariantRecord, VariantStatus, VersionRecord
from ferryman.registry.tables import AliasRow, ModelRow, VariantRow, VersionRow
from ferryman.signature import Signature

MAX_VERSION = 2**31 - 1
"""The largest version number: the column is a 32-bit INTEGER on PostgreSQL."""

VersionRef = int | str
"""A version number, an alias name, or ``"latest"``."""


def find_model(session: Session, name: str, for_update: bool = False) -> ModelRow:
    validate_name(name, "model name")
    query = select(ModelRow).where(ModelRow.name == name)
    row = session.scalar(query.with_for_update() if for_update else query)
    if row is None:
        raise ModelNotFound(f"model {name!r} does not exist (ferryman models list shows them)")
    return row


def find_version(session: Session, model_row: ModelRow, ref: VersionRef) -> VersionRow:
    query = select(VersionRow).where(VersionRow.model_id == model_row.id)
    number = as_number(ref)
    if number is not None:
        row = session.scalar(query.where(VersionRow.number == number))
        what = f"version {number}"
    elif ref == "latest":
        row = session.scalar(
            query.where(VersionRow.archived_at.is_(None)).order_by(VersionRow.number.desc())
        )
        what = "any active version"
    else:
        alias = session.get(AliasRow, (model_row.id, validate_name(str(ref), "alias")))
        row = None if alias is None else session.get(VersionRow, alias.version_id)
        what = f"alias {ref!r}; set one: ferryman alias set {model_row.name} {ref} VERSION"
    if row is None:
        raise VersionNotFound(f"model {model_row.name!r} has no {what}")
    return row


def aliases_by_version(session: Session, model_id: int) -> dict[int, tuple[str, ...]]:
    found: dict[int, list[str]] = {}
    rows = session.scalars(
        select(AliasRow).where(AliasRow.model_id == model_id).order_by(AliasRow.name)
    )
    for row in rows:
        found.setdefault(row.version_id, []).append(row.name)
    return {version_id: tuple(names) for version_id, names in found.items()}


def version_record(session: Session, model: str, row: VersionRow) -> VersionRecord:
    aliases = aliases_by_version(session, row.model_id).get(row.id, ())
    return version_record_of(model, row, aliases)


def model_records(session: Session, rows: list[ModelRow]) -> list[ModelRecord]:
    ids = [row.id for row in rows]
    latest = dict(
        session.execute(
            select(VersionRow.model_id, func.max(VersionRow.number))
            .where(VersionRow.model_id.in_(ids))
            .group_by(VersionRow.model_id)
        ).all()
    )
    aliases: dict[int, dict[str, int]] = {}
    alias_rows = session.execute(
        select(AliasRow.model_id, AliasRow.name, VersionRow.number)
        .join(VersionRow, VersionRow.id == AliasRow.version_id)
        .where(AliasRow.model_id.in_(ids))
        .order_by(AliasRow.name)
    ).all()
    for model_id, alias, number in alias_rows:
        aliases.setdefault(model_id, {})[alias] = number
    return [
        ModelRecord(
            name=row.name,
            description=row.description,
            created_by=row.created_by,
            created_at=row.created_at,
            archived_at=row.archived_at,
            latest_version=latest.get(row.id),
            aliases=aliases.get(row.id, {}),
        )
        for row in rows
    ]


def as_number(ref: VersionRef) -> int | None:
    if isinstance(ref, bool):
        raise InvalidInput(f"version {ref!r} is not a version number or alias")
    if isinstance(ref, int):
        if not 1 <= ref <= MAX_VERSION:
            shown = ref if abs(ref) < 10**12 else "past 10^12"
            raise InvalidInput(
                f"version {shown} is not valid; versions are numbered 1 to {MAX_VERSION}"
            )
        return ref
    if ref.isascii() and ref.isdigit():
        # int() of thousands of digits raises ValueError; no version has more than 10.
        return as_number(int(ref) if len(ref) <= 12 else MAX_VERSION + 1)
    return None


def version_record_of(model: str, row: VersionRow, aliases: tuple[str, ...]) -> VersionRecord:
    return VersionRecord(
        model=model,
        version=row.number,
        digest=row.artifact_digest,
        format=row.artifact_format,
        size_bytes=row.size_bytes,
        metrics=row.metrics,
        params=row.params,
        tags=row.tags,
        description=row.description,
        signature=Signature.model_validate(row.signature),
        data_fingerprint=row.data_fingerprint,
        reference_digest=row.reference_digest,
        parent_run=row.parent_run_id,
        created_by=row.created_by,
        created_at=row.created_at,
        archived_at=row.archived_at,
        aliases=aliases,
    )


def variant_record(model: str, number: int, row: VariantRow) -> VariantRecord:
    return VariantRecord(
        model=model,
        version=number,
        kind=row.kind,
        digest=row.artifact_digest,
        size_bytes=row.size_bytes,
        status=VariantStatus(row.status),
        gate=row.gate,
        created_by=row.created_by,
        created_at=row.created_at,
    )
