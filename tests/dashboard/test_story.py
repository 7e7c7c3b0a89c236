"""The story in the dashboard, end to end: a real ``ferryman up`` with its gateway and
replicas under load, watched and steered from headless Chromium.

Log in with the token from the data dir, see the endpoint with a live chart that updates,
watch a canary step, roll it back from the dashboard, and check that the deployment and the
traffic really went back, with no failed request. Screenshots of each stage are saved.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from ferryman.control.api.security import TOKEN_FILE
from tests.conftest import make_onnx
from tests.control.e2e.harness import Load, Stack, wait_for

pytestmark = pytest.mark.e2e

CANARY_STEPS = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]  # slow enough to roll back midway


@dataclass
class WatchedStack(Stack):
    """The e2e stack with the monitor sampling every second, so charts move in seconds."""

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "FERRYMAN_CONTROL__MONITOR_INTERVAL_S": "1"}

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def token(self) -> str:
        return (self.data_dir / TOKEN_FILE).read_text().strip()

    def call(
        self, method: str, path: str, content: bytes | None = None, **body: object
    ) -> httpx.Response:
        """The API as the CLI and the SDK call it: bearer token, no cookie, no CSRF token."""
        headers = {"authorization": f"Bearer {self.token}"}
        answer = httpx.request(
            method, self.api + path, content=content, json=body or None, headers=headers
        )
        assert answer.status_code < 400, answer.text
        return answer


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[WatchedStack]:
    """``ferryman up`` with model ``m`` v1 deployed on one replica and v2 registered (over
    the API: a ``ferryman`` command costs seconds of imports)."""
    running = WatchedStack(tmp_path / "data")
    running.data_dir.mkdir()  # Stack.up opens its log there before it creates the dir
    running.up()
    try:
        for version in (1, 2):
            model = make_onnx(seed_value=float(version - 1))
            running.call("POST", "/api/v1/models/m/versions", content=model)
        variants = [{"model": "m", "version": 1, "replicas": 1}]
        running.call("PUT", "/api/v1/deployments/m", endpoint="m", variants=variants)
        wait_for(lambda: len(running.ready_backends("m")) == 1, 60, "v1 ready")
        yield running
    finally:
        running.down()


def points(page: Page, selector: str) -> int:
    return int(page.locator(selector).get_attribute("data-points") or 0)


def test_watch_a_canary_step_and_roll_it_back_from_the_dashboard(
    page: Page, watched: WatchedStack, screenshots: Path
) -> None:
    with Load(f"{watched.gateway}/v2/models/m/infer", rate=40, max_s=90).running() as load:
        page.goto(watched.api + "/ui/")
        expect(page).to_have_url(re.compile(r"/ui/login\?next="))
        page.fill("#token", watched.token)
        page.click("button[type=submit]")
        expect(page).to_have_url(watched.api + "/ui/")

        card = page.locator("[data-testid=endpoint-card][data-endpoint=m]")
        expect(card).to_contain_text("v1 100%")
        qps = "[data-endpoint=m] [data-testid=qps-chart] svg"
        wait_for(lambda: points(page, qps) >= 2, 30, "requests on the overview's chart")
        seen = points(page, qps)
        wait_for(lambda: points(page, qps) > seen, 15, "the chart updating by itself")
        expect(card.locator("[data-testid=qps-chart] .legend")).not_to_contain_text("—")
        page.screenshot(path=screenshots / "story-1-overview.png", full_page=True)

        plan = {"steps": CANARY_STEPS, "interval_s": 2, "threshold": 3,
                "gates": {"min_requests": 3}}  # fmt: skip
        rollout = watched.call(
            "POST", "/api/v1/rollouts", endpoint="m", version=2, strategy="canary", plan=plan
        ).json()
        card.locator("a.name").click()
        expect(page).to_have_url(watched.api + "/ui/endpoints/m")
        panel = page.locator(f"[data-testid=rollout][data-rollout='{rollout['id']}']")
        expect(panel).to_have_attribute("data-status", "progressing", timeout=15_000)
        steps = page.locator("[data-testid=timeline] li[data-action=step]")
        expect(steps.last).to_contain_text("Stepped to 10%", timeout=15_000)
        wait_for(lambda: steps.count() >= 2, 30, "a step taken by the canary's gates")
        expect(panel.locator(".steps .step.done")).not_to_have_count(0)
        expect(page.locator("[data-testid=variants] tbody tr")).to_have_count(2)
        page.screenshot(path=screenshots / "story-2-endpoint-rollout.png", full_page=True)

        panel.locator("[data-action=rollback]").click()
        expect(page.locator("[role=dialog]")).to_contain_text(f"Roll back rollout #{rollout['id']}")
        page.click("[data-testid=confirm]")
        expect(page.locator(".toast")).to_contain_text("rolled back")
        expect(panel).to_have_attribute("data-status", "rolled_back", timeout=10_000)
        expect(page.locator("[data-testid=timeline] li[data-action=rolled_back]")).to_be_visible()

        spec = watched.call("GET", "/api/v1/deployments/m").json()["spec"]
        assert [(v["version"], v["weight"]) for v in spec["variants"]] == [(1, 100)]
        wait_for(lambda: _only_v1_routed(watched), 30, "the gateway routing v1 only")
        back_s = load.now_s()
        wait_for(lambda: load.now_s() > back_s + 3, 5, "three more seconds of traffic")
        page.screenshot(path=screenshots / "story-3-rolled-back.png", full_page=True)
        panel.locator(f"a[href='/ui/rollouts/{rollout['id']}']").click()
        weight = page.locator("[data-testid=chart-weight] svg")
        expect(weight.locator("path.series")).to_have_count(2)  # baseline and candidate
        expect(weight.locator(".marker")).not_to_have_count(0)  # the steps and the rollback
        page.screenshot(path=screenshots / "story-4-rollout.png", full_page=True)

    assert load.failures() == []
    # the gateway reads its route file every 0.15 s: give it a second before counting
    after = [o.version for o in load.outcomes if o.at_s > back_s + 1]
    assert after
    assert set(after) == {"1"}
    assert any(o.version == "2" for o in load.outcomes)  # the canary did serve

    page.goto(watched.api + "/ui/models/m")
    expect(page.locator("[data-testid=lineage] [data-version='2']")).to_be_visible()
    page.screenshot(path=screenshots / "story-5-model.png", full_page=True)


def _only_v1_routed(stack: Stack) -> bool:
    table = stack.routes()
    if table is None or "m" not in table.endpoints:
        return False
    return [v.name for v in table.endpoints["m"].variants] == ["v1"]
