"""The dashboard's static files, read once from the package into a fixed table.

A request names an asset by a key of this table; nothing from a request becomes a path.
Each asset carries a strong ETag, so browsers revalidate cheaply and pick up a new release.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every file under ``static/`` by its relative path (``js/main.js``)."""
    root = resources.files(__package__).joinpath("static")
    table: dict[str, Asset] = {}
    for name, item in _walk(root, ""):
        suffix = name[name.rfind(".") :]
        if suffix not in CONTENT_TYPES:
            continue
        body = item.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        table[name] = Asset(body, CONTENT_TYPES[suffix], etag)
    return table


def load_template(name: str) -> str:
    """One of the HTML pages under ``templates/``."""
    return resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")


def _walk(folder: Traversable, prefix: str) -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for item in folder.iterdir():
        name = f"{prefix}{item.name}"
        if item.is_dir():
            found.extend(_walk(item, f"{name}/"))
        elif item.is_file():
            found.append((name, item))
    return found
