"""Settings: built once at the entry point and passed down, never read at import time.

Precedence, highest first: values passed in (CLI flags), environment variables with the
prefix ``FERRYMAN_`` (nested sections use ``__``: ``FERRYMAN_SERVING__PORT``), the TOML
file (``ferryman.toml`` in the working directory, or the file ``FERRYMAN_CONFIG`` names),
then the defaults below.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ferryman.errors import InvalidInput

DEFAULT_CONFIG_FILE = "ferryman.toml"


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


class Settings(BaseSettings):
    """Everything a Ferryman process can be told; each field says its unit."""

    model_config = SettingsConfigDict(
        env_prefix="FERRYMAN_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(
        default=Path("ferryman-data"),
        description="Where the registry database (by default) and the artifacts live.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the registry, e.g. postgresql+psycopg://host/db; "
        "default: the SQLite file registry.db in the data dir.",
    )
    user: str = Field(
        default_factory=_current_user,
        description="Who is recorded as the actor of changes (created_by, events).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="WARNING", description="Level of the CLI's log output (on stderr)."
    )
    log_format: Literal["console", "json"] = Field(
        default="console", description="Rich console lines for people, JSON lines for machines."
    )
    sqlite_busy_timeout_s: float = Field(
        default=30.0, gt=0, description="How long a SQLite writer waits for the lock."
    )

    @property
    def resolved_database_url(self) -> str:
        """The database URL in force: the configured one or the data dir's SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'registry.db').absolute()}"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        named = os.environ.get("FERRYMAN_CONFIG")
        if named and not Path(named).is_file():
            raise InvalidInput(f"FERRYMAN_CONFIG names {named!r}, which is not a file")
        toml_file = Path(named or DEFAULT_CONFIG_FILE)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file))


def load_settings(**overrides: Any) -> Settings:
    """Build the process's settings; ``None`` overrides mean "not given"."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
