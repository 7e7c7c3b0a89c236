"""The registry's behaviour, on SQLite and on PostgreSQL (see the database_url fixture)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DatabaseError

from ferryman.artifacts import LocalArtifactStore
from ferryman.errors import (
    AliasNotFound,
    Conflict,
    InvalidInput,
    InvalidName,
    ModelNotFound,
    RunNotFound,
    UnsafeArtifact,
    VersionNotFound,
)
from ferryman.reference import GoldenRequest, ReferenceData, Tensor
from ferryman.registry import (
    Database,
    Registry,
    RunStatus,
    VariantStatus,
    build_metadata,
)
from ferryman.registry.tables import Base, EventRow, ModelRow, VersionRow
from tests.s3server import S3Server

OnnxFactory = Callable[..., bytes]


def test_versions_are_numbered_from_one_per_model(
    registry: Registry, onnx_bytes: OnnxFactory
) -> None:
    first = registry.register("digits", onnx_bytes(), "alice")
    second = registry.register("digits", onnx_bytes(seed_value=1.0), "bob")
    other = registry.register("fraud", onnx_bytes(), "alice")

    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert [v.version for v in registry.list_versions("digits")] == [1, 2]
    assert second.created_by == "bob"
    assert second.created_at.tzinfo is not None
    assert registry.get_version("digits", "latest").version == 2


def test_version_records_metadata_signature_and_lineage(
    registry: Registry, onnx_bytes: OnnxFactory
) -> None:
    run = registry.runs.create("image-classifier", "alice", model="digits", params={"lr": 0.01})
    metadata = build_metadata(
        metrics={"accuracy": 0.97},
        params={"epochs": 5, "optimizer": "adam"},
        tags={"team": "vision"},
        description="first try",
        data_fingerprint="sha256-abc123",
        parent_run=run.id,
    )
    record = registry.register("digits", onnx_bytes(width=8), "alice", metadata)

    fetched = registry.get_version("digits", 1)
    assert fetched == record
    assert fetched.metrics == {"accuracy": 0.97}
    assert fetched.params == {"epochs": 5, "optimizer": "adam"}
    assert fetched.tags == {"team": "vision"}
    assert fetched.parent_run == run.id
    assert fetched.data_fingerprint == "sha256-abc123"
    assert fetched.signature.inputs[0].describe() == "x FP32 [-1, 8]"
    assert registry.store.read(fetched.digest) == onnx_bytes(width=8)


@pytest.fixture(params=["local", "s3"])
def registry_on(request: pytest.FixtureRequest, database: Database, tmp_path: Path) -> Registry:
    """The registry with its artifacts in a local directory, then in S3 (moto's server)."""
    if request.param == "local":
        return Registry(database, LocalArtifactStore(tmp_path / "artifacts"))
    server: S3Server = request.getfixturevalue("s3_server")
    return Registry(database, server.store(tmp_path / "cache"))


def test_reference_data_round_trips_through_the_store(
    registry_on: Registry, onnx_bytes: OnnxFactory
) -> None:
    registry = registry_on
    golden = GoldenRequest(
        inputs={"x": Tensor(datatype="FP32", shape=(1, 4), data=(1.0, -1.0, 2.0, -2.0))},
        outputs={"y": Tensor(datatype="FP32", shape=(1, 4), data=(1.0, 0.0, 2.0, 0.0))},
    )
    reference = ReferenceData(golden=(golden,), labels=("a", "b"))
    registry.register("digits", onnx_bytes(), "alice", reference=reference)

    assert registry.get_reference("digits", 1) == reference
    version = registry.register("digits", onnx_bytes(seed_value=2.0), "alice")
    assert registry.get_reference("digits", 2) is None
    assert registry.store.read(version.digest) == onnx_bytes(seed_value=2.0)


def test_alias_moves_are_events(registry: Registry, onnx_bytes: OnnxFactory) -> None:
    registry.register("digits", onnx_bytes(), "alice", build_metadata(aliases=("candidate",)))
    registry.register("digits", onnx_bytes(seed_value=1.0), "alice")
    registry.set_alias("digits", "production", 1, "alice")
    moved = registry.set_alias("digits", "production", 2, "bob")

    assert (moved.previous_version, moved.version) == (1, 2)
    assert registry.get_version("digits", "production").version == 2
    assert registry.get_version("digits", 2).aliases == ("production",)
    assert registry.get_model("digits").aliases == {"candidate": 1, "production": 2}
    alias_events = [e for e in registry.list_events("digits") if e.action == "alias.set"]
    assert [(e.object_key, e.details, e.actor) for e in alias_events] == [
        ("digits@candidate", {"from": None, "to": 1}, "alice"),
        ("digits@production", {"from": None, "to": 1}, "alice"),
        ("digits@production", {"from": 1, "to": 2}, "bob"),
    ]


def test_setting_an_alias_to_where_it_is_writes_no_event(
    registry: Registry, onnx_bytes: OnnxFactory
) -> None:
    registry.register("digits", onnx_bytes(), "alice")
    registry.set_alias("digits", "production", 1, "alice")
    before = len(registry.list_events())
    registry.set_alias("digits", "production", 1, "alice")
    assert len(registry.list_events()) == before


def test_removing_an_alias(registry: Registry, onnx_bytes: OnnxFactory) -> None:
    registry.register("digits", onnx_bytes(), "alice", build_metadata(aliases=("candidate",)))
    registry.remove_alias("digits", "candidate", "alice")
    with pytest.raises(VersionNotFound):
        registry.get_version("digits", "candidate")
    with pytest.raises(AliasNotFound):
        registry.remove_alias("digits", "candidate", "alice")
    assert registry.list_events("digits")[-1].action == "alias.removed"


@pytest.mark.parametrize("alias", ["latest", "Production", "../prod", "", "a" * 64])
def test_bad_aliases_are_refused(registry: Registry, onnx_bytes: OnnxFactory, alias: str) -> None:
    registry.register("digits", onnx_bytes(), "alice")
    with pytest.raises(InvalidInput):
        registry.set_alias("digits", alias, 1, "alice")


def test_archiving_a_version_hides_it_but_keeps_it(
    registry: Registry, onnx_bytes: OnnxFactory
) -> None:
    registry.register("digits", onnx_bytes(), "alice", build_metadata(aliases=("production",)))
    registry.register("digits", onnx_bytes(seed_value=1.0), "alice")

    with pytest.raises(Conflict, match="aliased as production"):
        registry.archive_version("digits", 1, "alice")
    archived = registry.archive_version("digits", 2, "alice")

    assert archived.archived_at is not None
    assert [v.version for v in registry.list_versions("digits")] == [1]
    assert [v.version for v in registry.list_versions("digits", include_archived=True)] == [1, 2]
    assert registry.get_version("digits", "latest").version == 1
    with pytest.raises(Conflict, match="archived"):
        registry.set_alias("digits", "candidate", 2, "alice")
    # Numbers are never reused.
    assert registry.register("digits", onnx_bytes(seed_value=3.0), "alice").version == 3


def test_an_archived_model_takes_no_new_versions(
    registry: Registry, onnx_bytes: OnnxFactory
) -> None:
    registry.register("digits", onnx_bytes(), "alice")
    registry.archive_model("digits", "alice")
    assert registry.list_models() == []
    assert [m.name for m in registry.list_models(include_archived=True)] == ["digits"]
    with pytest.raises(Conflict, match="archived"):
        registry.register("digits", onnx_bytes(), "alice")


def test_lookups_of_missing_things_say_what_is_missing(
    registry: Registry, onnx_bytes: OnnxFactory
) -> None:
    with pytest.raises(ModelNotFound, match="'nope'"):
        registry.get_version("nope", 1)
    registry.register("digits", onnx_bytes(), "alice")
    with pytest.raises(VersionNotFound, match="version 7"):
        registry.get_version("digits", 7)
    with pytest.raises(VersionNotFound, match="alias 'staging'"):
        registry.get_version("digits", "staging")
    with pytest.raises(InvalidInput, match="numbered 1 to 2147483647"):
        registry.get_version("digits", 0)
    # Past the 32-bit column, and past what int() parses (found by the schema fuzz: 500s).
    for number in (2**31, 2**63, "9" * 20, "9" * 5000):
        with pytest.raises(InvalidInput, match="numbered 1 to 2147483647"):
            registry.get_version("digits", number)


def test_a_failed_registration_leaves_nothing_behind(
    registry: Registry, database: Database, onnx_bytes: OnnxFactory
) -> None:
    with pytest.raises(RunNotFound):
        registry.register("digits", onnx_bytes(), "alice", build_metadata(parent_run="0" * 32))
    with pytest.raises(UnsafeArtifact):
        registry.register("digits", b"not a model", "alice")
    with database.reading() as session:
        assert session.scalar(select(func.count()).select_from(ModelRow)) == 0
        assert session.scalar(select(func.count()).select_from(VersionRow)) == 0
        assert session.scalar(select(func.count()).select_from(EventRow)) == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metrics": {"accuracy": float("nan")}}, "finite"),
        ({"metrics": {"../acc": 1.0}}, "not allowed"),
        ({"metrics": {"accuracy": "high"}}, "metrics.accuracy"),
        ({"tags": {"team": "x" * 2000}}, "at most 1024"),
        ({"description": "x" * 20_000}, "at most 10000"),
        ({"aliases": ("latest",)}, "reserved"),
        ({"data_fingerprint": "../../etc"}, "not allowed"),
    ],
)
def test_bad_metadata_is_refused_with_the_reason(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        build_metadata(**fields)


def test_variants_attach_to_versions(registry: Registry, onnx_bytes: OnnxFactory) -> None:
    registry.register("digits", onnx_bytes(), "alice")
    fp32 = registry.add_variant(
        "digits",
        1,
        "onnx-fp32",
        onnx_bytes(),
        "alice",
        gate={"max_abs_diff": 0.0},
        status=VariantStatus.PASSED,
    )
    int8 = registry.add_variant(
        "digits",
        "latest",
        "onnx-int8",
        onnx_bytes(seed_value=0.5),
        "alice",
        gate={"accuracy_drop_pp": 3.2, "reason": "accuracy dropped 3.2 pp > 1 pp"},
        status=VariantStatus.REJECTED,
    )
    assert registry.list_variants("digits", 1) == [fp32, int8]
    assert int8.status is VariantStatus.REJECTED
    with pytest.raises(Conflict, match="already has a variant 'onnx-fp32'"):
        registry.add_variant("digits", 1, "onnx-fp32", onnx_bytes(), "alice")
    with pytest.raises(InvalidName):
        registry.add_variant("digits", 1, "../fp32", onnx_bytes(), "alice")


def test_runs_record_params_metrics_checkpoints_and_status(registry: Registry) -> None:
    runs = registry.runs
    run = runs.create("image-classifier", "alice", model="digits", params={"epochs": 3})
    for epoch in range(3):
        runs.log_metrics(
            run.id, epoch, {"loss": 1.0 / (epoch + 1), "val_accuracy": 0.8 + epoch / 10}
        )
    stored = registry.store.put(__import__("io").BytesIO(b"checkpoint bytes"))
    runs.add_checkpoint(run.id, 2, stored.digest, stored.size_bytes)
    runs.finish(run.id, RunStatus.INTERRUPTED, "alice")
    runs.resume(run.id, "alice")
    finished = runs.finish(run.id, RunStatus.SUCCEEDED, "alice")

    assert finished.status is RunStatus.SUCCEEDED
    assert [p.value for p in finished.metrics["loss"]] == pytest.approx([1.0, 0.5, 1 / 3])
    assert [p.step for p in finished.metrics["val_accuracy"]] == [0, 1, 2]
    assert finished.checkpoints[0].digest == stored.digest
    assert [r.id for r in runs.list(model="digits")] == [run.id]
    with pytest.raises(Conflict, match="succeeded"):
        runs.log_metrics(run.id, 4, {"loss": 0.1})
    with pytest.raises(Conflict):
        runs.resume(run.id, "alice")
    actions = [e.action for e in registry.list_events("digits")]
    assert actions == ["run.started", "run.interrupted", "run.resumed", "run.succeeded"]


def test_events_page_forward_and_filter_by_model(
    registry: Registry, onnx_bytes: OnnxFactory
) -> None:
    for index in range(3):
        registry.register("digits", onnx_bytes(seed_value=float(index)), "alice")
    registry.register("fraud", onnx_bytes(), "alice")
    every = registry.list_events(limit=100)
    assert [e.id for e in every] == sorted(e.id for e in every)
    assert registry.list_events(limit=2) == every[-2:]
    assert registry.list_events(after_id=every[1].id, limit=2) == every[2:4]
    assert {e.model for e in registry.list_events("fraud")} == {"fraud"}
    with pytest.raises(InvalidInput, match="limit"):
        registry.list_events(limit=0)


def test_the_audit_log_and_versions_resist_tampering(
    registry: Registry, database: Database, onnx_bytes: OnnxFactory
) -> None:
    registry.register("digits", onnx_bytes(), "alice")
    tampering = [
        update(EventRow).values(actor="mallory"),
        delete(EventRow),
        update(VersionRow).values(artifact_digest="0" * 64),
        update(VersionRow).values(metrics={"accuracy": 1.0}),
        delete(VersionRow),
        delete(ModelRow),
    ]
    for statement in tampering:
        with pytest.raises(DatabaseError), database.engine.begin() as connection:
            connection.execute(statement)
    with database.engine.begin() as connection:  # archiving is the one allowed change
        connection.execute(update(VersionRow).values(archived_at=datetime.now(UTC)))


def test_migrations_match_the_tables_and_are_idempotent(database: Database) -> None:
    database.migrate()
    versions = resources.files("ferryman.registry") / "migrations" / "versions"
    newest = max(p.name[:4] for p in versions.iterdir() if p.name[:4].isdigit())
    assert database.current_revision() == newest
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    database.migrate()
    with database.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    database.dispose()


def test_unsupported_database_urls_are_refused() -> None:
    with pytest.raises(InvalidInput, match="not supported"):
        Database("mysql://root@127.0.0.1/test")
