"""Export benchmark: fp32 vs INT8 for the built-in recipes, measured by the variant gate.

Trains each recipe into a throwaway registry (the same code path as ``ferryman train``),
then prints every variant's validation accuracy, file size and median ONNX Runtime latency
at batch 1 and 32 (CPU provider, its default threads). For the CNN it also quantises
dynamically, to show why conv nets get static QDQ. Tabular models (ai.onnx.ml trees and
linear operators) have no INT8 form.

    .venv/bin/python bench/export/run.py [--repeats 200] [--json results.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ferryman.artifacts import LocalArtifactStore
from ferryman.export import EvaluationSet, GatePolicy, QuantizationMode, plan_variants
from ferryman.registry import Database, Registry
from ferryman.training import Registration, RunEnvironment, TrainingRequest, start_run
from ferryman.training.images import digits_data
from ferryman.training.recipes import resolve_recipe


@dataclass(frozen=True)
class Row:
    recipe: str
    variant: str
    status: str
    accuracy: float
    size_bytes: int
    latency_ms_b1: float
    latency_ms_b32: float
    train_s: float


CASES = (
    ("digits", "digits-cnn", {"epochs": 12}),
    ("digits", "digits-resnet", {"epochs": 8, "arch": "resnet"}),
    ("tabular-classifier", "tabular-logistic", {"target": "label", "model": "logistic"}),
    ("tabular-classifier", "tabular-gbm", {"target": "label", "model": "gbm"}),
)


def generated_table(path: Path, rows: int = 5000) -> Path:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(rows, 12))
    score = features[:, :4] @ np.array([1.0, -0.8, 0.5, 0.3]) + 0.5 * features[:, 4] ** 2
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{i}" for i in range(12)] + ["label"])
        for row, value in zip(features, score, strict=True):
            writer.writerow([*row, int(value > 0.5)])
    return path


def rows_of(name: str, registration: Registration, train_s: float) -> list[Row]:
    return [
        Row(
            recipe=name,
            variant=variant.kind,
            status=variant.status.value,
            accuracy=variant.gate["accuracy"],
            size_bytes=variant.size_bytes,
            latency_ms_b1=variant.gate["latency_ms_b1"],
            latency_ms_b32=variant.gate["latency_ms_b32"],
            train_s=train_s,
        )
        for variant in registration.variants
    ]


def dynamic_row(
    name: str, registry: Registry, registration: Registration, policy: GatePolicy
) -> Row:
    """The CNN quantised dynamically instead of with static QDQ, measured the same way."""
    fp32_bytes = registry.store.read(registration.version.digest)
    data = digits_data(0, 0.2)
    evaluation = EvaluationSet("pixels", "probabilities", data.val_x, data.val_y)
    plan = plan_variants(fp32_bytes, evaluation, policy, QuantizationMode.DYNAMIC)
    report = plan.variants[1].report
    return Row(
        recipe=name,
        variant="onnx-int8 (dynamic)",
        status="passed" if report.passed else "rejected",
        accuracy=report.accuracy,
        size_bytes=report.size_bytes,
        latency_ms_b1=report.latency_ms_b1,
        latency_ms_b32=report.latency_ms_b32,
        train_s=0.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed runs per batch size")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    policy = GatePolicy(latency_repeats_count=args.repeats)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ferryman-bench-") as workdir:
        root = Path(workdir)
        database = Database(f"sqlite:///{root / 'registry.db'}")
        database.migrate()
        registry = Registry(database, LocalArtifactStore(root / "artifacts"))
        table_path = generated_table(root / "table.csv")
        env = RunEnvironment(registry, "bench", policy=policy)
        for recipe, name, params in CASES:
            data = table_path if recipe == "tabular-classifier" else None
            started = time.perf_counter()
            outcome = start_run(
                resolve_recipe(recipe), TrainingRequest(recipe, name, params, data), env
            )
            train_s = time.perf_counter() - started
            if outcome.registration is None:
                raise SystemExit(f"{name}: the run registered nothing")
            rows += rows_of(name, outcome.registration, train_s)
            if name == "digits-cnn":
                rows.append(dynamic_row(name, registry, outcome.registration, policy))
    show(rows)
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))


def show(rows: list[Row]) -> None:
    table = Table(
        "recipe", "variant", "gate", "val accuracy", "size", "b1 ms", "b32 ms", "train s",
        title="fp32 vs INT8 (ONNX Runtime, CPU; median latency)",
    )  # fmt: skip
    for row in rows:
        table.add_row(
            row.recipe,
            row.variant,
            row.status,
            f"{row.accuracy:.2%}",
            f"{row.size_bytes / 1000:.1f} kB",
            f"{row.latency_ms_b1:.3f}",
            f"{row.latency_ms_b32:.3f}",
            "" if row.variant != "onnx-fp32" else f"{row.train_s:.1f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
