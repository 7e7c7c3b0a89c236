"""Hyperparameter search for the image recipe: Optuna with its Hyperband pruner.

Each trial is a run in the registry (its params, per-epoch metrics and checkpoints); the
validation accuracy of every epoch is reported to Optuna, and a trial that Hyperband
prunes is recorded as ``interrupted`` with the reason. The best trial's model is
registered, with that trial's run as its parent.

Optuna keeps its study in the registry's own database (the same URL). Its tables live
beside the registry's; the registry's migrations own the Alembic version table, so Optuna's
schema check is skipped and Optuna's tables are created by Optuna itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from ferryman.errors import InvalidInput
from ferryman.registry import RunStatus
from ferryman.registry.records import ParamValue
from ferryman.training.context import Registration, RunContext
from ferryman.training.image import ImageParams, fit_images, load_image_data, publish
from ferryman.training.images import ImageData
from ferryman.training.params import parse_params
from ferryman.training.runner import RunEnvironment, RunInterrupted, sigterm_interrupts
from ferryman.training.trainer import EpochHook, FitResult

logger = logging.getLogger(__name__)

TUNABLE_RECIPES = frozenset({"digits", "image-classifier"})


@dataclass(frozen=True)
class TuneRequest:
    recipe: str
    model: str
    trials: int
    storage_url: str
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    data_path: Path | None = None
    study: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class TuneOutcome:
    study: str
    best_run: str
    best_value: float
    best_params: dict[str, ParamValue]
    pruned_count: int
    completed_count: int
    registration: Registration


@dataclass
class _Search:
    """One search: what every trial shares, and the best finished trial so far."""

    request: TuneRequest
    env: RunEnvironment
    base: dict[str, ParamValue]
    data: ImageData
    best_value: float = -1.0
    best_run: RunContext | None = None
    best_params: ImageParams | None = None
    best_result: FitResult | None = None

    def run_trial(self, trial: optuna.Trial) -> float:
        """Fit one trial as a run; Hyperband may prune it after any epoch."""
        params = {**self.base, **suggest(trial)}
        parsed = parse_params(ImageParams, params, self.request.recipe)
        env = self.env
        run = env.registry.runs.create(self.request.recipe, env.actor, self.request.model, params)
        trial.set_user_attr("run_id", run.id)
        ctx = RunContext(env.registry, run, env.actor, policy=env.policy, progress=env.progress)
        try:
            result = fit_images(ctx, parsed, self.data, _reporter(trial))
        except optuna.TrialPruned as pruned:
            env.registry.runs.finish(run.id, RunStatus.INTERRUPTED, env.actor, str(pruned))
            raise
        except (KeyboardInterrupt, RunInterrupted):
            env.registry.runs.finish(run.id, RunStatus.INTERRUPTED, env.actor, "interrupted")
            raise
        except Exception as exc:
            env.registry.runs.finish(run.id, RunStatus.FAILED, env.actor, f"{exc}")
            raise
        finally:
            ctx.progress.close()
        env.registry.runs.finish(run.id, RunStatus.SUCCEEDED, env.actor)
        if result.best_accuracy > self.best_value:
            self.best_value, self.best_run = result.best_accuracy, ctx
            self.best_params, self.best_result = parsed, result
        return result.best_accuracy


def tune(request: TuneRequest, env: RunEnvironment) -> TuneOutcome:
    """Run ``request.trials`` trials, prune with Hyperband, register the best."""
    if request.recipe not in TUNABLE_RECIPES:
        raise InvalidInput(
            f"recipe {request.recipe!r} cannot be tuned; tune one of {sorted(TUNABLE_RECIPES)}"
        )
    if request.trials < 1:
        raise InvalidInput(f"--trials {request.trials}: give at least 1 trial")
    base = dict(request.params)
    if request.data_path is not None:
        base["data"] = str(request.data_path.absolute())
    data = load_image_data(parse_params(ImageParams, base, request.recipe))
    study = _study(request, parse_params(ImageParams, base, request.recipe).epochs)
    search = _Search(request, env, base, data)
    with sigterm_interrupts():
        study.optimize(search.run_trial, n_trials=request.trials)
    best, params, result = search.best_run, search.best_params, search.best_result
    if best is None or params is None or result is None:
        raise InvalidInput(f"no trial of study {study.study_name!r} finished; nothing to register")
    registration = publish(best, params, data, result)
    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    return TuneOutcome(
        study=study.study_name,
        best_run=best.run_id,
        best_value=search.best_value,
        best_params=dict(best.params),
        pruned_count=states.count(optuna.trial.TrialState.PRUNED),
        completed_count=states.count(optuna.trial.TrialState.COMPLETE),
        registration=registration,
    )


def _study(request: TuneRequest, epochs: int) -> optuna.Study:
    storage = optuna.storages.RDBStorage(request.storage_url, skip_compatibility_check=True)
    return optuna.create_study(
        storage=storage,
        study_name=request.study or f"{request.model}.{request.recipe}",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=request.seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs),
        load_if_exists=True,
    )


def suggest(trial: optuna.Trial) -> dict[str, ParamValue]:
    """The search space: learning rate, width, weight decay and batch size."""
    return {
        "lr": trial.suggest_float("lr", 1e-4, 3e-2, log=True),
        "width": trial.suggest_categorical("width", [4, 8, 16, 32]),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
    }


def _reporter(trial: optuna.Trial) -> EpochHook:
    def report(epoch: int, metrics: Mapping[str, float]) -> None:
        trial.report(metrics["val_accuracy"], epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned by Hyperband after epoch {epoch} "
                f"(val_accuracy {metrics['val_accuracy']:.4f})"
            )

    return report
