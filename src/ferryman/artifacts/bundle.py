"""Model bundles: a language model's folder stored as one artifact (an uncompressed tar).

ONNX Runtime GenAI loads a folder (``model.onnx``, its weights, ``genai_config.json`` and
the tokenizer's JSON files), while the store keeps one file per digest. A bundle is that
folder as a plain POSIX tar, accepted only if every member is a regular file whose bare
name is on an allow-list of non-executable formats (ONNX, JSON, tokenizer text), within
size caps. Nothing in a bundle is ever a path: members are written by their allowed bare
name into a directory named by the bundle's digest, so ``..``, absolute names, links and
devices cannot reach the filesystem.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ferryman.errors import UnsafeArtifact

MODEL_FILE = "model.onnx"
ALLOWED_FILES = frozenset(
    {
        MODEL_FILE,
        "model.onnx.data",
        "genai_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
        "config.json",
        "vocab.json",
        "merges.txt",
        "added_tokens.json",
    }
)
"""Bare names a bundle may hold: ONNX, JSON and tokenizer text, never code or pickles."""

MAX_MEMBER_BYTES = 4 << 30
MAX_BUNDLE_BYTES = 8 << 30
_TAR_MAGIC_OFFSET = 257


def is_bundle(data: bytes) -> bool:
    """True if ``data`` starts like a POSIX (ustar) tar archive."""
    return data[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + 5] == b"ustar"


def pack_bundle(folder: Path) -> bytes:
    """The allowed files of ``folder`` as a reproducible tar (sorted, no owners, time 0).

    >>> import tempfile; folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "genai_config.json").write_text("{}")
    >>> sorted(read_bundle(pack_bundle(folder)))
    ['genai_config.json']
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for path in sorted(folder.iterdir()):
            if path.name not in ALLOWED_FILES or not path.is_file() or path.is_symlink():
                continue
            info = tarfile.TarInfo(path.name)
            info.size = path.stat().st_size
            info.mode = 0o644
            with path.open("rb") as handle:
                archive.addfile(info, handle)
    return buffer.getvalue()


def read_bundle(data: bytes) -> dict[str, bytes]:
    """The members of a bundle by name; raise UnsafeArtifact on anything not allowed."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise UnsafeArtifact(f"refused: bundle of {len(data)} bytes is over {MAX_BUNDLE_BYTES}")
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for info in archive:
                _check_member(info, members)
                extracted = archive.extractfile(info)
                if extracted is None:
                    raise UnsafeArtifact(f"refused: bundle member {info.name!r} has no data")
                members[info.name] = extracted.read()
    except tarfile.TarError as exc:
        raise UnsafeArtifact(f"refused: the bundle is not a readable tar archive ({exc})") from None
    if MODEL_FILE not in members or "genai_config.json" not in members:
        raise UnsafeArtifact(
            f"refused: a model bundle needs {MODEL_FILE} and genai_config.json; it holds "
            f"{sorted(members)}"
        )
    return members


def unpack_bundle(data: bytes, digest: str, cache_root: Path) -> Path:
    """The folder of a verified bundle under ``cache_root/digest``, written once.

    ``data`` must already be verified against ``digest`` (the store does so on every read).
    A folder already there is used only if each file matches the bundle byte for byte;
    otherwise it is replaced. Writes go to a temporary folder renamed into place.
    """
    members = read_bundle(data)
    cache_root.mkdir(parents=True, exist_ok=True)
    target = cache_root / digest
    if target.is_dir() and _matches(target, members):
        return target
    staging = Path(tempfile.mkdtemp(dir=cache_root, prefix=".unpack-"))
    try:
        for name, content in members.items():
            (staging / name).write_bytes(content)
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _check_member(info: tarfile.TarInfo, seen: Mapping[str, bytes]) -> None:
    if not info.isreg():
        raise UnsafeArtifact(
            f"refused: bundle member {info.name[:80]!r} is not a regular file (links, folders "
            "and devices are not allowed); pack the model's files only"
        )
    if info.name not in ALLOWED_FILES:
        raise UnsafeArtifact(
            f"refused: bundle member {info.name[:80]!r} is not an allowed file; a bundle holds "
            f"only {', '.join(sorted(ALLOWED_FILES))}, by bare name"
        )
    if info.name in seen:
        raise UnsafeArtifact(f"refused: bundle member {info.name!r} appears twice")
    if info.size > MAX_MEMBER_BYTES:
        raise UnsafeArtifact(
            f"refused: bundle member {info.name!r} has {info.size} bytes; the cap is "
            f"{MAX_MEMBER_BYTES}"
        )


def _matches(folder: Path, members: Mapping[str, bytes]) -> bool:
    present = {path.name for path in folder.iterdir()}
    if present != set(members):
        return False
    return all(
        hashlib.sha256((folder / name).read_bytes()).digest() == hashlib.sha256(content).digest()
        for name, content in members.items()
    )
