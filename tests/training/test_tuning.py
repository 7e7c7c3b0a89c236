"""ferryman tune: Optuna with the Hyperband pruner, trials as runs, the best registered."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from ferryman.errors import InvalidInput
from ferryman.registry import Registry, RunStatus
from ferryman.training import RunEnvironment
from ferryman.training.progress import NullProgress
from ferryman.training.tuning import TuneRequest, tune
from tests.training.conftest import open_registry


def test_four_trials_prune_at_least_one_and_register_the_best(tmp_path: Path) -> None:
    registry = open_registry(tmp_path)
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    request = TuneRequest("digits", "digits", 4, url, {"epochs": 6})
    outcome = tune(request, RunEnvironment(registry, "ci"))
    assert outcome.completed_count + outcome.pruned_count == 4
    assert outcome.pruned_count >= 1
    runs = registry.runs.list()
    assert len(runs) == 4
    pruned = [run for run in runs if run.status is RunStatus.INTERRUPTED]
    assert len(pruned) == outcome.pruned_count
    assert all("pruned by Hyperband" in (run.error or "") for run in pruned)
    version = outcome.registration.version
    assert version.parent_run == outcome.best_run
    assert version.metrics["val_accuracy"] == outcome.best_value
    finished = [r for r in runs if r.status is RunStatus.SUCCEEDED]
    best_seen = max(registry.runs.get(r.id).metrics["val_accuracy"][-1].value for r in finished)
    assert outcome.best_value >= best_seen
    # The study lives in the registry's own database, beside the registry's tables.
    study = optuna.load_study(
        study_name=outcome.study,
        storage=optuna.storages.RDBStorage(url, skip_compatibility_check=True),
    )
    assert len(study.trials) == 4
    assert {t.user_attrs["run_id"] for t in study.trials} == {r.id for r in runs}


def test_only_iterative_recipes_can_be_tuned(registry: Registry, tmp_path: Path) -> None:
    request = TuneRequest("tabular-classifier", "fraud", 4, f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(InvalidInput, match="cannot be tuned"):
        tune(request, RunEnvironment(registry, "ci"))


class StopInSecondEpoch(NullProgress):
    """Stands for Ctrl-C arriving while a trial trains."""

    def batch_done(self, epoch: int, batch: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt


def test_an_interrupted_search_records_its_trial_as_interrupted(tmp_path: Path) -> None:
    registry = open_registry(tmp_path)
    request = TuneRequest("digits", "digits", 4, f"sqlite:///{tmp_path / 'registry.db'}")
    with pytest.raises(KeyboardInterrupt):
        tune(request, RunEnvironment(registry, "ci", progress=StopInSecondEpoch()))
    (run,) = registry.runs.list()
    assert run.status is RunStatus.INTERRUPTED
    assert [c.step for c in registry.runs.get(run.id).checkpoints] == [0]
