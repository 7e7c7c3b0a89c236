"""The end of the demo: what each version was worth, what the rollouts decided, and what
the clients got — then where to keep looking."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ferryman.config import Settings
from ferryman.control.metrics.feedback import FeedbackSignals
from ferryman.control.server import BackgroundControlPlane
from ferryman.demo.traffic import Tally
from ferryman.registry import Registry, RolloutRecord


def summarise(
    registry: Registry,
    console: Console,
    model: str,
    rollouts: tuple[RolloutRecord, ...],
    tally: Tally,
) -> None:
    console.rule("Summary")
    console.print(_versions(registry, model, tally))
    table = Table("rollout", "from → to", "outcome", "why", title="Rollouts")
    for record in rollouts:
        style = "green" if record.status.value == "promoted" else "red"
        table.add_row(str(record.id), f"{record.baseline.name} → {record.candidate.name}",
                      f"[{style}]{record.status.value}[/]", record.reason)  # fmt: skip
    console.print(table)
    served = sum(tally.requests.values())
    console.print(
        f"Requests served: {served}   labels sent back: {tally.labels_sent}   "
        f"[bold]failed requests: {tally.failed}[/]"
    )


def _versions(registry: Registry, model: str, tally: Tally) -> Table:
    signals = FeedbackSignals(registry)
    table = Table(
        "version", "val accuracy", "live accuracy", "from feedback", "requests",
        "p50 ms", "p99 ms", "variants", title=f"{model}: offline, live and from feedback",
    )  # fmt: skip
    for version in registry.list_versions(model):
        key = str(version.version)
        live = tally.accuracy(key)
        scored = signals.quality(model, f"v{version.version}")
        p50, p99 = tally.latency_ms(key, 0.5), tally.latency_ms(key, 0.99)
        kinds = ", ".join(v.kind for v in registry.list_variants(model, version.version))
        table.add_row(
            f"v{version.version}", f"{version.metrics.get('val_accuracy', 0):.3f}",
            _figure(live), _figure(scored.accuracy if scored.labelled else None),
            str(tally.requests[key]), _figure(p50, 1), _figure(p99, 1), kinds,
        )  # fmt: skip
    return table


def _figure(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def farewell(
    settings: Settings,
    console: Console,
    plane: BackgroundControlPlane,
    keep_serving: bool,
    trickle_rate: float,
) -> None:
    """Say what happens next: the data plane stops (CI), or everything stays up (people)."""
    gateway = f"http://{settings.gateway.host}:{settings.gateway.port}"
    if not keep_serving:
        console.print("Stopping the replicas and the gateway (without --fast they keep serving).")
        return
    data_dir = settings.data_dir
    console.print(
        f"Dashboard: {plane.url}/ui/ (log in with the token in {data_dir}/control-token)\n"
        f"API schema: {plane.url}/openapi.json (with the token)\n"
        f"Endpoint:  {gateway}/v2/models/digits/infer\n"
        f"Explore:   ferryman --data-dir {data_dir} endpoints list | rollout status | events | "
        "versions show digits production\n"
        f"Traffic:   {trickle_rate:g} labelled requests/s keep flowing, with feedback, so the "
        "dashboard shows live lines\n"
        "Press Ctrl-C to stop the control plane: the endpoint keeps serving (take it back with "
        f"`ferryman --data-dir {data_dir} up`, stop it with `ferryman --data-dir {data_dir} down`)."
    )
