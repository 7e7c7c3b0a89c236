"""Training: runs recorded in the registry, recipes, users' own code, hyperparameter search.

Users' own training code is a function of a :class:`RunContext`::

    from ferryman.training import Candidate, RunContext, start_run, TrainingRequest

    def train(ctx: RunContext) -> None:
        ctx.log_metrics(0, {"val_accuracy": 0.97})

Run it with :func:`start_run` (or ``ferryman train module:function``); it gets the same
records, checkpoints and resume as the built-in recipes. PyTorch and scikit-learn are
imported only by the recipe modules that use them.
"""

from __future__ import annotations

from ferryman.training.checkpoint import CheckpointData
from ferryman.training.context import Candidate, Registration, RunContext
from ferryman.training.runner import (
    RunEnvironment,
    RunInterrupted,
    RunOutcome,
    TrainFunction,
    TrainingRequest,
    resume_run,
    start_run,
)

__all__ = [
    "Candidate",
    "CheckpointData",
    "Registration",
    "RunContext",
    "RunEnvironment",
    "RunInterrupted",
    "RunOutcome",
    "TrainFunction",
    "TrainingRequest",
    "resume_run",
    "start_run",
]
