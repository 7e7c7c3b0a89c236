"""A registry already at the newest migration is recognised without Alembic."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from ferryman.registry.database import (
    Database,
    _alembic_config,
    head_revision,
    shipped_head,
)


def test_every_migration_is_named_by_its_revision() -> None:
    """The fast check reads the newest revision from file names: hold the scripts to it."""
    scripts = ScriptDirectory.from_config(_alembic_config())
    for script in scripts.walk_revisions():
        assert Path(script.path).name.startswith(f"{script.revision}_"), script.path
    assert shipped_head() == head_revision()


def test_a_migrated_database_is_at_the_shipped_head_and_a_new_one_is_not(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        assert not database._is_at(shipped_head())  # no schema yet
        database.migrate()
        assert database.was_created
        assert database._is_at(shipped_head())
        assert not database._is_at("0001")
        database.migrate()  # the fast path: nothing to do
        assert database.current_revision() == head_revision()
    finally:
        database.dispose()
