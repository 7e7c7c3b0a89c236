"""The local runtime's publish: the route-table file the gateway reads is kept as wanted.

A stand-in takes the gateway processes' place (the real ones are driven end to end in
``tests/control/e2e/test_fleet_integrity.py``); the file is a real file in a data dir.
"""

from __future__ import annotations

from pathlib import Path

from ferryman.config import load_settings
from ferryman.gateway.routes import RouteTable
from ferryman.runtimes.local.runtime import LocalRuntime
from tests.support import SteppedClock


class Gateways:
    """What the local runtime asks of its gateway processes."""

    url = "http://127.0.0.1:1"

    def __init__(self) -> None:
        self.generation: int | None = None
        self.ensured = 0

    def ensure_running(self) -> bool:
        self.ensured += 1
        return False


def test_a_lost_garbled_or_unheld_route_table_is_written_again(tmp_path: Path) -> None:
    """Issue 13: a deleted or garbled file, or a gateway holding another generation past the
    route grace, gets the wanted table again although nothing changed."""
    settings = load_settings(data_dir=tmp_path)
    clock, gateways = SteppedClock(), Gateways()
    runtime = LocalRuntime(settings, clock, "registry-a", gateway=gateways)  # type: ignore[arg-type]
    path = settings.routes_path
    table = RouteTable(generation=3, registry="registry-a")
    try:
        runtime.publish(table)
        assert runtime.published() == table
        assert gateways.ensured == 1  # every publish keeps the gateways running
        inode = path.stat().st_ino
        runtime.publish(table)
        assert path.stat().st_ino == inode  # as wanted: not written again

        path.unlink()
        runtime.publish(table)
        assert runtime.published() == table
        path.write_text("{garbled")
        runtime.publish(table)
        assert runtime.published() == table

        gateways.generation = 2  # the serving gateway holds an older table
        inode = path.stat().st_ino
        runtime.publish(table)
        clock.now_s += 0.5
        runtime.publish(table)
        assert path.stat().st_ino == inode  # within the grace: it may be reading it now
        clock.now_s += settings.control.route_grace_s
        runtime.publish(table)
        assert path.stat().st_ino != inode  # a new file, which the gateway reads again
        assert runtime.published() == table
    finally:
        runtime.close()
