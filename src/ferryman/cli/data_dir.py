"""Which data dir a command works on, when the line does not say.

In order: the one given (``--data-dir``, ``FERRYMAN_DATA_DIR``, ``ferryman.toml``);
``./ferryman-data`` if it exists; the data dir of the one control plane running now
(``ferryman up`` or the demo, from another shell); else a new, empty ``./ferryman-data``,
with a one-line warning on stderr first, so an empty registry never surprises anyone.
"""

from __future__ import annotations

from collections.abc import Callable

from ferryman.config import Settings
from ferryman.control.data_dir_lock import running_control_planes
from ferryman.errors import Conflict


def resolve_data_dir(settings: Settings, say: Callable[[str], None]) -> Settings:
    """``settings`` with the data dir this command should use; ``say`` gets the note."""
    if "data_dir" in settings.model_fields_set or settings.data_dir.exists():
        return settings
    running = running_control_planes(settings.state_dir)
    if len(running) > 1:
        listed = ", ".join(f"{plane.data_dir} (pid {plane.pid})" for plane in running)
        raise Conflict(f"{len(running)} control planes run: {listed}; name one with --data-dir")
    if running:
        plane = running[0]
        say(f"using the data dir of the control plane on {plane.url}: {plane.data_dir}")
        return settings.model_copy(update={"data_dir": plane.data_dir})
    say(
        f"warning: no data dir given (--data-dir or FERRYMAN_DATA_DIR) and no control plane "
        f"running; using a new, empty ./{settings.data_dir}"
    )
    return settings
