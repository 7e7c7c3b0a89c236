"""One database URL, two engines that behave the same: SQLite (WAL) and PostgreSQL.

Writers are serialised where it matters: on SQLite every write transaction starts with
``BEGIN IMMEDIATE`` (so the version-number read and the insert cannot interleave with
another writer), on PostgreSQL the model row is locked ``FOR UPDATE``. Migrations run under
the same write lock (plus an advisory lock on PostgreSQL), so many processes may start
against a fresh database at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ferryman.errors import InvalidInput, Unavailable
from ferryman.redaction import redact_url

logger = logging.getLogger(__name__)

T = TypeVar("T")

_WRITE = "ferryman_write"
_MIGRATION_LOCK_KEY = 0x6665727279  # "ferry": the PostgreSQL advisory-lock id
_RACE_RETRIES = 8


class Database:
    """An engine plus the two kinds of transaction the registry uses."""

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0) -> None:
        parsed = _parse(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in {"sqlite", "postgresql"}:
            raise InvalidInput(
                f"database URL scheme {parsed.drivername!r} is not supported; "
                "use sqlite:///path/registry.db or postgresql+psycopg://host/db"
            )
        self.shown = _shown(parsed, url)
        if self.dialect == "sqlite" and parsed.database and parsed.database != ":memory:":
            _create_private(Path(parsed.database))
        # hide_parameters: a failed statement's message (logged, or rendered by a server's
        # last-resort handler) would otherwise quote its values, webhook secrets among them.
        self.engine: Engine = create_engine(
            parsed, pool_pre_ping=self.dialect != "sqlite", hide_parameters=True
        )
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine, busy_timeout_s)
        self._writer = self.engine.execution_options(**{_WRITE: True})

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session (no write lock taken)."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def write(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a write transaction and commit it, or leave nothing behind.

        A uniqueness race with a concurrent writer (two processes creating the same model)
        rolls back and runs ``work`` again; ``work`` sees the winner's row the second time.
        """
        for attempt in range(_RACE_RETRIES):
            try:
                with Session(self._writer, expire_on_commit=False) as session, session.begin():
                    return work(session)
            except IntegrityError:
                if attempt == _RACE_RETRIES - 1:
                    raise
                logger.debug("write raced another writer; retrying (attempt %d)", attempt + 1)
                time.sleep(0.005 * (attempt + 1))
            except OperationalError as exc:
                if "locked" in str(exc.orig):
                    raise Unavailable("the registry database is busy; retry", 1) from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def migrate(self) -> None:
        """Bring the schema to the newest migration; safe to call from many processes."""
        config = _alembic_config()
        head = head_revision()
        with self._connected() as connection, connection.begin():
            if self.dialect == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            current = MigrationContext.configure(connection).get_current_revision()
            if current == head:
                return
            logger.info("migrating registry schema %s -> %s", current, head)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def _connected(self) -> Iterator[Connection]:
        """A writer connection; a server that cannot be reached is a clear 503, not a trace."""
        try:
            connection = self._writer.connect()
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise Unavailable(
                f"the registry database {self.shown} cannot be reached ({reason}); check "
                "database_url (FERRYMAN_DATABASE_URL) and that the server runs",
                5,
            ) from None
        with connection:
            yield connection

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError):  # a bad port is a ValueError that quotes the port
        raise InvalidInput(
            "the database URL cannot be parsed; give sqlite:///path/registry.db or "
            "postgresql+psycopg://user@host:5432/db"
        ) from None


def _shown(parsed: URL, url: str) -> str:
    """How messages name the database: no credentials, no query values, no local path."""
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {Path(parsed.database or ':memory:').name!r}"
    return redact_url(url)


def _create_private(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600): it holds webhook secrets.

    SQLite gives its -wal and -shm files the mode of the database file. An existing file
    keeps the mode it has.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def head_revision() -> str | None:
    """The newest migration this package ships (what ``migrate`` brings a database to)."""
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def _alembic_config() -> Config:
    config = Config()
    location = resources.files("ferryman.registry") / "migrations"
    config.set_main_option("script_location", str(location))
    return config


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    """WAL, foreign keys, full sync, and our own BEGIN (pysqlite's is unreliable)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        is_write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if is_write else "BEGIN")
