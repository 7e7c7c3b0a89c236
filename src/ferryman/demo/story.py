"""The demo story: each step runs the real part and says what happens and why.

1. train the digits classifier (v1): a run with checkpoints, ONNX fp32 and INT8 variants
   behind their accuracy gate, registered with its metrics and lineage;
2. start the control plane (its API and loop in this process; the gateway and the
   replicas as processes) and deploy endpoint ``digits`` with autoscaling 1 to 4;
3. send labelled traffic through the gateway; the true labels go back as feedback;
4. set a policy: every new version rolls out by canary 10 → 50 → 100, gated on errors,
   latency and accuracy from feedback;
5. train v2 on data with a labelling bug: fine offline, wrong live; its canary is rolled
   back by the accuracy gate, with no failed request;
6. train v3 on clean data, longer: its canary is promoted;
7. summarise: versions, accuracy offline, live and from feedback, latency, rollouts,
   requests served and failed, and where to look next.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from ferryman.config import Settings
from ferryman.control.data_dir_lock import DataDirLock
from ferryman.control.rollouts.gates import CanaryPlan, Gates
from ferryman.control.server import BackgroundControlPlane, check_ports, load_or_create_token
from ferryman.demo.summary import farewell, summarise
from ferryman.demo.traffic import DigitsTraffic, FeedbackTarget, Tally
from ferryman.errors import DeadlineExceeded, ModelNotFound
from ferryman.registry import Autoscaling, DeploymentSpec, Registry, RolloutRecord, VariantSpec

MODEL = "digits"
ACTOR = "demo"


@dataclass(frozen=True)
class Pace:
    """How long the demo takes: ``fast`` for CI, the default for people watching."""

    epochs: tuple[int, int, int]
    interval_s: float
    rate: float
    min_labelled: int

    @classmethod
    def of(cls, fast: bool) -> Pace:
        """v1 is a quick first model; v3 trains longest, so it should be the best."""
        if fast:
            return cls((2, 4, 6), interval_s=3.0, rate=40.0, min_labelled=40)
        return cls((3, 8, 12), interval_s=10.0, rate=25.0, min_labelled=100)


@dataclass(frozen=True)
class Outcome:
    rollouts: tuple[RolloutRecord, ...]
    tally: Tally


def run_demo(settings: Settings, console: Console, fast: bool, keep_serving: bool) -> Outcome:
    """Tell the story end to end; returns the rollouts and what the clients got."""
    lock = DataDirLock(settings.data_dir, settings.state_dir, _api(settings))
    try:
        return _run(settings, console, fast, keep_serving)
    finally:
        lock.release()


def _run(settings: Settings, console: Console, fast: bool, keep_serving: bool) -> Outcome:
    check_ports(settings)
    registry = Registry.open(settings)
    pace = Pace.of(fast)
    token = load_or_create_token(settings.data_dir)
    plane = BackgroundControlPlane(settings, registry, token)
    console.print(Panel.fit("Ferryman demo: train → register → serve → roll out by itself"))
    try:
        first = _train(registry, settings, console, pace.epochs[0], seed=1, step="1. Train")
        _start_control_plane(plane, settings, console)
        _deploy(registry, settings, console, first)
        feedback = FeedbackTarget(f"{plane.url}/api/v1/feedback", token.value)
        traffic = _start_traffic(registry, settings, first, pace.rate, feedback, max_s=1200)
        _say_traffic(console, pace.rate)
        _set_policy(registry, console, pace)
        bad = _train(registry, settings, console, pace.epochs[1], seed=2, step="6. Train",
                     mislabelled=True, previous=first)  # fmt: skip
        rolled_back = _watch_rollout(registry, console, bad, timeout_s=60 * pace.interval_s + 60)
        good = _train(registry, settings, console, pace.epochs[2], seed=3, step="7. Train")
        promoted = _watch_rollout(registry, console, good, timeout_s=60 * pace.interval_s + 60)
        time.sleep(2 * pace.interval_s)  # traffic on the promoted version, for the summary
        tally = traffic.stop()
        summarise(registry, console, MODEL, (rolled_back, promoted), tally)
        farewell(settings, console, plane, keep_serving, TRICKLE_RATE)
        if keep_serving:
            trickle = _start_traffic(
                registry, settings, good, TRICKLE_RATE, feedback, max_s=TRICKLE_MAX_S
            )
            _serve_until_stopped(plane)
            trickle.stop()
    finally:
        plane.stop()  # first, so that the loop does not restart what is stopped next
        if not keep_serving:  # also when a step failed: nothing is left running
            plane.loop.shut_down_data_plane()
        registry.close()
    return Outcome((rolled_back, promoted), tally)


TRICKLE_RATE = 5.0
"""Labelled requests per second while the demo serves on, so the dashboard shows live lines."""
TRICKLE_MAX_S = 7 * 24 * 3600.0
"""A bound all the same: a demo forgotten in a terminal stops sending after a week."""


def _api(settings: Settings) -> str:
    return f"http://{settings.control.host}:{settings.control.port}"


def _serve_until_stopped(plane: BackgroundControlPlane) -> None:
    """Until Ctrl-C, SIGTERM, or ``ferryman down`` (which stops the fleet through the API)."""
    stopped = plane.fleet_stop.done
    previous = signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train(
    registry: Registry,
    settings: Settings,
    console: Console,
    epochs: int,
    *,
    seed: int,
    step: str,
    mislabelled: bool = False,
    previous: int | None = None,
) -> int:
    from ferryman.demo.recipes import RECIPE, train_with_swapped_labels  # noqa: PLC0415 - torch
    from ferryman.training import RunEnvironment, TrainingRequest, start_run  # noqa: PLC0415
    from ferryman.training.progress import RichProgress  # noqa: PLC0415
    from ferryman.training.recipes import resolve_recipe  # noqa: PLC0415

    console.rule(f"{step} v{_next_version(registry)}")
    if mislabelled:
        console.print(
            "The same recipe, but a bug in the labelling pipeline swapped the labels of 1↔7 "
            "and 3↔8 in training and validation data alike: offline it looks as good as "
            f"v{previous}."
        )
    else:
        console.print(
            "A small CNN on scikit-learn's 8x8 digits: a recorded run with per-epoch "
            "checkpoints, exported to ONNX fp32 and INT8 behind an accuracy gate, registered."
        )
    recipe, train = (RECIPE, train_with_swapped_labels) if mislabelled else (
        "digits", resolve_recipe("digits"))  # fmt: skip
    request = TrainingRequest(recipe, MODEL, {"epochs": epochs, "seed": seed})
    env = RunEnvironment(
        registry, ACTOR, progress=RichProgress(console), log_dir=settings.data_dir / "logs"
    )
    outcome = start_run(train, request, env)
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


def _next_version(registry: Registry) -> int:
    """The number the next registration gets (a re-run in the same data dir goes on)."""
    try:
        versions = registry.list_versions(MODEL, include_archived=True)
    except ModelNotFound:
        return 1
    return versions[-1].version + 1 if versions else 1


def _start_control_plane(
    plane: BackgroundControlPlane, settings: Settings, console: Console
) -> None:
    console.rule("2. Start the control plane")
    plane.start()
    console.print(
        f"API and dashboard at {plane.url}/ui/ (the token is in "
        f"{settings.data_dir}/control-token); the control loop runs here, the gateway and the "
        "replicas as processes of their own."
    )


def _deploy(registry: Registry, settings: Settings, console: Console, version: int) -> None:
    console.rule("3. Deploy endpoint digits")
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
    _wait(lambda: _endpoint_is_ready(settings), 90, "a ready replica")
    console.print(f"Serving at {_gateway(settings)}/v2/models/{MODEL}/infer")


def _start_traffic(
    registry: Registry,
    settings: Settings,
    version: int,
    rate: float,
    feedback: FeedbackTarget,
    *,
    max_s: float,
) -> DigitsTraffic:
    from ferryman.training.images import digits_data  # noqa: PLC0415

    data = digits_data(seed=1, val_fraction=0.2)
    input_name = registry.get_version(MODEL, version).signature.inputs[0].name
    url = f"{_gateway(settings)}/v2/models/{MODEL}/infer"
    traffic = DigitsTraffic(
        url, input_name, data.val_x, data.val_y, rate=rate, max_s=max_s, feedback=feedback
    )
    traffic.start()
    return traffic


def _say_traffic(console: Console, rate: float) -> None:
    console.rule("4. Send traffic")
    console.print(
        f"{rate:g} requests/s of held-out digits; each answer's request id and the "
        "digit's true label go back to POST /api/v1/feedback about a second later."
    )


def _set_policy(registry: Registry, console: Console, pace: Pace) -> None:
    console.rule("5. Set the update policy")
    gates = Gates(
        min_success_rate=0.99, max_p99_ms=500, min_requests=10,
        max_accuracy_drop=0.03, min_labelled=pace.min_labelled,
    )  # fmt: skip
    plan = CanaryPlan(steps=(10, 50, 100), interval_s=pace.interval_s, threshold=3, gates=gates)
    registry.policies.put(MODEL, MODEL, "registered", plan.model_dump(mode="json"), ACTOR)
    console.print(
        f"Every new version of {MODEL} rolls out by canary 10 → 50 → 100, judged every "
        f"{pace.interval_s:g} s: success rate ≥ 99%, p99 ≤ 500 ms, and accuracy from feedback "
        f"no more than 3 points below production's once {pace.min_labelled} of its answers are "
        "labelled. 3 failed checks roll back; too little evidence holds, never promotes."
    )


def _watch_rollout(
    registry: Registry, console: Console, version: int, timeout_s: float
) -> RolloutRecord:
    console.rule(f"Watch the canary of v{version}")
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


def _gateway(settings: Settings) -> str:
    return f"http://{settings.gateway.host}:{settings.gateway.port}"


def _endpoint_is_ready(settings: Settings) -> bool:
    """The endpoint answers V2 model-ready through the gateway: a ready replica is routed."""
    try:
        answer = httpx.get(f"{_gateway(settings)}/v2/models/{MODEL}/ready", timeout=1.0)
    except httpx.HTTPError:
        return False
    return bool(answer.status_code == 200)


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise DeadlineExceeded(f"no {what} within {timeout_s:.0f} s")
