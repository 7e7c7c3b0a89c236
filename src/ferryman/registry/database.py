"""One database URL, two engines that behave the same: SQLite (WAL) and PostgreSQL.

Writers are serialised where it matters: on SQLite every write transaction starts with
``BEGIN IMMEDIATE`` (so the version-number read and the insert cannot interleave with
another writer), on PostgreSQL the model row is locked ``FOR UPDATE``. Migrations run under
the same write lock (plus an advisory lock on PostgreSQL), so many processes may start
against a fresh database at once.

A database that fails is one line, never a trace: a full disk is :class:`StorageFull`, a
file that is not (or no longer) a registry is :class:`Unavailable` saying so, and a server
that cannot be reached is :class:`Unavailable` naming the URL (:func:`database_failure`).
A SQLite file removed or replaced while a process has it open is refused (503) instead of
writing on into the lost file (see ``_guard_sqlite_file``).
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
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ferryman.errors import FerrymanError, InvalidInput, StorageFull, Unavailable
from ferryman.redaction import redact_url

if TYPE_CHECKING:
    from alembic.config import Config

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
        self.was_created = False
        """True once :meth:`migrate` found no schema: this process made the registry."""
        file = None
        if self.dialect == "sqlite" and parsed.database and parsed.database != ":memory:":
            file = Path(parsed.database)
            _create_private(file)
        # hide_parameters: a failed statement's message (logged, or rendered by a server's
        # last-resort handler) would otherwise quote its values, webhook secrets among them.
        self.engine: Engine = create_engine(
            parsed, pool_pre_ping=self.dialect != "sqlite", hide_parameters=True
        )
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine, busy_timeout_s)
        if file is not None:
            _guard_sqlite_file(self.engine, file, self.shown)
        self._writer = self.engine.execution_options(**{_WRITE: True})

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session (no write lock taken)."""
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except DBAPIError as exc:
            if isinstance(exc, IntegrityError):
                raise
            raise database_failure(exc, self.shown) from None

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
            except DBAPIError as exc:
                raise database_failure(exc, self.shown) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def migrate(self) -> None:
        """Bring the schema to the newest migration; safe to call from many processes.

        A database already at the newest migration is told by one query, without Alembic
        (importing it and reading its scripts took a replica a third of a second and 11 MiB).
        """
        if self._is_at(shipped_head()):
            return
        from alembic import command  # noqa: PLC0415 (see above)
        from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

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
            self.was_created = current is None
            logger.info("migrating registry schema %s -> %s", current, head)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def _connected(self) -> Iterator[Connection]:
        """A writer connection; a server that cannot be reached is a clear 503, not a trace."""
        try:
            connection = self._writer.connect()
        except DBAPIError as exc:
            raise database_failure(exc, self.shown) from None
        with connection:
            try:
                yield connection
            except DBAPIError as exc:
                raise database_failure(exc, self.shown) from None

    def _is_at(self, revision: str | None) -> bool:
        """True when the schema is known to be at ``revision`` (False when unsure)."""
        if revision is None:
            return False
        try:
            with self.engine.connect() as connection:
                found = connection.execute(text("SELECT version_num FROM alembic_version"))
                return [row[0] for row in found] == [revision]
        except DBAPIError:  # no such table yet, or unreachable: the full path says which
            return False

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext  # noqa: PLC0415 (see migrate)

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()


_UNREADABLE = ("not a database", "malformed", "no such table", "corrupt", "undefinedtable")


def database_failure(exc: DBAPIError, shown: str) -> FerrymanError:
    """The one-line error for a database that failed: full, busy, unreadable or unreachable."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    lowered = f"{type(exc.orig).__name__} {reason}".lower()
    if "disk is full" in lowered or "no space left" in lowered or "diskfull" in lowered:
        return StorageFull(
            f"the disk holding the registry database {shown} is full ({reason}); free space "
            "on it, then retry"
        )
    if "locked" in lowered:
        return Unavailable("the registry database is busy; retry", 1)
    if any(sign in lowered for sign in _UNREADABLE) or not isinstance(exc, OperationalError):
        return Unavailable(
            f"the registry database {shown} cannot be read as a Ferryman registry ({reason}); "
            "restore it from a backup, or point --database-url (FERRYMAN_DATABASE_URL) at the "
            "right one",
            5,
        )
    return Unavailable(
        f"the registry database {shown} cannot be reached ({reason}); check database_url "
        "(FERRYMAN_DATABASE_URL) and that the server runs",
        5,
    )


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


def _guard_sqlite_file(engine: Engine, path: Path, shown: str) -> None:
    """Refuse to use a SQLite file that was removed or replaced since this engine opened it.

    Pooled connections keep the old file's inode open, so without this, writes after an
    ``rm registry.db`` would be acknowledged and then lost, and a new connection would
    create an empty registry in its place. One stat(2) per checkout.
    """
    try:
        first = path.stat()
    except OSError:
        return
    identity = (first.st_dev, first.st_ino)

    def _check() -> None:
        try:
            now = path.stat()
        except OSError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != identity:
            raise Unavailable(
                f"the registry database {shown} was removed or replaced while in use; "
                "restore it, then restart this process",
                5,
            )

    @event.listens_for(engine, "do_connect")
    def _on_do_connect(*_: Any) -> None:
        _check()

    @event.listens_for(engine, "checkout")
    def _on_checkout(*_: Any) -> None:
        _check()


def head_revision() -> str | None:
    """The newest migration this package ships (what ``migrate`` brings a database to)."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415 (see Database.migrate)

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def shipped_head() -> str | None:
    """:func:`head_revision` read from the script names alone: each migration's revision is
    the number its file name starts with (``0013_capacity.py`` is ``"0013"``; a test holds
    every script to it), so the newest is the highest number; None when none is found."""
    folder = resources.files("ferryman.registry") / "migrations" / "versions"
    numbers = [
        entry.name.split("_", 1)[0]
        for entry in folder.iterdir()
        if entry.name.endswith(".py") and entry.name[:4].isdigit() and "_" in entry.name
    ]
    return max(numbers) if numbers else None


def _alembic_config() -> Config:
    from alembic.config import Config  # noqa: PLC0415 (see Database.migrate)

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
