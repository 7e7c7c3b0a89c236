"""Model bundles: a language model's folder as one tar artifact, and the gate in front of it."""

from __future__ import annotations

import io
import json
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


def _bundle_with_config(config: object, *extra: tuple[str, bytes]) -> bytes:
    return _tar(("model.onnx", ONNX), ("genai_config.json", json.dumps(config).encode()), *extra)


def _decoder(**fields: object) -> dict[str, object]:
    return {"model": {"decoder": {"filename": "model.onnx", **fields}}}


@pytest.mark.parametrize(
    ("config", "says"),
    [
        (_decoder(session_options={"custom_ops_library": "model.onnx.data"}), "custom_ops_library"),
        (_decoder(session_options={"enable_profiling": True}), "enable_profiling"),
        (_decoder(session_options={"ep.context_file_path": "out.onnx"}), "ep.context_file_path"),
        (_decoder(session_options={"provider_options": [{"qnn": {"backend_path": "x.so"}}]}),
         "provider_options names execution providers"),
        (_decoder(session_options=["custom_ops_library"]), "not a JSON object"),
        ({"model": {"decoder": {"filename": "../../other/model.onnx"}}}, "a path"),
        ({"model": {"decoder": {"filename": "/etc/passwd"}}}, "a path"),
        ({"model": {"decoder": {"filename": "genai.onnx"}}}, "not a file of the bundle"),
        ({"model": {"cache_dir": "/tmp/cache"}}, "a path"),
        ({"model": {"x": [{"y": "..\\\\evil"}]}}, "a path"),
        ([], "not a JSON object"),
    ],
    ids=["custom-ops", "profiling", "ep-context", "provider", "options-list", "filename-dotdot",
         "filename-absolute", "filename-missing", "any-path",
         "nested-path", "not-object"],
)  # fmt: skip
def test_the_gate_refuses_a_genai_config_that_loads_code_or_names_other_files(
    config: object, says: str
) -> None:
    """genai_config.json is instructions to ONNX Runtime GenAI: a custom_ops_library there
    is dlopen()ed on load (a shared library packed as model.onnx.data ran its code in the
    replica), and its file names are joined to the bundle's folder."""
    bundle = _bundle_with_config(config, ("model.onnx.data", b"\x7fELF"), ("tokenizer.json", b"{}"))
    with pytest.raises(UnsafeArtifact, match=says):
        inspect_artifact(bundle)


def test_a_stored_bundle_with_a_library_in_its_config_is_not_unpacked(tmp_path: Path) -> None:
    """A bundle registered before the gate checked configs is refused where it is served."""
    bundle = _bundle_with_config(_decoder(session_options={"custom_ops_library": "model.onnx"}))
    with pytest.raises(UnsafeArtifact, match="custom_ops_library"):
        unpack_bundle(bundle, "d1", tmp_path / "cache")
    assert not (tmp_path / "cache" / "d1").exists()


def test_the_model_builders_cpu_config_passes() -> None:
    """The config ONNX Runtime GenAI's model builder writes for the CPU (its shape, trimmed)."""
    config = _decoder(
        session_options={"log_id": "onnxruntime-genai", "provider_options": []},
        inputs={"input_ids": "input_ids", "past_key_names": "past_key_values.%d.key"},
        num_hidden_layers=2,
    )
    config["search"] = {"max_length": 64, "do_sample": False, "top_k": 50}
    assert inspect_artifact(_bundle_with_config(config)).format == ArtifactFormat.GENAI_BUNDLE


def test_a_config_nested_too_deep_to_parse_is_refused_as_not_json() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(UnsafeArtifact, match="not JSON"):
        inspect_artifact(_tar(("model.onnx", ONNX), ("genai_config.json", deep)))
