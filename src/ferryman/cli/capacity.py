"""``ferryman capacity`` and ``ferryman recommend``: measure what a version carries, then size
and price the cheapest configuration for a load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ferryman.capacity.catalogue import load_catalogue
from ferryman.capacity.cost import CostReport
from ferryman.capacity.recommend import Recommendation, autoscale_bounds, recommend
from ferryman.capacity.sweep import SweepPlan, SweepRequest, sweep_version, variants_to_measure
from ferryman.cli.context import cli_context
from ferryman.cli.output import JsonOption, console, errors, print_json
from ferryman.cli.serve import parse_target
from ferryman.cli.verify import verification_table, verify_recommendation
from ferryman.config import Settings
from ferryman.registry import CapacityResult, LoadStep, Registry, ServingConfig

CHART_WIDTH = 40
HISTORY_DAYS = 7

P99Option = Annotated[float, typer.Option("--p99-ms", help="p99 latency target, in ms.")]


def capacity(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="MODEL@REF: MODEL@3, MODEL@production.")],
    p99_ms: P99Option = 50.0,
    variant: Annotated[
        list[str] | None, typer.Option(help="Variant to measure (repeat); default all passed.")
    ] = None,
    batch: Annotated[
        list[int] | None, typer.Option(help="max_batch_size to try (repeat) [1, 16].")
    ] = None,
    delay_ms: Annotated[
        list[float] | None, typer.Option(help="Batch delay in ms to try (repeat) [2].")
    ] = None,
    threads: Annotated[
        list[int] | None, typer.Option(help="Intra-op threads to try (repeat; 0: auto) [1, 2].")
    ] = None,
    start_qps: Annotated[float, typer.Option(help="First rate of each sweep.")] = 20.0,
    rate_factor: Annotated[float, typer.Option(help="Each rate is the last times this.")] = 2.0,
    max_qps: Annotated[float, typer.Option(help="Highest rate tried.")] = 5000.0,
    step_s: Annotated[float, typer.Option(help="Seconds of load per rate.")] = 3.0,
    refine: Annotated[int, typer.Option(help="Bisections after the first rate that fails.")] = 2,
    again: Annotated[bool, typer.Option("--again", help="Measure even if stored.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Measure the highest rate each serving configuration of a version carries within a p99
    target, on real replicas loaded open-loop; results are stored with the version."""
    state = cli_context(ctx)
    registry = state.registry()
    model, ref = parse_target(target)
    version = registry.get_version(model, ref).version
    defaults = SweepPlan()
    plan = SweepPlan(
        p99_target_ms=p99_ms,
        batch_sizes=tuple(batch or defaults.batch_sizes),
        delays_ms=tuple(delay_ms or defaults.delays_ms),
        threads=tuple(threads or defaults.threads),
        start_qps=start_qps,
        rate_factor=rate_factor,
        max_qps=max_qps,
        step_s=step_s,
        refine_steps=refine,
    )
    request = SweepRequest(model, version, plan, tuple(variant or ()), again)
    results: list[CapacityResult] = []
    try:
        _sweep_with_progress(registry, state.settings, request, results, json_output)
    except KeyboardInterrupt:
        errors.print("stopped; the configurations finished so far are stored", markup=False)
        _show(results, model, version, p99_ms, json_output, partial=True)
        raise typer.Exit(130) from None
    _show(results, model, version, p99_ms, json_output, partial=False)


