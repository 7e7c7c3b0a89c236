"""A training process for the kill-and-resume tests: ``python -m tests.training.resume_child
ROOT [RUN_ID]`` trains digits (or resumes RUN_ID), printing every batch so that the parent
can kill it mid-epoch."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from ferryman.training import RunEnvironment, TrainingRequest, resume_run, start_run
from ferryman.training.image import train_image_classifier
from ferryman.training.progress import NullProgress
from tests.training.conftest import open_registry

PARAMS = {"epochs": 4, "patience": 10, "seed": 3}


class PrintingProgress(NullProgress):
    def batch_done(self, epoch: int, batch: int) -> None:
        print(f"batch {epoch} {batch}", flush=True)

    def epoch_done(self, epoch: int, metrics: Mapping[str, float]) -> None:
        print(f"epoch {epoch}", flush=True)


def main(root: Path, run_id: str | None) -> None:
    env = RunEnvironment(open_registry(root), "ci", progress=PrintingProgress())
    if run_id is None:
        outcome = start_run(
            train_image_classifier, TrainingRequest("digits", "digits", PARAMS), env
        )
    else:
        outcome = resume_run(train_image_classifier, run_id, env)
    print(f"done {outcome.run.id}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)
