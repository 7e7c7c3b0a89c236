"""Training commands: train, tune, and runs list/show.

PyTorch, scikit-learn and Optuna load only when a command needs them (STYLE.md 1: optional
heavy dependencies), so ``ferryman --help`` and the registry commands stay quick.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from ferryman.cli.context import CliContext, cli_context
from ferryman.cli.output import JsonOption, console, errors, pairs, print_json, size, when
from ferryman.errors import InvalidInput
from ferryman.registry import RunRecord
from ferryman.registry.records import ParamValue

if TYPE_CHECKING:
    from ferryman.training import Registration, RunEnvironment

T = TypeVar("T")

runs_app = typer.Typer(
    rich_markup_mode=None, help="List and inspect training runs.", no_args_is_help=True
)

ParamOption = Annotated[
    list[str] | None, typer.Option("--param", "-p", metavar="KEY=VALUE", help="Recipe param.")
]
DataOption = Annotated[
    Path | None, typer.Option(help="Data: an ImageFolder directory, or a .csv/.parquet table.")
]
TargetOption = Annotated[str | None, typer.Option(help="Tabular recipes: the label column.")]


def train(
    ctx: typer.Context,
    recipe: Annotated[
        str | None,
        typer.Argument(
            help="digits, image-classifier, tabular-classifier, tiny-lm, or module:function."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name.")] = None,
    param: ParamOption = None,
    data: DataOption = None,
    target: TargetOption = None,
    resume: Annotated[
        str | None, typer.Option(help="Continue this run from its last checkpoint.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Train a model (a recipe or your own function) and register the result.

    Image recipes (digits, image-classifier) take --param arch=cnn|resnet, epochs,
    batch_size, lr, weight_decay, patience, width, shift_px, flip, seed, val_fraction,
    precision=auto|fp32|bf16|fp16, image_size, channels, int8=auto|static|dynamic|off,
    threads. tabular-classifier takes model=logistic|gbm, seed, val_fraction, c,
    n_estimators, learning_rate, max_depth, and --target COLUMN. tiny-lm (a small
    language model, needs the llm extra) takes steps, seq_len, batch_size, lr, width, layers,
    vocab_size, corpus_bytes, seed, threads.
    """
    from ferryman.training import TrainingRequest, resume_run, start_run  # noqa: PLC0415
    from ferryman.training.recipes import recipe_key, resolve_recipe  # noqa: PLC0415

    state = cli_context(ctx)
    env = _environment(state, quiet=json_output)
    if resume is not None:
        if recipe is not None or param or data is not None:
            raise InvalidInput("--resume continues a run as it was; give only the run id")
        run = state.registry().runs.get(resume)
        outcome = _interruptible(lambda: resume_run(resolve_recipe(run.recipe), resume, env))
    else:
        if recipe is None:
            raise InvalidInput("name a recipe (e.g. ferryman train digits) or give --resume RUN_ID")
        name = _model_name(recipe, model)
        params = _params(param, target)
        request = TrainingRequest(recipe_key(recipe), name, params, data)
        outcome = _interruptible(lambda: start_run(resolve_recipe(recipe), request, env))
    _show_outcome(outcome.run, outcome.registration, json_output)


