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

from pydantic import BaseModel, ConfigDict, Field
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


class ServingSettings(BaseModel):
    """The data plane of one replica: where it listens, how it batches, what it refuses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(
        default="127.0.0.1", description="Interface the replica binds; loopback unless told."
    )
    port: int = Field(default=8080, ge=0, le=65535, description="HTTP port (0: any free port).")
    grpc_port: int | None = Field(
        default=None, ge=0, le=65535, description="gRPC port of the V2 protocol; None: no gRPC."
    )
    max_batch_size: int = Field(
        default=32, ge=1, le=4096, description="Most rows (batch entries) one model call takes."
    )
    max_delay_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="Longest the oldest queued request waits for a batch to fill, in ms; "
        "the wait is skipped when no other request is on its way.",
    )
    queue_capacity: int = Field(
        default=512, ge=1, description="Requests that may wait for the model; more get 503."
    )
    request_timeout_s: float = Field(
        default=10.0, gt=0, description="Deadline of every request from arrival; then 504."
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest request body; more gets 413."
    )
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest total of request header bytes; 431."
    )
    max_header_count: int = Field(
        default=100, ge=8, description="Most request headers; more gets 431."
    )
    drain_timeout_s: float = Field(
        default=30.0, ge=0, description="On SIGTERM, how long in-flight requests may finish."
    )
    intra_op_threads: int = Field(
        default=0, ge=0, description="ONNX Runtime intra-op threads; 0: its own default."
    )
    cache_entries: int = Field(
        default=0, ge=0, description="Response cache size in entries; 0: no cache."
    )
    cache_redis_url: str | None = Field(
        default=None,
        description="Shared response cache, e.g. redis://127.0.0.1:6379/0; None: in-process.",
    )


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
    serving: ServingSettings = Field(
        default_factory=ServingSettings, description="The data plane of a replica."
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
