"""One control plane per data dir, and a note of where each one runs.

A control plane (``ferryman up``, the demo) holds an exclusive ``flock`` on
``<data_dir>/control.lock`` while it runs, and writes its pid and API URL into that file: a
second one on the same data dir is refused (two control loops would fight over one fleet),
and ``ferryman down`` knows whom to ask. The kernel drops the lock when the process ends,
however it ends, so a stale file never blocks a start.

It also leaves a note, ``<state_dir>/control-planes/<pid>.json``, naming its data dir, so a
command run from another shell, without ``--data-dir``, can find the running one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ferryman.errors import Conflict

LOCK_FILE = "control.lock"
NOTES = "control-planes"


@dataclass(frozen=True)
class RunningControlPlane:
    """A control plane that holds its data dir's lock now."""

    pid: int
    url: str
    data_dir: Path


class DataDirLock:
    """Held by a running control plane; ``release`` (or the process's end) frees it."""

    def __init__(self, data_dir: Path, state_dir: Path, url: str) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._path = data_dir / LOCK_FILE
        self._file = self._path.open("a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            holder = running_on(data_dir)
            who = f" (pid {holder.pid}, {holder.url})" if holder else ""
            raise Conflict(
                f"a control plane already runs on data dir {data_dir}{who}; use it, stop it "
                "with `ferryman down`, or start this one with another --data-dir"
            ) from None
        record = {"pid": os.getpid(), "url": url, "data_dir": str(data_dir.absolute())}
        self._file.truncate(0)
        self._file.write(json.dumps(record))
        self._file.flush()
        self._note = state_dir / NOTES / f"{os.getpid()}.json"
        with contextlib.suppress(OSError):  # without a note, only --data-dir finds this one
            self._note.parent.mkdir(parents=True, exist_ok=True)
            self._note.write_text(json.dumps(record))

    def release(self) -> None:
        self._note.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self._file.truncate(0)
        self._file.close()  # closing the only descriptor drops the lock


def running_on(data_dir: Path) -> RunningControlPlane | None:
    """The control plane holding ``data_dir``'s lock, if one does."""
    path = data_dir / LOCK_FILE
    try:
        with path.open("r") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _parse(file.read(), data_dir)
            fcntl.flock(file, fcntl.LOCK_UN)  # nobody held it: no control plane runs there
            return None
    except OSError:
        return None


def running_control_planes(state_dir: Path) -> list[RunningControlPlane]:
    """The control planes whose notes are in ``state_dir`` and that still run; stale notes
    (a control plane killed before it could remove its own) are removed."""
    found = []
    for note in sorted((state_dir / NOTES).glob("*.json")):
        try:
            data_dir = Path(json.loads(note.read_text())["data_dir"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        running = running_on(data_dir)
        if running is None:
            note.unlink(missing_ok=True)
        else:
            found.append(running)
    return found


def _parse(text: str, data_dir: Path) -> RunningControlPlane | None:
    try:
        record = json.loads(text)
        return RunningControlPlane(int(record["pid"]), str(record["url"]), data_dir)
    except (ValueError, KeyError, TypeError):
        return None  # held, but its record is still being written
