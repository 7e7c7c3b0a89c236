"""``ferryman down``: stop the replicas and the gateway that this data dir runs.

With a control plane running on the data dir, ``down`` asks it (``POST
/api/v1/fleet/stop``): it stops its own loop first, so nothing restarts what is stopped
next, then the fleet, then itself. Without one, ``down`` stops the leftover processes.
"""

from __future__ import annotations

import time

import httpx
import typer

from ferryman.cli.context import cli_context
from ferryman.cli.output import console
from ferryman.cli.runtime_options import RayAddressOption, RuntimeOption, with_runtime
from ferryman.config import Settings
from ferryman.control.api.security import TOKEN_FILE
from ferryman.control.data_dir_lock import RunningControlPlane, running_on
from ferryman.errors import DeadlineExceeded, Unavailable, error_for_status
from ferryman.runtimes import create_runtime

STOP_TIMEOUT_S = 120.0
"""Replicas drain first (``serving.drain_timeout_s``), so a stop may take a while."""


def down(
    ctx: typer.Context, runtime: RuntimeOption = None, ray_address: RayAddressOption = None
) -> None:
    """Stop every replica and the gateway, and the control plane running on the data dir.

    With no control plane running, the runtime stops what it left: name the one `up` was
    given (--runtime ray --ray-address ADDR) if it is not in the settings."""
    state = cli_context(ctx)
    settings = with_runtime(state.settings, runtime, ray_address)
    running = running_on(settings.data_dir)
    if running is None:  # no control plane: the runtime stops what it left running
        fleet_runtime = create_runtime(settings)
        try:
            stopped = fleet_runtime.stop_fleet()
        finally:
            fleet_runtime.close()
        console.print(f"Stopped {stopped} replicas and the gateway")
        return
    stopped = _ask_to_stop(running, settings)
    _wait_until_gone(running)
    console.print(
        f"Stopped {stopped} replicas and the gateway, and the control plane on {running.url} "
        f"(pid {running.pid})"
    )


def _ask_to_stop(running: RunningControlPlane, settings: Settings) -> int:
    headers = {}
    if settings.control.auth_required:
        token = (settings.data_dir / TOKEN_FILE).read_text().strip()
        headers["authorization"] = f"Bearer {token}"
    try:
        answer = httpx.post(
            f"{running.url}/api/v1/fleet/stop", headers=headers, timeout=STOP_TIMEOUT_S
        )
    except httpx.HTTPError as exc:
        raise Unavailable(
            f"the control plane on {running.url} (pid {running.pid}) did not answer ({exc}); "
            f"stop it (kill {running.pid}), then run `ferryman down` again"
        ) from exc
    if answer.status_code != 200:
        raise error_for_status(answer.status_code, _error_of(answer))
    return int(answer.json()["stopped_replicas"])


def _error_of(answer: httpx.Response) -> str:
    try:
        return str(answer.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"the control plane answered {answer.status_code}"


def _wait_until_gone(running: RunningControlPlane, timeout_s: float = 30.0) -> None:
    """Until the control plane's process has let go of its data dir."""
    deadline = time.monotonic() + timeout_s
    while running_on(running.data_dir) is not None:
        if time.monotonic() > deadline:
            raise DeadlineExceeded(
                f"the control plane (pid {running.pid}) stopped its fleet but still runs "
                f"after {timeout_s:.0f} s"
            )
        time.sleep(0.1)  # another process's exit: nothing this one can await
