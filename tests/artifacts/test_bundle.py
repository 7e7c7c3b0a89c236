"""Model bundles: a language model's folder as one tar artifact, and the gate in front of it."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from ferryman.artifacts import ArtifactFormat, inspect_artifact
from ferryman.artifacts.bundle import pack_bundle, read_bundle, unpack_bundle
from ferryman.errors import UnsafeArtifact
from tests.conftest import make_onnx


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(make_onnx())
    (folder / "genai_config.json").write_text('{"model": {"context_length": 64}}')
    (folder / "tokenizer.json").write_text("{}")
    (folder / "notes.py").write_text("import os")  # not on the allow-list: left out
    return folder


def _tar(*members: tarfile.TarInfo | tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
                continue
            info = tarfile.TarInfo(member[0])
            info.size = len(member[1])
            archive.addfile(info, io.BytesIO(member[1]))
    return buffer.getvalue()


def test_a_packed_folder_passes_the_gate_as_a_bundle(tmp_path: Path) -> None:
    bundle = pack_bundle(_folder(tmp_path))
    assert pack_bundle(_folder(tmp_path / "again")) == bundle  # reproducible: same digest
    assert sorted(read_bundle(bundle)) == ["genai_config.json", "model.onnx", "tokenizer.json"]
    inspected = inspect_artifact(bundle)
    assert inspected.format == ArtifactFormat.GENAI_BUNDLE
    assert [spec.name for spec in inspected.signature.inputs] == ["x"]


def _link(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/passwd"
    return info


ONNX = make_onnx()
CONFIG = ("genai_config.json", b"{}")


@pytest.mark.parametrize(
    ("members", "says"),
    [
        ((("../model.onnx", ONNX), CONFIG), "not an allowed file"),
        ((("/tmp/model.onnx", ONNX), CONFIG), "not an allowed file"),
        ((("model.onnx", ONNX), CONFIG, ("model.pkl", b"\x80\x04")), "not an allowed file"),
        ((_link("model.onnx", tarfile.SYMTYPE), CONFIG), "not a regular file"),
        ((_link("model.onnx", tarfile.LNKTYPE), CONFIG), "not a regular file"),
        ((("model.onnx", ONNX), CONFIG, CONFIG), "appears twice"),
        ((("model.onnx", ONNX),), "needs model.onnx and genai_config.json"),
        ((("model.onnx", b"\x80\x04pickle"), CONFIG), "not an ONNX model"),
        ((("model.onnx", ONNX), ("genai_config.json", b"{nope")), "not JSON"),
    ],
    ids=["dotdot", "absolute", "pickle", "symlink", "hardlink", "twice", "no-config",
         "not-onnx", "bad-json"],
)  # fmt: skip
def test_the_gate_refuses_bundles_that_are_not_plain_model_files(
    members: tuple[tarfile.TarInfo | tuple[str, bytes], ...], says: str
) -> None:
    with pytest.raises(UnsafeArtifact, match=says):
        inspect_artifact(_tar(*members))


def test_unpack_writes_once_and_replaces_a_tampered_copy(tmp_path: Path) -> None:
    bundle = pack_bundle(_folder(tmp_path))
    cache = tmp_path / "cache"
    folder = unpack_bundle(bundle, "d1", cache)
    assert folder == cache / "d1"
    assert (folder / "model.onnx").read_bytes() == make_onnx()
    (folder / "model.onnx").write_bytes(b"tampered")
    (folder / "extra.json").write_text("{}")
    again = unpack_bundle(bundle, "d1", cache)
    assert (again / "model.onnx").read_bytes() == make_onnx()
    assert not (again / "extra.json").exists()
    assert sorted(p.name for p in cache.iterdir()) == ["d1"]  # no staging folder left
