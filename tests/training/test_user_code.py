"""Users' own training functions get the same records, checkpoints and resume as recipes."""

from __future__ import annotations

import pytest

from ferryman.registry import Registry, RunStatus
from ferryman.training import RunEnvironment, RunInterrupted, TrainingRequest, resume_run, start_run
from ferryman.training.recipes import recipe_key, resolve_recipe
from tests.training import user_model


def test_a_user_function_is_recorded_like_a_recipe(registry: Registry) -> None:
    request = TrainingRequest("tests.training.user_model/fit", "blobs", {"note": "mine"})
    outcome = start_run(user_model.fit, request, RunEnvironment(registry, "ci"))
    assert outcome.registration is not None
    version = outcome.registration.version
    assert version.parent_run == outcome.run.id
    assert version.params == {"note": "mine"}
    run = registry.runs.get(outcome.run.id)
    assert [p.step for p in run.metrics["accuracy"]] == [0, 1, 2]
    assert [c.step for c in run.checkpoints] == [0, 1, 2]
    assert run.status is RunStatus.SUCCEEDED


def test_an_interrupted_user_run_resumes_from_its_checkpoint(registry: Registry) -> None:
    env = RunEnvironment(registry, "ci")
    request = TrainingRequest("tests.training.user_model/fit", "blobs", {"crash_after": 0})
    with pytest.raises(RunInterrupted, match="--resume"):
        start_run(user_model.fit, request, env)
    (run,) = registry.runs.list()
    assert run.status is RunStatus.INTERRUPTED
    train = resolve_recipe(run.recipe)
    assert train is user_model.fit
    # The run's params still say crash_after=0, but epoch 0 is done: it goes on from epoch 1.
    outcome = resume_run(train, run.id, env)
    assert outcome.run.status is RunStatus.SUCCEEDED
    finished = registry.runs.get(run.id)
    assert [p.step for p in finished.metrics["accuracy"]] == [0, 1, 2]


def test_recipe_names_resolve_or_say_what_exists() -> None:
    assert recipe_key("tests.training.user_model:fit") == "tests.training.user_model/fit"
    assert resolve_recipe("tests.training.user_model:fit") is user_model.fit
    with pytest.raises(Exception, match="use one of digits, image-classifier"):
        resolve_recipe("nonsense")
    with pytest.raises(Exception, match="has no function 'nope'"):
        resolve_recipe("tests.training.user_model:nope")
