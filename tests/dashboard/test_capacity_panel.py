"""The dashboard's capacity section (model page) and cost section (endpoint page), in Chromium."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from ferryman.registry import CapacityResult, ServingConfig
from tests.control.api.conftest import RunningServer
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