def _sweep_with_progress(
    registry: Registry,
    settings: Settings,
    request: SweepRequest,
    results: list[CapacityResult],
    is_quiet: bool,
) -> None:
    with Progress(
        SpinnerColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=is_quiet,
    ) as progress:
        total = len(request.plan.configurations(variants_to_measure(registry, request)))
        task: TaskID = progress.add_task("starting replicas", total=total)

        def on_step(config: ServingConfig, step: LoadStep) -> None:
            p99 = "-" if step.p99_ms is None else f"{step.p99_ms:.1f} ms"
            progress.update(
                task,
                description=f"{config.describe()}: {step.target_qps:g} qps "
                f"-> achieved {step.achieved_qps:.1f}, p99 {p99}, "
                f"{step.errors} errors",
            )

        def on_result(result: CapacityResult, is_new: bool) -> None:
            results.append(result)
            progress.advance(task)
            how = "measured" if is_new else "stored"
            progress.console.print(
                f"{result.config.describe()}: {result.max_qps:g} qps ({how})", markup=False
            )

        asyncio.run(sweep_version(registry, settings, request, on_step, on_result))


def _show(
    results: Sequence[CapacityResult],
    model: str,
    version: int,
    p99_ms: float,
    json_output: bool,
    *,
    partial: bool,
) -> None:
    if json_output:
        print_json(list(results))
        return
    console.print(capacity_table(results, f"{model} v{version}", p99_ms, partial))
    console.print(capacity_chart(results))


def capacity_table(
    results: Sequence[CapacityResult], what: str, p99_ms: float, partial: bool = False
) -> Table:
    title = f"Capacity of {what} at p99 ≤ {p99_ms:g} ms" + (" (partial)" if partial else "")
    table = Table(
        "variant",
        "batch",
        "delay",
        "threads",
        "max qps",
        "p99 there",
        "CPU",
        "memory",
        "stopped because",
        title=title,
    )
    for r in results:
        c = r.config
        table.add_row(
            c.variant,
            str(c.max_batch_size),
            f"{c.max_delay_ms:g} ms",
            str(c.intra_op_threads or "auto"),
            f"{r.max_qps:g}",
            "-" if r.p99_ms is None else f"{r.p99_ms:.1f} ms",
            "-" if r.cpu_pct is None else f"{r.cpu_pct:.0f}%",
            "-" if r.rss_bytes is None else f"{r.rss_bytes / 1e6:.0f} MB",
            r.stop_reason,
        )
    return table


def capacity_chart(results: Sequence[CapacityResult]) -> Table:
    """One bar per configuration, its length the rate it carries."""
    top = max((r.max_qps for r in results), default=0.0) or 1.0
    chart = Table("configuration", "max qps", show_header=False, box=None, title="max qps")
    for r in results:
        bar = "█" * max(0, round(CHART_WIDTH * r.max_qps / top))
        chart.add_row(r.config.describe(), f"[cyan]{bar}[/] {r.max_qps:g}")
    return chart


