"""The context a training function receives: its run, and the calls that record it.

Recipes and users' own code train the same way::

    def train(ctx: RunContext) -> Registration | None:
        start = ctx.load_checkpoint()          # None on a fresh run
        for epoch in range(0 if start is None else start.step + 1, 10):
            ...
            ctx.log_metrics(epoch, {"val_accuracy": accuracy})
            ctx.save_checkpoint(CheckpointData(epoch, arrays={"w": weights}))
        return ctx.register(Candidate(onnx_bytes, evaluation, metrics={...}))

Metrics and checkpoints land in the registry as the run goes, so a run killed at any point
can be resumed from its last checkpoint (``ferryman train --resume RUN_ID``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ferryman.export import (
    EvaluationSet,
    ExportPlan,
    GatePolicy,
    QuantizationMode,
    export_variants,
    plan_variants,
)
from ferryman.reference import ReferenceData
from ferryman.registry import (
    Registry,
    RunRecord,
    VariantRecord,
    VersionRecord,
    build_metadata,
)
from ferryman.registry.records import ParamValue
from ferryman.training.checkpoint import CheckpointData, decode_checkpoint, encode_checkpoint
from ferryman.training.progress import NullProgress, ProgressSink
from ferryman.training.summaries import fit_golden_tolerance

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """A trained model offered for registration: its ONNX bytes and how to judge them."""

    onnx_bytes: bytes
    evaluation: EvaluationSet
    metrics: Mapping[str, float] = field(default_factory=dict)
    reference: ReferenceData | None = None
    data_fingerprint: str | None = None
    quantization: QuantizationMode | None = None
    calibration: npt.NDArray[np.float32] | None = None
    description: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Registration:
    """The version a run produced and its variants (each passed or rejected by the gate)."""

    version: VersionRecord
    variants: tuple[VariantRecord, ...]
    plan: ExportPlan


class RunContext:
    """One run's view of the registry. Built by :func:`ferryman.training.start_run`."""

    def __init__(
        self,
        registry: Registry,
        run: RunRecord,
        actor: str,
        *,
        policy: GatePolicy | None = None,
        progress: ProgressSink | None = None,
        log_file: Path | None = None,
    ) -> None:
        self._registry = registry
        self.run = run
        self._actor = actor
        self.policy = policy or GatePolicy()
        self.progress: ProgressSink = progress or NullProgress()
        self._log_file = log_file

    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def params(self) -> Mapping[str, ParamValue]:
        return self.run.params

    @property
    def model(self) -> str:
        return self.run.model or self.run.recipe

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        """Record one point per metric at ``step`` (an epoch, say)."""
        self._registry.runs.log_metrics(self.run_id, step, values)
        self._note(f"step {step}: " + ", ".join(f"{k}={v:.6g}" for k, v in values.items()))

    def log_metric(self, key: str, value: float, step: int) -> None:
        self.log_metrics(step, {key: value})

    def save_checkpoint(self, checkpoint: CheckpointData) -> None:
        """Store ``checkpoint`` (safetensors) as the run's newest state."""
        stored = self._registry.store.put(io.BytesIO(encode_checkpoint(checkpoint)))
        self._registry.runs.add_checkpoint(
            self.run_id, checkpoint.step, stored.digest, stored.size_bytes
        )
        self._note(f"checkpoint at step {checkpoint.step}: {stored.digest}")

    def load_checkpoint(self) -> CheckpointData | None:
        """The run's newest checkpoint, verified; None if it has none yet."""
        checkpoints = self._registry.runs.get(self.run_id).checkpoints
        if not checkpoints:
            return None
        return decode_checkpoint(self._registry.store.read(checkpoints[-1].digest))

    def recorded_steps(self, key: str) -> set[int]:
        """Steps at which ``key`` was already logged (a resumed run skips them)."""
        return {point.step for point in self._registry.runs.get(self.run_id).metrics.get(key, ())}

    def register(self, candidate: Candidate) -> Registration:
        """Measure the variants, then register the version and attach them.

        The version records the run's params, this run as its parent, the candidate's
        metrics, data fingerprint and reference data; the gate reports go on the variants.
        """
        plan = plan_variants(
            candidate.onnx_bytes,
            candidate.evaluation,
            self.policy,
            candidate.quantization,
            candidate.calibration,
        )
        metadata = build_metadata(
            metrics=dict(candidate.metrics),
            params=dict(self.params),
            description=candidate.description,
            aliases=candidate.aliases,
            data_fingerprint=candidate.data_fingerprint,
            parent_run=self.run_id,
        )
        reference = candidate.reference
        if reference is not None:
            servable = [v.onnx_bytes for v in plan.variants if v.report.passed]
            reference = fit_golden_tolerance(reference, servable)
        version = self._registry.register(
            self.model, candidate.onnx_bytes, self._actor, metadata, reference
        )
        variants = export_variants(self._registry, self.model, version.version, plan, self._actor)
        self._note(f"registered {self.model} v{version.version}")
        return Registration(version, tuple(variants), plan)

    def register_bundle(
        self, bundle: bytes, metrics: Mapping[str, float], description: str = ""
    ) -> Registration:
        """Register a model bundle (a language model's folder) as the next version.

        Bundles have no tensor variants: the version's own bundle is what replicas serve.
        """
        metadata = build_metadata(
            metrics=dict(metrics),
            params=dict(self.params),
            description=description,
            parent_run=self.run_id,
        )
        version = self._registry.register(self.model, bundle, self._actor, metadata)
        self._note(f"registered {self.model} v{version.version} (model bundle)")
        return Registration(version, (), ExportPlan(()))

    def _note(self, line: str) -> None:
        if self._log_file is not None:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            with self._log_file.open("a", encoding="utf-8") as handle:
                handle.write(f"{stamp} {line}\n")
