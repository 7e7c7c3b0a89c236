"""The dashboard's capacity section (model page) and cost section (endpoint page), in Chromium."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ferryman.capacity.catalogue import load_catalogue
from ferryman.config import CostSettings, load_settings
from ferryman.registry import CapacityResult, MetricSample, ServingConfig
from tests.control.api.conftest import RunningServer, start_server
from tests.dashboard.conftest import seed
from tests.dashboard.test_browser import log_in


def test_the_model_page_shows_capacity_and_the_endpoint_how_to_price_it(
    page: Page, control: RunningServer, screenshots: Path
) -> None:
    seed(control.registry)
    for batch, carried in ((1, 120.0), (16, 480.0)):
        config = ServingConfig(
            variant="onnx", max_batch_size=batch, max_delay_ms=2, intra_op_threads=1
        )
        result = CapacityResult(
            config=config,
            p99_target_ms=50,
            max_qps=carried,
            p99_ms=31.5,
            cpu_pct=97,
            rss_bytes=150e6,
            stop_reason="p99 61 ms > 50 ms",
            cpu_count=2,
        )
        control.registry.capacity.put("digits", 1, result, "test")
    log_in(page, control, "/ui/models/digits")
    rows = page.locator("[data-testid=capacity-table] tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("batch ≤ 16")
    expect(rows.nth(1)).to_contain_text("480")
    expect(rows.nth(0)).to_contain_text("p99 61 ms > 50 ms")
    page.locator("[data-testid=capacity]").screenshot(path=screenshots / "capacity.png")
    page.goto(control.url + "/ui/endpoints/digits")
    expect(page.locator("[data-testid=cost]")).to_contain_text("FERRYMAN_COST__INSTANCE")


@pytest.fixture
def priced(tmp_path: Path) -> Iterator[RunningServer]:
    """A control plane whose replicas are priced as the example catalogue's example-cpu-2."""
    settings = load_settings(
        data_dir=tmp_path / "data", cost=CostSettings(instance="example-cpu-2")
    )
    server, thread, running = start_server(settings)
    yield running
    server.should_exit = True
    thread.join(timeout=10)
    running.registry.close()


def test_the_endpoint_page_charts_cost_beside_traffic_and_lists_it_per_day(
    page: Page, priced: RunningServer, screenshots: Path
) -> None:
    seed(priced.registry)
    now = time.time()
    # Five minutes every 10 s: 2 replicas, then 3 for the last minute.
    samples = [
        MetricSample(time_s=now - age_s, endpoint="digits", variant="v1",
                     values={"qps": 20.0, "replicas": 3.0 if age_s <= 60 else 2.0,
                             "replicas_desired": 2.0, "weight": 100.0})
        for age_s in range(300, -1, -10)
    ]  # fmt: skip
    priced.registry.history.add(samples, retention_s=3600)
    price = next(s for s in load_catalogue(None) if s.name == "example-cpu-2").price_per_hour
    log_in(page, priced, "/ui/endpoints/digits")
    chart = page.locator("[data-testid=chart-cost] svg")
    expect(chart).to_have_attribute("data-points", "31")
    # The legend shows the newest value: 3 replicas x the price per hour.
    legend = page.locator("[data-testid=chart-cost] .legend")
    expect(legend).to_contain_text(f"{3 * price:.4f}".rstrip("0").rstrip("."))
    # The cost chart sits right after the requests chart.
    charts = page.locator("[data-testid^=chart-]")
    expect(charts.nth(0)).to_have_attribute("data-testid", "chart-qps")
    expect(charts.nth(1)).to_have_attribute("data-testid", "chart-cost")
    rows = page.locator("[data-testid=daily-cost-table] tbody tr")
    expect(rows.first).to_contain_text("v1")
    expect(page.locator("[data-testid=savings]")).to_contain_text("scale-to-zero saved")
    page.locator("[data-testid=chart-cost]").screenshot(path=screenshots / "cost-chart.png")
