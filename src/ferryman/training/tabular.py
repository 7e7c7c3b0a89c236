"""The ``tabular-classifier`` recipe: scikit-learn on a CSV or Parquet file.

``ferryman train tabular-classifier --model fraud --data transactions.csv --target label``
fits a logistic regression (standardised inputs) or gradient boosting on a seeded,
stratified split, converts it with skl2onnx (``features`` in, ``label`` and
``probabilities`` out) and registers it with its gate report. Scikit-learn's tree and
linear operators have no INT8 form, so these versions get the ``onnx-fp32`` variant only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ferryman.errors import InvalidInput
from ferryman.export import EvaluationSet, choose_quantization
from ferryman.export.conversion import INPUT_NAME, SCORE_OUTPUT, convert_sklearn
from ferryman.training.context import Candidate, Registration, RunContext
from ferryman.training.params import RecipeParams, parse_params
from ferryman.training.summaries import build_reference, feature_summaries
from ferryman.training.tables import TabularData, read_table

RECIPE = "tabular-classifier"


class TabularParams(RecipeParams):
    """Params of the tabular recipe (``--target`` sets ``target``)."""

    target: str = Field(min_length=1)
    model: Literal["logistic", "gbm"] = "logistic"
    seed: int = 0
    val_fraction: float = Field(default=0.2, gt=0, lt=1)
    c: float = Field(default=1.0, gt=0, description="logistic: inverse regularisation")
    n_estimators: int = Field(default=100, ge=1, le=10_000, description="gbm: trees")
    learning_rate: float = Field(default=0.1, gt=0, le=1, description="gbm: shrinkage")
    max_depth: int = Field(default=3, ge=1, le=32, description="gbm: tree depth")


def train_tabular_classifier(ctx: RunContext) -> Registration:
    """Recipe entry point: read, split, fit, convert, gate and register."""
    params = parse_params(TabularParams, ctx.params, ctx.run.recipe)
    if params.data is None:
        raise InvalidInput(f"{RECIPE} needs a table: give --data FILE.csv and --target COLUMN")
    settings = f"seed={params.seed};val={params.val_fraction}"
    data = read_table(Path(params.data), params.target, settings)
    train_x, val_x, train_y, val_y = train_test_split(
        data.features,
        data.targets,
        test_size=params.val_fraction,
        random_state=params.seed,
        stratify=data.targets,
    )
    estimator = _estimator(params).fit(train_x, train_y)
    val_scores = estimator.predict_proba(val_x).astype(np.float32)
    metrics = {
        "train_accuracy": float(estimator.score(train_x, train_y)),
        "val_accuracy": float(estimator.score(val_x, val_y)),
        "val_log_loss": float(log_loss(val_y, val_scores, labels=range(len(data.labels)))),
    }
    ctx.log_metrics(0, metrics)
    candidate = _candidate(
        estimator, data, val_x=val_x, val_y=val_y, val_scores=val_scores, metrics=metrics
    )
    return ctx.register(candidate)


def _estimator(params: TabularParams) -> Any:
    if params.model == "gbm":
        return GradientBoostingClassifier(
            n_estimators=params.n_estimators,
            learning_rate=params.learning_rate,
            max_depth=params.max_depth,
            random_state=params.seed,
        )
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=params.c, max_iter=1000, random_state=params.seed)
    )


def _candidate(
    estimator: Any,
    data: TabularData,
    *,
    val_x: Any,
    val_y: Any,
    val_scores: Any,
    metrics: dict[str, float],
) -> Candidate:
    onnx_bytes = convert_sklearn(estimator, len(data.feature_names))
    evaluation = EvaluationSet(INPUT_NAME, SCORE_OUTPUT, val_x, val_y, val_scores)
    summaries = feature_summaries(val_x, data.feature_names)
    return Candidate(
        onnx_bytes=onnx_bytes,
        evaluation=evaluation,
        metrics=metrics,
        reference=build_reference(onnx_bytes, evaluation, data.labels, summaries),
        data_fingerprint=data.fingerprint,
        quantization=choose_quantization(onnx_bytes),
    )
