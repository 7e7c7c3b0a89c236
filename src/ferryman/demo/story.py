"""The demo story: each step runs the real part and says what happens and why.

1. train the digits classifier (v1): a run with checkpoints, ONNX fp32 and INT8 variants
   behind their accuracy gate, registered with its metrics and lineage;
2. start the control plane (its loop in this process; the gateway and the replicas as
   processes) and deploy endpoint ``digits`` with autoscaling 1 to 4;
3. send labelled traffic through the gateway, scored per version;
4. set a policy: every new version rolls out by canary 10 → 50 → 100, gated;
5. train v2; its registration starts the canary, which the gates step to promotion;
6. summarise: versions, variants, the rollout, requests served and failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from ferryman.config import Settings
from ferryman.control.gateway_process import GatewayProcess, port_is_free
from ferryman.control.loop import ControlLoop
from ferryman.control.rollout import CanaryPlan, Gates
from ferryman.control.routes import RouteTable
from ferryman.demo.traffic import DigitsTraffic, Tally
from ferryman.errors import DeadlineExceeded, Unavailable
from ferryman.registry import (
    Autoscaling,
    DeploymentSpec,
    Registry,
    RolloutRecord,
    VariantSpec,
)

MODEL = "digits"
ACTOR = "demo"


@dataclass(frozen=True)
class Pace:
    """How long the demo takes: ``fast`` for CI, the default for people watching."""

    first_epochs: int
    second_epochs: int
    interval_s: float
    rate: float

    @classmethod
    def of(cls, fast: bool) -> Pace:
        """v1 is a quick first model; v2 trains longer, so it should be the better one."""
        return cls(2, 6, interval_s=3.0, rate=25.0) if fast else cls(3, 12, 10.0, 25.0)


@dataclass(frozen=True)
class Outcome:
    rollout: RolloutRecord
    tally: Tally


def run_demo(settings: Settings, console: Console, fast: bool, keep_serving: bool) -> Outcome:
    """Tell the story end to end; returns the rollout and what the clients got."""
    gateway = settings.gateway
    if not port_is_free(gateway.host, gateway.port) and not GatewayProcess(settings).is_running():
        raise Unavailable(
            f"port {gateway.port} (the gateway's) is in use by another program; free it or pick "
            "another with FERRYMAN_GATEWAY__PORT=8001 ./scripts/demo"
        )
    registry = Registry.open(settings)
    pace = Pace.of(fast)
    loop = ControlLoop(settings, registry)
    console.print(Panel.fit("Ferryman demo: train → register → serve → roll out by itself"))
    try:
        first = _train(registry, settings, console, pace.first_epochs, seed=1, step="1. Train v1")
        loop.start()
        _deploy(registry, settings, console, first)
        traffic = _start_traffic(registry, settings, console, first, pace)
        _set_policy(registry, console, pace)
        second = _train(registry, settings, console, pace.second_epochs, seed=2, step="5. Train v2")
        rollout = _watch_rollout(registry, console, second, timeout_s=40 * pace.interval_s + 60)
        time.sleep(2 * pace.interval_s)  # traffic on the promoted version, for the summary
        tally = traffic.stop()
    finally:
        loop.stop()
    _summary(registry, console, rollout, tally)
    _farewell(settings, console, loop, keep_serving)
    registry.close()
    return Outcome(rollout, tally)


def _train(
    registry: Registry, settings: Settings, console: Console, epochs: int, *, seed: int, step: str
) -> int:
    from ferryman.training import RunEnvironment, TrainingRequest, start_run  # noqa: PLC0415
    from ferryman.training.progress import RichProgress  # noqa: PLC0415
    from ferryman.training.recipes import resolve_recipe  # noqa: PLC0415

    console.rule(step)
    console.print(
        "A small CNN on scikit-learn's 8x8 digits: a recorded run with per-epoch checkpoints, "
        "exported to ONNX fp32 and INT8 behind an accuracy gate, then registered."
    )
    request = TrainingRequest("digits", MODEL, {"epochs": epochs, "seed": seed})
    env = RunEnvironment(
        registry, ACTOR, progress=RichProgress(console), log_dir=settings.data_dir / "logs"
    )
    outcome = start_run(resolve_recipe("digits"), request, env)
    version = registry.list_versions(MODEL)[-1]
    table = Table(
        "variant", "status", "gate", title=f"{MODEL} v{version.version} (run {outcome.run.id[:8]})"
    )
    for variant in registry.list_variants(MODEL, version.version):
        gate = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in list(variant.gate.items())[:4])  # fmt: skip
        table.add_row(variant.kind, variant.status.value, gate)
    accuracy = version.metrics.get("val_accuracy", float("nan"))
    console.print(f"Registered {MODEL} v{version.version}: validation accuracy {accuracy:.3f}")
    console.print(table)
    return version.version


def _deploy(registry: Registry, settings: Settings, console: Console, version: int) -> None:
    console.rule("2. Deploy endpoint digits")
    spec = DeploymentSpec(
        endpoint=MODEL,
        variants=(VariantSpec(model=MODEL, version=version),),
        autoscaling=Autoscaling(min_replicas=1, max_replicas=4, target_in_flight=4),
    )
    registry.deployments.put(spec, ACTOR)
    console.print(
        "Desired state stored; the control loop starts a replica process, waits until it "
        "answers its golden requests correctly, then adds it to the gateway's route table."
    )
    _wait(lambda: _ready_backends(settings) > 0, 90, "a ready replica")
    console.print(f"Serving at {_gateway(settings)}/v2/models/{MODEL}/infer")


def _start_traffic(
    registry: Registry, settings: Settings, console: Console, version: int, pace: Pace
) -> DigitsTraffic:
    from ferryman.training.images import digits_data  # noqa: PLC0415

    console.rule("3. Send traffic")
    data = digits_data(seed=1, val_fraction=0.2)
    input_name = registry.get_version(MODEL, version).signature.inputs[0].name
    url = f"{_gateway(settings)}/v2/models/{MODEL}/infer"
    traffic = DigitsTraffic(url, input_name, data.val_x, data.val_y, rate=pace.rate, max_s=900)
    traffic.start()
    console.print(f"{pace.rate:g} requests/s of labelled validation digits, scored per version")
    return traffic


def _set_policy(registry: Registry, console: Console, pace: Pace) -> None:
    console.rule("4. Set the update policy")
    gates = Gates(min_success_rate=0.99, max_p99_ms=500, min_requests=10)
    plan = CanaryPlan(steps=(10, 50, 100), interval_s=pace.interval_s, threshold=3, gates=gates)
    registry.policies.put(MODEL, MODEL, "registered", plan.model_dump(mode="json"), ACTOR)
    console.print(
        f"Every new version of {MODEL} rolls out by canary 10 → 50 → 100, judged every "
        f"{pace.interval_s:g} s on success rate ≥ 99% and p99 ≤ 500 ms; 3 failed checks roll "
        "back; too little traffic holds, never promotes."
    )


def _watch_rollout(
    registry: Registry, console: Console, version: int, timeout_s: float
) -> RolloutRecord:
    console.rule("6. Watch the canary")
    seen = registry.list_events(limit=1)[-1].id
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in registry.list_events(after_id=seen, limit=100):
            seen = event.id
            if event.action.startswith(("rollout.", "endpoint.scaled", "policy.")):
                detail = event.details.get("reason") or event.details.get("weight") or ""
                console.print(f"  {event.action:<20} {event.object_key:<14} {detail}")
        done = [r for r in registry.rollouts.list(MODEL) if r.candidate.version == version]
        if done and done[-1].status.is_final:
            return done[-1]
        time.sleep(0.5)
    raise DeadlineExceeded(f"the rollout of v{version} did not finish in {timeout_s:.0f} s")


def _summary(registry: Registry, console: Console, rollout: RolloutRecord, tally: Tally) -> None:
    console.rule("Summary")
    table = Table("version", "val accuracy", "live accuracy", "requests", "variants", title=MODEL)
    for version in registry.list_versions(MODEL):
        live = tally.accuracy(str(version.version))
        kinds = ", ".join(v.kind for v in registry.list_variants(MODEL, version.version))
        table.add_row(f"v{version.version}", f"{version.metrics.get('val_accuracy', 0):.3f}",
                      "" if live is None else f"{live:.3f}",
                      str(tally.requests[str(version.version)]), kinds)  # fmt: skip
    console.print(table)
    served = sum(tally.requests.values())
    console.print(
        f"Rollout {rollout.id}: {rollout.baseline.name} → {rollout.candidate.name} "
        f"[bold]{rollout.status.value}[/] ({rollout.reason})"
    )
    console.print(f"Requests served: {served}   [bold]failed requests: {tally.failed}[/]")
    console.print(
        "Today's gates judge errors and latency. Judging accuracy from feedback labels and "
        "prediction drift, so that a worse model is rolled back even when it never fails a "
        "request, is the next part."
    )


def _farewell(settings: Settings, console: Console, loop: ControlLoop, keep_serving: bool) -> None:
    if not keep_serving:
        loop.shut_down_data_plane()
        console.print("Replicas and gateway stopped (run without --fast to keep them serving).")
        return
    console.print(
        f"Still serving: {_gateway(settings)}/v2/models/{MODEL}/infer\n"
        f"Keep exploring: ferryman --data-dir {settings.data_dir} endpoints list | rollout "
        "status | events | versions show digits production\n"
        f"Take the control plane back with `ferryman --data-dir {settings.data_dir} up`; "
        f"stop everything with `ferryman --data-dir {settings.data_dir} down`.\n"
        "Not in this demo yet: rollback of a worse model from accuracy feedback and drift "
        "gates, and the web dashboard (they arrive with the next parts)."
    )


def _gateway(settings: Settings) -> str:
    return f"http://{settings.gateway.host}:{settings.gateway.port}"


def _ready_backends(settings: Settings) -> int:
    try:
        table = RouteTable.from_json(Path(settings.routes_path).read_bytes())
    except (OSError, ValueError):
        return 0
    route = table.endpoints.get(MODEL)
    return 0 if route is None else sum(len(v.backends) for v in route.variants)


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise DeadlineExceeded(f"no {what} within {timeout_s:.0f} s")
