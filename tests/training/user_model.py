"""A user's own training function, as the docs describe it; used by test_user_code."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import SGDClassifier

from ferryman.export import EvaluationSet
from ferryman.export.conversion import convert_sklearn
from ferryman.training import Candidate, CheckpointData, Registration, RunContext

EPOCHS = 3


def blobs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    features = rng.normal(size=(300, 3)) + labels[:, None] * 2.0
    return features.astype(np.float32), labels.astype(np.int64)


def fit(ctx: RunContext) -> Registration | None:
    """Epochs of SGD; weights checkpointed each epoch; stops early if asked to crash."""
    features, labels = blobs()
    model = SGDClassifier(loss="log_loss", random_state=0)
    first = 0
    if (saved := ctx.load_checkpoint()) is not None:
        model.partial_fit(features[:2], labels[:2], classes=[0, 1])
        model.coef_, model.intercept_ = saved.arrays["coef"], saved.arrays["intercept"]
        first = saved.step + 1
    for epoch in range(first, EPOCHS):
        model.partial_fit(features, labels, classes=[0, 1])
        ctx.log_metrics(epoch, {"accuracy": float(model.score(features, labels))})
        arrays = {"coef": model.coef_.copy(), "intercept": model.intercept_.copy()}
        ctx.save_checkpoint(CheckpointData(epoch, arrays=arrays, state={"seen": epoch + 1}))
        if ctx.params.get("crash_after") == epoch:
            raise KeyboardInterrupt
    scores = model.predict_proba(features).astype(np.float32)
    evaluation = EvaluationSet("features", "probabilities", features, labels, scores)
    return ctx.register(
        Candidate(
            convert_sklearn(model, 3),
            evaluation,
            metrics={"accuracy": float(model.score(features, labels))},
        )
    )
