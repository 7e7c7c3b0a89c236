"""Start or resume a run around a training function and record how it ended.

The function gets a :class:`RunContext`. If it returns, the run succeeded; if it raises, the
run failed with the message; if the process is told to stop (Ctrl-C or SIGTERM) the run is
``interrupted`` and can be resumed. A SIGKILLed run stays ``running`` in the registry, and
resumes the same way from its last checkpoint.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from ferryman.export import GatePolicy
from ferryman.registry import Registry, RunRecord, RunStatus
from ferryman.registry.records import ParamValue
from ferryman.training.context import Registration, RunContext
from ferryman.training.progress import ProgressSink

logger = logging.getLogger(__name__)

TrainFunction = Callable[[RunContext], Registration | None]
"""What a recipe or a user's training code is: a function of the run's context."""


class RunInterrupted(BaseException):
    """Raised in the training thread when the process receives SIGTERM."""


@dataclass(frozen=True)
class TrainingRequest:
    """A new run: which recipe, for which model, with which params and data."""

    recipe: str
    model: str
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    data_path: Path | None = None


@dataclass(frozen=True)
class RunEnvironment:
    """Where a run records itself and how it is shown and judged."""

    registry: Registry
    actor: str
    policy: GatePolicy = field(default_factory=GatePolicy)
    progress: ProgressSink | None = None
    log_dir: Path | None = None


@dataclass(frozen=True)
class RunOutcome:
    run: RunRecord
    registration: Registration | None


def start_run(train: TrainFunction, request: TrainingRequest, env: RunEnvironment) -> RunOutcome:
    """Create a run for ``request`` and drive ``train`` to its end."""
    params = dict(request.params)
    if request.data_path is not None:
        params["data"] = str(request.data_path.absolute())
    run = env.registry.runs.create(request.recipe, env.actor, request.model, params)
    return _drive(train, run, env)


def resume_run(train: TrainFunction, run_id: str, env: RunEnvironment) -> RunOutcome:
    """Continue an interrupted (or killed) run from its last checkpoint."""
    run = env.registry.runs.resume(run_id, env.actor)
    logger.info("resuming run %s (%d checkpoints)", run_id, len(run.checkpoints))
    return _drive(train, run, env)


def _drive(train: TrainFunction, run: RunRecord, env: RunEnvironment) -> RunOutcome:
    log_file = _log_file(env, run)
    ctx = RunContext(
        env.registry, run, env.actor, policy=env.policy, progress=env.progress, log_file=log_file
    )
    runs = env.registry.runs
    try:
        with sigterm_interrupts():
            registration = train(ctx)
    except (KeyboardInterrupt, RunInterrupted) as exc:
        runs.finish(run.id, RunStatus.INTERRUPTED, env.actor, "interrupted by a signal")
        raise RunInterrupted(
            f"run {run.id} stopped; continue it with: ferryman train --resume {run.id}"
        ) from exc
    except Exception as exc:
        runs.finish(run.id, RunStatus.FAILED, env.actor, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        ctx.progress.close()
    return RunOutcome(runs.finish(run.id, RunStatus.SUCCEEDED, env.actor), registration)


def _log_file(env: RunEnvironment, run: RunRecord) -> Path | None:
    if env.log_dir is None:
        return None
    env.log_dir.mkdir(parents=True, exist_ok=True)
    path = (env.log_dir / f"{run.id}.log").absolute()
    if run.log_path != str(path):
        env.registry.runs.set_log_path(run.id, str(path))
    return path


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into :class:`RunInterrupted` while training (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise RunInterrupted(f"received signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
