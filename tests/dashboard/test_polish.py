"""What a person sees on the dashboard, in headless Chromium: a variant keeps its colour on
every page, a retired variant's legend shows no stale value, chart lines stay inside their
plot, the quality table names model and version, and long event details stay on the page."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Page, expect

from ferryman.registry import (
    CollectedPayload,
    DeploymentSpec,
    Feedback,
    MetricSample,
    Registry,
    VariantSpec,
)
from tests.control.api.conftest import RunningServer
from tests.dashboard.conftest import seed
from tests.dashboard.test_browser import log_in

ORANGE = "rgb(232, 121, 58)"  # the palette's second colour: v2's, wherever it is drawn


def _v1_retired_for_v2(registry: Registry) -> None:
    """digits moved from v1 to v2 three minutes ago; both have samples and labels."""
    spec = DeploymentSpec(endpoint="digits", variants=(VariantSpec(model="digits", version=2),))
    registry.deployments.put(spec, "test")
    now = time.time()
    values = {"p99_ms": 10.0, "p50_ms": 3.0, "error_rate": 0.0, "replicas": 1.0}
    samples = [
        MetricSample(time_s=now - age_s, endpoint="digits", variant=variant,
                     values={**values, "qps": 5.0 if variant == "v1" else 7.0})
        for age_s in range(300, -1, -10)
        for variant in (["v1"] if age_s > 180 else ["v2"])
    ]  # fmt: skip
    registry.history.add(samples, retention_s=3600)
    for variant, version, first in (("v1", 1, 1), ("v2", 2, 11)):
        answers = [
            CollectedPayload(seq=n, request_id=f"r{n}", time=now - 60, status=200,
                             latency_ms=1.0, predictions=["3"], summaries={})
            for n in range(first, first + 10)
        ]  # fmt: skip
        registry.payloads.add("digits", variant, ("digits", version), f"replica-{variant}", answers)
    registry.payloads.give_feedback([Feedback(request_id=f"r{n}", label="3") for n in range(1, 21)],
                                    "test")  # fmt: skip


def test_colours_legends_clipping_and_the_quality_table(
    page: Page, control: RunningServer, screenshots: Path
) -> None:
    seed(control.registry)
    _v1_retired_for_v2(control.registry)
    log_in(page, control)
    card = page.locator("[data-testid=endpoint-card][data-endpoint=digits]")
    legend = card.locator("[data-testid=qps-chart] .legend")
    expect(legend.locator("[data-series=v2] b")).to_have_text("7.0")
    expect(legend.locator("[data-series=v1]")).to_have_class("item retired")
    expect(legend.locator("[data-series=v1] b")).to_have_count(0)  # no stale "latest" value
    swatch = "el => getComputedStyle(el).backgroundColor"
    assert legend.locator("[data-series=v2] i").evaluate(swatch) == ORANGE
    card.locator("a.name").click()
    chart = page.locator("[data-testid=chart-qps] svg")
    expect(chart.locator("path.series")).to_have_count(2)
    page_legend = page.locator("[data-testid=chart-qps] .legend")
    assert page_legend.locator("[data-series=v2] i").evaluate(swatch) == ORANGE
    clipped = chart.evaluate(
        """svg => [...svg.querySelectorAll('path.series')].every((path) => {
             const group = path.closest('g[clip-path]');
             const id = group && /url\\(#(.+)\\)/.exec(group.getAttribute('clip-path'))[1];
             const rect = id && svg.querySelector(`clipPath[id="${id}"] rect`);
             return Boolean(rect) && Number(rect.getAttribute('width')) < svg.clientWidth;
           })"""
    )
    assert clipped
    quality = page.locator("[data-testid=quality] tbody tr")
    expect(quality.first).to_contain_text("digits v1")
    expect(quality.nth(1)).to_contain_text("digits v2")
    page.screenshot(path=screenshots / "endpoint-retired-variant.png", full_page=True)


def test_long_event_details_wrap_inside_the_page(
    page: Page, control: RunningServer, screenshots: Path
) -> None:
    seed(control.registry)
    details = {"reason": "x" * 400, "plan": {"steps": [10, 50, 100], "gates": {"max_p99_ms": 500}}}
    control.registry.record_event("test", "rollout.note", ("endpoint", "digits", "digits"), details)
    log_in(page, control, "/ui/events")
    rows = page.locator("[data-testid=events] tbody tr")
    expect(rows.first).to_contain_text("plan.steps=10/50/100, plan.gates.max_p99_ms=500")
    overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, overflow
    page.screenshot(path=screenshots / "events.png", full_page=True)