def tune(
    ctx: typer.Context,
    recipe: Annotated[str, typer.Argument(help="digits or image-classifier.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name.")],
    trials: Annotated[int, typer.Option(min=1, max=10_000, help="Number of trials.")] = 20,
    param: ParamOption = None,
    data: DataOption = None,
    study: Annotated[
        str | None, typer.Option(help="Optuna study name (default MODEL.RECIPE; resumable).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampler.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """Search hyperparameters with Optuna (Hyperband pruning); register the best trial."""
    import optuna  # noqa: PLC0415

    from ferryman.training.tuning import TuneRequest  # noqa: PLC0415
    from ferryman.training.tuning import tune as run_search  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    state = cli_context(ctx)
    request = TuneRequest(
        recipe=recipe,
        model=model,
        trials=trials,
        storage_url=state.settings.resolved_database_url,
        params=_params(param, None),
        data_path=data,
        study=study,
        seed=seed,
    )
    outcome = run_search(request, _environment(state, quiet=True))
    if json_output:
        print_json(
            {
                "study": outcome.study,
                "best_run": outcome.best_run,
                "best_value": outcome.best_value,
                "pruned": outcome.pruned_count,
                "completed": outcome.completed_count,
                "version": outcome.registration.version.version,
            }
        )
        return
    console.print(
        f"Study [bold]{outcome.study}[/]: {outcome.completed_count} trials completed, "
        f"{outcome.pruned_count} pruned; best val_accuracy {outcome.best_value:.2%} "
        f"(run {outcome.best_run}, {pairs(dict(outcome.best_params))})"
    )
    _show_registration(outcome.registration)


@runs_app.command("list")
def list_runs(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Newest N runs.")] = 50,
    json_output: JsonOption = False,
) -> None:
    """List training runs, newest first."""
    runs = cli_context(ctx).registry().runs.list(model, limit)
    if json_output:
        print_json(runs)
        return
    table = Table("model", "recipe", "status", "started", "finished", title="Runs")
    table.add_column("run", no_wrap=True)
    for run in runs:
        table.add_row(
            run.model or "", run.recipe, run.status, when(run.started_at),
            when(run.finished_at), run.id,
        )  # fmt: skip
    console.print(table)


@runs_app.command("show")
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run id (32 hex characters).")],
    json_output: JsonOption = False,
) -> None:
    """Show a run: params, status, metric series, checkpoints, log file."""
    run = cli_context(ctx).registry().runs.get(run_id)
    if json_output:
        print_json(run)
        return
    console.print(
        f"[bold]run {run.id}[/] {run.recipe} → {run.model or '-'}: {run.status}"
        + (f" ({run.error})" if run.error else "")
    )
    console.print(f"params: {pairs(dict(run.params))}")
    console.print(f"log: {run.log_path or '-'}; checkpoints: {len(run.checkpoints)}")
    _show_metrics(run)


def _environment(state: CliContext, quiet: bool) -> RunEnvironment:
    from ferryman.export import GatePolicy  # noqa: PLC0415
    from ferryman.training import RunEnvironment  # noqa: PLC0415
    from ferryman.training.progress import NullProgress, RichProgress  # noqa: PLC0415

    gate = state.settings.training
    policy = GatePolicy(
        parity_max_abs_diff=gate.fp32_parity_max_abs_diff,
        accuracy_drop_max_pct=gate.int8_accuracy_drop_max_pct,
        latency_repeats_count=gate.latency_repeats_count,
    )
    return RunEnvironment(
        registry=state.registry(),
        actor=state.settings.user,
        policy=policy,
        progress=NullProgress() if quiet else RichProgress(errors),
        log_dir=state.settings.data_dir / "runs",
    )


def _interruptible(work: Callable[[], T]) -> T:
    """Run ``work``; an interrupted run ends the command with how to resume it."""
    from ferryman.training import RunInterrupted  # noqa: PLC0415

    try:
        return work()
    except RunInterrupted as exc:
        errors.print(f"interrupted: {exc}")
        raise typer.Exit(130) from None


def _model_name(recipe: str, model: str | None) -> str:
    if model is not None:
        return model
    if recipe in {"digits", "tiny-lm"}:
        return recipe
    raise InvalidInput(f"give the model's name: ferryman train {recipe} --model NAME")


def _params(texts: list[str] | None, target: str | None) -> dict[str, ParamValue]:
    from ferryman.training.params import parse_param_text  # noqa: PLC0415

    params = dict(parse_param_text(text) for text in texts or [])
    if target is not None:
        params["target"] = target
    return params


def _show_outcome(run: RunRecord, registration: Registration | None, json_output: bool) -> None:
    if json_output:
        version = None if registration is None else registration.version.version
        print_json({"run": run.id, "status": run.status.value, "version": version})
        return
    console.print(f"Run [bold]{run.id}[/] {run.status}")
    if registration is not None:
        _show_registration(registration)


def _show_registration(registration: Registration) -> None:
    version = registration.version
    console.print(
        f"Registered [bold]{version.model}[/] v{version.version} ({pairs(version.metrics)})"
    )
    if not registration.variants:  # a model bundle (a language model) has no tensor variants
        console.print(f"format {version.format}: serve it with ferryman serve {version.model}")
        return
    table = Table("variant", "status", "size", "accuracy", "max |diff|", "b1 ms", "b32 ms")
    for variant in registration.variants:
        gate = variant.gate
        diff = gate.get("max_abs_diff")
        table.add_row(
            variant.kind,
            variant.status,
            size(variant.size_bytes),
            f"{gate['accuracy']:.2%}",
            "-" if diff is None else f"{diff:.2g}",
            f"{gate['latency_ms_b1']:.3f}",
            f"{gate['latency_ms_b32']:.3f}",
        )
    console.print(table)
    promote = f"ferryman alias set {version.model} production {version.version}"
    console.print(f"Promote it: [bold]{promote}[/]", soft_wrap=True)


def _show_metrics(run: RunRecord) -> None:
    if not run.metrics:
        return
    keys = sorted(run.metrics)
    table = Table("step", *keys, title="Metrics")
    steps = sorted({point.step for series in run.metrics.values() for point in series})
    values = {key: {point.step: point.value for point in run.metrics[key]} for key in keys}
    for step in steps:
        cells = [f"{values[key][step]:.4g}" if step in values[key] else "" for key in keys]
        table.add_row(str(step), *cells)
    console.print(table)
