"""Logging for the CLI process: the only place that configures it (STYLE.md 12)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from rich.logging import RichHandler

from ferryman.cli.output import errors
from ferryman.config import Settings


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(settings: Settings) -> None:
    handler: logging.Handler
    if settings.log_format == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLines())
    else:
        handler = RichHandler(console=errors, show_path=False, rich_tracebacks=False)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # Alembic names each of its built-in plugins at INFO when it is first imported, which
    # (imported lazily now) would come before the line a user needs: not worth a line.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
