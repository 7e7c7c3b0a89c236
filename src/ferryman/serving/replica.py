"""What a replica serves, found in the registry or in a local ONNX file.

A version whose artifact is a language-model bundle is served by a generation engine
(:func:`generation_from_registry`) behind the OpenAI-compatible routes instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ferryman.artifacts import ArtifactFormat
from ferryman.artifacts.bundle import unpack_bundle
from ferryman.engines.generation import GenerationEngine
from ferryman.engines.onnx import OnnxEngine
from ferryman.errors import Conflict, InvalidInput, NotFound
from ferryman.names import validate_name
from ferryman.reference import ReferenceData, with_graph_classes
from ferryman.registry import Registry, VariantStatus, VersionRef
from ferryman.serving.metrics import ReplicaIdentity

BASE_VARIANT = "onnx"
"""The variant name of a version's own registered ONNX file."""


@dataclass(frozen=True)
class ReplicaSource:
    """A runtime ready to load, who it is, and the golden requests it must answer."""

    identity: ReplicaIdentity
    runtime: OnnxEngine
    reference: ReferenceData | None


def from_registry(
    registry: Registry, model: str, ref: VersionRef, variant: str | None, intra_op_threads: int
) -> ReplicaSource:
    """The variant of ``model`` at ``ref`` (its own file when ``variant`` is None).

    Bytes come through the artifact store, which checks their sha256 on every read.
    """
    version = registry.get_version(model, ref)
    digest = version.digest
    if variant is not None and variant != BASE_VARIANT:
        variants = {v.kind: v for v in registry.list_variants(model, version.version)}
        chosen = variants.get(variant)
        if chosen is None:
            known = ", ".join(sorted(variants)) or "none"
            raise NotFound(
                f"{model} v{version.version} has no variant {variant!r} (variants: {known}); "
                "run the export first"
            )
        if chosen.status != VariantStatus.PASSED:
            raise Conflict(
                f"variant {variant} of {model} v{version.version} is {chosen.status.value}, "
                "not passed; only variants that passed their gate are served"
            )
        digest = chosen.digest
    runtime = OnnxEngine(registry.store.read(digest), intra_op_threads)
    identity = ReplicaIdentity(
        model, str(version.version), variant or BASE_VARIANT, registry.identity()
    )
    reference = registry.get_reference(model, version.version)
    return ReplicaSource(identity, runtime, _with_classes(reference, runtime))


@dataclass(frozen=True)
class GenerationSource:
    """A language model ready to load, and who it is."""

    identity: ReplicaIdentity
    engine: GenerationEngine


def is_generative(registry: Registry, model: str, ref: VersionRef) -> bool:
    """True if the version's artifact is a language-model bundle (served by GenAI)."""
    return registry.get_version(model, ref).format == ArtifactFormat.GENAI_BUNDLE


def generation_from_registry(
    registry: Registry, model: str, ref: VersionRef, cache_dir: Path
) -> GenerationSource:
    """The version's bundle, verified by the store and unpacked under ``cache_dir``."""
    from ferryman.engines.genai import GenaiEngine  # noqa: PLC0415 (optional "llm" extra)

    version = registry.get_version(model, ref)
    folder = unpack_bundle(registry.store.read(version.digest), version.digest, cache_dir)
    identity = ReplicaIdentity(model, str(version.version), ArtifactFormat.GENAI_BUNDLE.value)
    return GenerationSource(identity, GenaiEngine(folder, model))


def from_file(path: Path, name: str | None, intra_op_threads: int) -> ReplicaSource:
    """A local ONNX file, served as version 1 of ``name`` (default: the file's stem)."""
    model = name or path.stem.lower().replace("_", "-")
    validate_name(model, "model name (pass --name to choose one)")
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file; pass an .onnx file or MODEL[:VERSION|@ALIAS]")
    runtime = OnnxEngine(path.read_bytes(), intra_op_threads)
    return ReplicaSource(
        ReplicaIdentity(model, "1", BASE_VARIANT), runtime, _with_classes(None, runtime)
    )


def _with_classes(reference: ReferenceData | None, runtime: OnnxEngine) -> ReferenceData | None:
    """``reference`` with the classes the graph declares (a version registered before the
    registry kept them, or a plain file)."""
    if not runtime.class_labels or (reference is not None and reference.label_values):
        return reference
    return with_graph_classes(reference, runtime.class_labels)
