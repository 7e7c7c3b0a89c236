"""Model bundles: a language model's folder stored as one artifact (an uncompressed tar).

ONNX Runtime GenAI loads a folder (``model.onnx``, its weights, ``genai_config.json`` and
the tokenizer's JSON files), while the store keeps one file per digest. A bundle is that
folder as a plain POSIX tar, accepted only if every member is a regular file whose bare
name is on an allow-list of non-executable formats (ONNX, JSON, tokenizer text), within
size caps. Nothing in a bundle is ever a path: members are written by their allowed bare
name into a directory named by the bundle's digest, so ``..``, absolute names, links and
devices cannot reach the filesystem.

``genai_config.json`` is read by ONNX Runtime GenAI as instructions, not data: its session
options can load a native library (``custom_ops_library``, an execution provider's
``backend_path``) or write files (profiles, EP contexts), and its file names are joined to the
folder. So it is checked too (:func:`check_genai_config`): session options from an allow-list
of tuning knobs, no execution provider but the CPU, and no string that is a path, so a file it
names can only be one of the bundle's own members.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ferryman.errors import UnsafeArtifact

MODEL_FILE = "model.onnx"
CONFIG_FILE = "genai_config.json"
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

SESSION_OPTIONS = frozenset(
    {
        "log_id",
        "log_severity_level",
        "intra_op_num_threads",
        "inter_op_num_threads",
        "enable_cpu_mem_arena",
        "enable_mem_pattern",
        "graph_optimization_level",
        "provider_options",
    }
)
"""``session_options`` keys a bundle's config may set: tuning only. The rest of what ONNX
Runtime GenAI reads there loads code (``custom_ops_library``), writes files (profiling, EP
context files) or passes free-form ONNX Runtime config entries."""
MAX_MEMBER_BYTES = 4 << 30
MAX_BUNDLE_BYTES = 8 << 30
_TAR_MAGIC_OFFSET = 257


def is_bundle(data: bytes | memoryview) -> bool:
    """True if ``data`` starts like a POSIX (ustar) tar archive."""
    return bytes(data[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + 5]) == b"ustar"


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


def read_bundle(data: bytes | memoryview) -> dict[str, bytes]:
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
    if MODEL_FILE not in members or CONFIG_FILE not in members:
        raise UnsafeArtifact(
            f"refused: a model bundle needs {MODEL_FILE} and {CONFIG_FILE}; it holds "
            f"{sorted(members)}"
        )
    try:
        config = json.loads(members[CONFIG_FILE])
    except (ValueError, RecursionError) as exc:
        raise UnsafeArtifact(f"refused: {CONFIG_FILE} is not JSON ({exc})") from None
    check_genai_config(config, members)
    return members


def check_genai_config(config: Any, members: Mapping[str, bytes]) -> None:
    """Refuse a ``genai_config.json`` that would make ONNX Runtime GenAI load code, write
    files, or read a file that is not a member of the bundle (see the module's text)."""
    if not isinstance(config, dict):
        raise UnsafeArtifact(f"refused: {CONFIG_FILE} is not a JSON object")
    for where, key, value in _entries(config, CONFIG_FILE):
        if key == "session_options":
            _check_session_options(where, value)
        if isinstance(value, str) and _is_path(value):
            raise UnsafeArtifact(
                f"refused: {where} is {value[:80]!r}, a path; a bundle's config names only "
                "its own files, by bare name"
            )
        if key.endswith("filename") and value not in members:
            raise UnsafeArtifact(
                f"refused: {where} names {str(value)[:80]!r}, which is not a file of the "
                f"bundle ({', '.join(sorted(members))})"
            )


def _entries(document: dict[str, Any], where: str) -> Iterator[tuple[str, str, Any]]:
    """Every (place, key, value) of a JSON document, nested objects and lists included
    (walked with a list, not recursion: any depth that parsed is walked)."""
    pending: list[tuple[str, Any]] = [(where, document)]
    while pending:
        place, node = pending.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            inner = f"{place}[{key}]" if isinstance(key, int) else f"{place}.{key}"
            yield inner, str(key), value
            if isinstance(value, dict | list):
                pending.append((inner, value))


def _check_session_options(where: str, options: Any) -> None:
    if not isinstance(options, dict):
        raise UnsafeArtifact(f"refused: {where} is not a JSON object")
    unknown = sorted(set(options) - SESSION_OPTIONS)
    if unknown:
        raise UnsafeArtifact(
            f"refused: {where} sets {', '.join(k[:60] for k in unknown)}; a bundle's session "
            f"options may set only {', '.join(sorted(SESSION_OPTIONS))} (the others load "
            "libraries or write files)"
        )
    if options.get("provider_options", []) != []:
        raise UnsafeArtifact(
            f"refused: {where}.provider_options names execution providers; Ferryman serves "
            "bundles on ONNX Runtime's CPU provider, so leave provider_options empty"
        )


def _is_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.startswith(("~", ".."))


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
