"""What every command gets from the global options: settings and, on demand, the registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ferryman.cli.data_dir import resolve_data_dir
from ferryman.cli.output import errors
from ferryman.config import Settings
from ferryman.registry import Registry

if TYPE_CHECKING:
    from ferryman.sdk import Client


class CliContext:
    """Built once by the root callback; opens the registry only when a command needs it."""

    def __init__(self, settings: Settings) -> None:
        self.given_settings = settings
        """As given: for commands that need no data dir (``serve FILE``, ``gateway``)."""
        self._settings: Settings | None = None
        self._registry: Registry | None = None

    @property
    def settings(self) -> Settings:
        """The settings, with the data dir resolved (:mod:`ferryman.cli.data_dir`)."""
        if self._settings is None:
            self._settings = resolve_data_dir(self.given_settings, _note)
        return self._settings

    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry.open(self.settings)
        return self._registry

    def client(self) -> Client:
        from ferryman.sdk import Client, LocalBackend  # noqa: PLC0415 (not on a replica's path)

        return Client(LocalBackend(self.registry(), self.settings.user))

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None


def _note(line: str) -> None:
    errors.print(line, markup=False, highlight=False, soft_wrap=True)


def cli_context(ctx: typer.Context) -> CliContext:
    """The :class:`CliContext` of the running command."""
    state = ctx.find_root().obj
    if not isinstance(state, CliContext):  # pragma: no cover - the root callback sets it
        raise typer.Exit(2)
    return state
