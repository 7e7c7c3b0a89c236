"""What a replica serves: a registry version (its file or a passed variant), or a file."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from ferryman.cli.serve import parse_target
from ferryman.config import Settings
from ferryman.errors import Conflict, InvalidName, NotFound
from ferryman.reference import ReferenceData
from ferryman.registry import Registry, VariantStatus
from ferryman.serving.replica import from_file, from_registry
from tests.serving.conftest import affine_model, golden


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    opened = Registry.open(Settings(data_dir=tmp_path))
    reference = ReferenceData(golden=(golden([0, 1, 2, 3]),), labels=("a", "b", "c", "d"))
    opened.register("digits", affine_model(), "tester", reference=reference)
    opened.register("digits", affine_model(features=4, batch="B"), "tester")
    opened.add_variant("digits", 1, "onnx-int8", affine_model(), "tester",
                       status=VariantStatus.PASSED)  # fmt: skip
    opened.add_variant("digits", 1, "onnx-fp16", affine_model(), "tester",
                       status=VariantStatus.REJECTED)  # fmt: skip
    return opened


def test_a_version_by_number_with_its_reference(registry: Registry) -> None:
    source = from_registry(registry, "digits", 1, None, intra_op_threads=1)
    assert source.identity.describe() == "digits v1 (onnx)"
    assert source.reference is not None
    assert source.reference.labels == ("a", "b", "c", "d")


def test_latest_and_a_passed_variant(registry: Registry) -> None:
    assert from_registry(registry, "digits", "latest", None, 1).identity.version == "2"
    variant = from_registry(registry, "digits", 1, "onnx-int8", 1)
    assert variant.identity.variant == "onnx-int8"


@pytest.mark.parametrize(
    ("variant", "error", "message"),
    [("onnx-fp16", Conflict, "is rejected, not passed"), ("tflite", NotFound, "no variant")],
)
def test_variants_that_cannot_be_served(
    registry: Registry, variant: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        from_registry(registry, "digits", 1, variant, 1)


def test_a_file_is_version_1_of_its_stem(tmp_path: Path) -> None:
    path = tmp_path / "My_Model.onnx"
    path.write_bytes(affine_model())
    assert from_file(path, None, 1).identity.describe() == "my-model v1 (onnx)"
    assert from_file(path, "digits", 1).identity.model == "digits"
    with pytest.raises(InvalidName):
        from_file(path, "../etc", 1)


@pytest.mark.parametrize(
    ("target", "expected"),
    [("digits", ("digits", "latest")), ("digits:3", ("digits", 3)),
     ("digits@production", ("digits", "production"))],
)  # fmt: skip
def test_serve_targets(target: str, expected: tuple[str, object]) -> None:
    assert parse_target(target) == expected


def test_a_version_must_be_a_number() -> None:
    with pytest.raises(typer.BadParameter, match="not a number"):
        parse_target("digits:three")