def recommend_command(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="Endpoint name (its main variant's version).")],
    qps: Annotated[float, typer.Option("--qps", help="Requests per second to carry.")],
    p99_ms: P99Option = 50.0,
    headroom: Annotated[float, typer.Option(help="Spare capacity on top, 0.3 = 30%.")] = 0.3,
    catalogue: Annotated[
        Path | None, typer.Option(help="TOML file of instance shapes [the example one].")
    ] = None,
    autoscale: Annotated[
        bool, typer.Option("--autoscale", help="Size min/max from the last 7 days' traffic.")
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Deploy the recommendation to an endpoint of its own (ENDPOINT-verify), send "
            "QPS through the gateway, report rate and p99 against the promise, remove it.",
        ),
    ] = False,
    verify_seconds: Annotated[
        float, typer.Option(help="Seconds of load of --verify (at most 600).")
    ] = 60.0,
    verify_endpoint: Annotated[
        str | None, typer.Option(help="Endpoint --verify deploys to (must not exist).")
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the --verify deployment running.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """The cheapest variant x batching x replicas x instance shape that carries QPS at p99 ≤
    the target with headroom, from stored capacity results; the two runners-up and why.
    With --verify, checked on a real deployment through the gateway."""
    state = cli_context(ctx)
    registry = state.registry()
    spec = registry.deployments.get(endpoint).spec
    main = max(spec.variants, key=lambda v: v.weight)
    shapes = load_catalogue(catalogue or state.settings.cost.catalogue)
    results = registry.capacity.of(main.model, main.version)
    answer = recommend(results, shapes, qps, p99_ms, headroom)
    bounds = None
    if autoscale:
        since_s = time.time() - HISTORY_DAYS * 86400
        rates = endpoint_rates(registry, endpoint, since_s)
        bounds = autoscale_bounds(rates, answer.best.replica_qps, headroom)
    if not json_output:
        console.print(recommendation_table(answer, f"{endpoint} ({main.model} v{main.version})"))
    checked = None
    if verify:
        checked = verify_recommendation(
            state, answer, main, endpoint,
            name=verify_endpoint, duration_s=verify_seconds, is_kept=keep,
        )  # fmt: skip
    if json_output:
        shown = answer.model_dump(mode="json")
        if bounds is not None:
            shown["autoscaling"] = bounds.model_dump(mode="json")
        if checked is not None:
            verdict = {"is_carried": checked.is_carried, "why_not": checked.why_not}
            shown["verification"] = {**checked.model_dump(mode="json"), **verdict}
        print_json(shown)
        if checked is not None and not checked.is_carried:
            raise typer.Exit(1)
        return
    if bounds is not None:
        console.print(
            f"autoscaling: min {bounds.min_replicas} (p95 {bounds.p95_qps:.1f} qps), max "
            f"{bounds.max_replicas} (peak {bounds.peak_qps:.1f} qps) over {HISTORY_DAYS} days"
        )
    if checked is not None:
        console.print(verification_table(checked))
        if not checked.is_carried:
            raise typer.Exit(1)


def endpoint_rates(registry: Registry, endpoint: str, since_s: float) -> list[float]:
    """The endpoint's rate at each sample time: its variants' rates summed."""
    totals: dict[float, float] = {}
    for sample in registry.history.since(since_s, endpoint, ("qps",)):
        if "qps" in sample.values:
            totals[sample.time_s] = totals.get(sample.time_s, 0.0) + sample.values["qps"]
    return [totals[at] for at in sorted(totals)]


def recommendation_table(answer: Recommendation, what: str) -> Table:
    title = (
        f"Cheapest for {what}: {answer.qps:g} qps (+{answer.headroom:.0%} = "
        f"{answer.needed_qps:g}) at p99 ≤ {answer.p99_target_ms:g} ms"
    )
    table = Table(
        "",
        "configuration",
        "replica qps",
        "replicas",
        "instances",
        "per hour",
        "why not",
        title=title,
    )
    rows = [
        ("best", answer.best, ""),
        *(("runner-up", r.candidate, r.why) for r in answer.runners_up),
    ]
    for label, c, why in rows:
        table.add_row(
            label,
            c.config.describe(),
            f"{c.replica_qps:g}",
            f"{c.replicas} ({c.replicas_per_instance}/instance, "
            f"{c.cores_per_replica} core(s) each)",
            f"{c.instances} x {c.shape.name}",
            f"{c.cost_per_hour:.4g}",
            why,
        )
    return table


def show_costs(report: CostReport, json_output: bool) -> None:
    """``ferryman endpoints list --cost``: each endpoint's cost now."""
    if json_output:
        print_json(report)
        return
    if report.instance is None:
        errors.print(report.note, markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(
        "endpoint",
        "replicas",
        "qps",
        "per hour",
        "per 1,000 requests",
        title=f"Endpoint costs ({report.note})",
    )
    for cost in report.endpoints:
        table.add_row(
            cost.endpoint,
            f"{cost.replicas:g}",
            "-" if cost.qps is None else f"{cost.qps:.1f}",
            f"{cost.cost_per_hour:.4g}",
            "-" if cost.cost_per_1k_requests is None else f"{cost.cost_per_1k_requests:.4g}",
        )
    console.print(table)
