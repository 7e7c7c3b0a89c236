"""The fleet knows its registry: a control plane on another (or a new) registry refuses to
act on a running fleet, and a database that fails says so in one line (CLI) or as JSON.

The running fleet here is a real replica state file naming a real process (this one), as
``LocalRuntime`` writes it; the databases are real SQLite files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event, text

from ferryman.config import ControlSettings, load_settings
from ferryman.control.fleet import check_fleet, running_fleet
from ferryman.control.server import open_registry
from ferryman.errors import Conflict, StorageFull, Unavailable
from ferryman.registry import Registry
from ferryman.registry.database import Database
from ferryman.runtimes import Fleet
from ferryman.runtimes.local.children import process_start
from ferryman.runtimes.local.processes import STATE_DIR
from tests.control.api.conftest import start_server


@pytest.mark.parametrize(
    ("fleet", "registry_id", "is_new", "refused"),
    [
        (Fleet(0, False, frozenset({"a"})), "b", True, False),  # nothing runs: any registry
        (Fleet(2, True, frozenset({"a"})), "a", False, False),  # its own registry
        (Fleet(2, True, frozenset({"a"})), "b", False, True),  # another registry
        (Fleet(1, False, frozenset({"a"})), "a", True, True),  # cannot be new and its own
        (Fleet(0, True, frozenset({""})), "b", True, True),  # a new registry, an older fleet
        (Fleet(2, True, frozenset({""})), "b", False, False),  # an older fleet, kept registry
        (Fleet(2, True, frozenset({"a", "b"})), "b", False, True),  # half of it is another's
    ],
)
def test_check_fleet_refuses_another_or_a_new_registry(
    fleet: Fleet, registry_id: str, is_new: bool, refused: bool
) -> None:
    if not refused:
        check_fleet(fleet, registry_id, is_new)
        return
    with pytest.raises(Conflict) as caught:
        check_fleet(fleet, registry_id, is_new)
    assert "--adopt" in caught.value.message
    assert "\n" not in caught.value.message


def _pretend_replica(data_dir: Path, registry_id: str) -> None:
    """A replica state file naming this (running) test process, as LocalRuntime writes it."""
    state = data_dir / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    record = {
        "id": "m-v1-0000", "pid": os.getpid(), "port": 1, "started_at_s": 0.0,
        "process_start": process_start(os.getpid()), "registry": registry_id,
        "spec": {"endpoint": "m", "variant": "v1", "model": "m", "version": 1},
    }  # fmt: skip
    (state / "m-v1-0000.json").write_text(json.dumps(record))


def test_a_control_plane_on_a_new_registry_refuses_the_running_fleet(tmp_path: Path) -> None:
    first = load_settings(data_dir=tmp_path / "data")
    registry = Registry.open(first)
    owner = registry.identity()
    registry.close()
    _pretend_replica(first.data_dir, owner)
    assert running_fleet(first).registries == {owner}

    elsewhere = first.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'typo.db'}"})
    with pytest.raises(Conflict) as caught:
        open_registry(elsewhere)
    assert f"belongs to registry {owner}" in caught.value.message
    assert "(new)" in caught.value.message

    with pytest.raises(Conflict):  # still another registry on the second try (no longer new)
        open_registry(elsewhere)
    adopted = open_registry(elsewhere, adopt=True)
    assert adopted.identity() != owner
    adopted.close()
    open_registry(first).close()  # its own registry: no refusal


def _ferryman(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRYMAN_")}
    env.update(FERRYMAN_DATA_DIR=str(data_dir), COLUMNS="200")
    return subprocess.run(
        [str(Path(sys.executable).with_name("ferryman")), *args],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip


def test_up_on_a_corrupt_database_says_so_in_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "registry.db").write_bytes(b"this is not a database at all" * 100)
    done = _ferryman(data_dir, "up", "--port", "1")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        "error: the registry database SQLite file 'registry.db' cannot be read as a Ferryman "
        "registry (file is not a database); restore it from a backup"
    ), done.stderr


def test_a_database_removed_while_running_gets_json_503s(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", control=ControlSettings())
    server, thread, running = start_server(settings)
    headers = {"authorization": f"Bearer {running.token}"}
    try:
        assert httpx.get(f"{running.url}/api/v1/models", headers=headers).status_code == 200
        for name in ("registry.db", "registry.db-wal", "registry.db-shm"):
            (settings.data_dir / name).unlink(missing_ok=True)
        for path in ("/api/v1/models", "/api/v1/events"):
            answer = httpx.get(f"{running.url}{path}", headers=headers)
            assert answer.status_code == 503, answer.text
            assert "was removed or replaced while in use" in answer.json()["error"]
        assert not (settings.data_dir / "registry.db").exists()  # no empty registry made
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        running.registry.close()


def test_a_full_disk_says_the_disk_is_full(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    database.migrate()
    database.dispose()

    @event.listens_for(database.engine, "connect")
    def _cap(dbapi_connection: object, _record: object) -> None:  # SQLite's own SQLITE_FULL
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages}")
        cursor.close()

    def fill(session: object) -> None:
        statement = text("INSERT INTO registry_meta (key, value) VALUES ('fill', :value)")
        session.execute(statement, {"value": "x" * 1_000_000})  # type: ignore[attr-defined]

    with pytest.raises(StorageFull) as caught:
        database.write(fill)
    assert caught.value.message.startswith(
        "the disk holding the registry database SQLite file 'registry.db' is full"
    )
    assert not isinstance(caught.value, Unavailable)
    database.dispose()
