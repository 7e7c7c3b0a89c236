"""A language model's charts on its endpoint page, in headless Chromium (issue 17): time to
first token and per output token (with the rollout's gates), tokens/s in and out, open
streams and the thumbs-up rate of rated completions, drawn from what the monitor recorded,
and the votes per variant in the quality table; an endpoint without streams shows none."""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import Page, expect

from ferryman.control.rollouts.gates import CanaryPlan, Gates
from ferryman.control.rollouts.steering import start_rollout
from ferryman.registry import (
    CollectedPayload,
    DeploymentSpec,
    Feedback,
    MetricSample,
    Registry,
    VariantSpec,
)
from tests.conftest import make_onnx
from tests.control.api.conftest import RunningServer
from tests.dashboard.conftest import seed
from tests.dashboard.test_browser import log_in

LLM_VALUES = {
    "qps": 4.0, "p50_ms": 300.0, "p99_ms": 600.0, "error_rate": 0.0, "weight": 100.0,
    "replicas": 1.0, "replicas_desired": 1.0, "ttft_p50_ms": 20.0, "ttft_p99_ms": 45.0,
    "tpot_p50_ms": 3.0, "tpot_p99_ms": 7.5, "tokens_per_s": 250.0, "prompt_tokens_per_s": 40.0,
    "in_flight": 6.0, "thumbs_up_rate": 0.8,
}  # fmt: skip


def _a_language_model_serving(registry: Registry) -> None:
    """Endpoint ``chat`` on lm v1, five minutes of its samples every 10 s, and a canary to
    v2 under way whose gates bound the token latencies."""
    for number in (1, 2):
        registry.register("lm", make_onnx(seed_value=10.0 + number), "test")
    spec = DeploymentSpec(endpoint="chat", variants=(VariantSpec(model="lm", version=1),))
    registry.deployments.put(spec, "test")
    now = time.time()
    samples = [
        MetricSample(time_s=now - age_s, endpoint="chat", variant="v1",
                     values={**LLM_VALUES, "in_flight": 4.0 + (age_s // 60)})
        for age_s in range(300, -1, -10)
    ]  # fmt: skip
    registry.history.add(samples, retention_s=3600)
    gates = Gates(max_ttft_p99_ms=80, max_inter_token_p99_ms=12, min_thumbs_up_rate=0.7)
    plan = CanaryPlan(steps=(50, 100), interval_s=600, gates=gates)
    start_rollout(registry, "chat", 2, strategy="canary", plan=plan, actor="test")
    completions = [
        CollectedPayload(seq=n, request_id=f"cmpl-{n}", time=time.time(), status=200,
                         latency_ms=30.0, kind="completion")
        for n in range(1, 6)
    ]  # fmt: skip
    registry.payloads.add("chat", "v1", ("lm", 1), "replica-lm", completions)
    votes = ("up", "up", "up", "up", "down")
    registry.payloads.give_feedback(
        [Feedback(request_id=f"cmpl-{n}", label=vote) for n, vote in enumerate(votes, 1)], "user"
    )


def test_a_language_models_charts_draw_its_streams(
    page: Page, control: RunningServer, screenshots: Path
) -> None:
    seed(control.registry)
    _a_language_model_serving(control.registry)
    log_in(page, control, "/ui/endpoints/chat")
    section = page.locator("[data-testid=llm-charts]")
    expect(section).to_be_visible()
    for key, points in (("ttft_p99_ms", "62"), ("tpot_p99_ms", "62"), ("tokens_per_s", "31"),
                        ("prompt_tokens_per_s", "31"), ("in_flight", "31"),
                        ("thumbs_up_rate", "31")):  # fmt: skip
        chart = section.locator(f"[data-testid=chart-{key}] svg")
        expect(chart).to_have_attribute("data-points", points)  # p99 charts: and p50's
        line = chart.locator("path.series").first
        expect(line).to_have_attribute("d", re.compile(r"^M[^M]*(L[^L]+){30}$"))  # 31 points
    ttft = section.locator("[data-testid=chart-ttft_p99_ms]")
    expect(ttft.locator("path.series")).to_have_count(2)  # p99 and the dashed p50
    expect(ttft.locator(".legend")).to_contain_text("45.0")
    expect(ttft).to_contain_text("gate 80.0")  # the canary's bound on time to first token
    expect(section.locator("[data-testid=chart-tpot_p99_ms]")).to_contain_text("gate 12.0")
    expect(section.locator("[data-testid=chart-tokens_per_s] .legend")).to_contain_text("250")
    expect(section.locator("[data-testid=chart-in_flight] .legend")).to_contain_text("4")
    thumbs = section.locator("[data-testid=chart-thumbs_up_rate]")
    expect(thumbs.locator(".legend")).to_contain_text("80%")
    expect(thumbs).to_contain_text("gate 70%")  # the canary's least thumbs-up rate
    votes = page.locator("[data-testid=quality]")
    expect(votes.locator("thead")).to_contain_text("Up / down")
    expect(votes.locator("tbody tr").first).to_contain_text("4 / 1")
    expect(votes.locator("tbody tr").first).to_contain_text("80%")
    page.screenshot(path=screenshots / "endpoint-language-model.png", full_page=True)

    page.goto(control.url + "/ui/endpoints/digits")  # a classifier: no streams, no such charts
    expect(page.locator("[data-testid=variants]")).to_be_visible()
    expect(page.locator("[data-testid=chart-qps]")).to_be_visible()
    expect(page.locator("[data-testid=llm-charts]")).to_be_hidden()
    expect(page.locator("[data-testid=quality]")).to_be_visible()
    expect(page.locator("[data-testid=quality] thead")).not_to_contain_text("Up / down")
