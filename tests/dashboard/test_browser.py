"""The dashboard in real headless Chromium against a real control plane (no replicas here;
the whole story with replicas and a rollout is test_story.py).

Each test saves screenshots a reviewer can open (the folder is printed in the summary).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from ferryman.registry import AlertChange, AlertLevel, MetricSample, Registry
from tests.control.api.conftest import RunningServer
from tests.dashboard.conftest import seed


def log_in(page: Page, control: RunningServer, start: str = "/ui/") -> None:
    page.goto(control.url + start)
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.fill("#token", control.token)
    page.click("button[type=submit]")
    expect(page).to_have_url(control.url + start)


def test_login_refuses_a_wrong_token_then_shows_the_model(
    page: Page, control: RunningServer, screenshots: Path
) -> None:
    """Without a cookie the model page sends us to log in; a wrong token gets a message; the
    right one comes back to the model: lineage, variants, runs and training curves."""
    seed(control.registry)
    page.goto(control.url + "/ui/models/digits")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui%2Fmodels%2Fdigits$"))
    page.screenshot(path=screenshots / "login.png")
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    expect(page.locator("#message")).to_contain_text("That token is not right")
    page.fill("#token", control.token)
    page.click("button[type=submit]")
    expect(page).to_have_url(control.url + "/ui/models/digits")
    lineage = page.locator("[data-testid=lineage]")
    expect(lineage.locator("[data-version='2']")).to_contain_text("onnx-int8")
    expect(lineage.locator("[data-version='1']")).to_contain_text("production")
    expect(lineage.locator("[data-version='1']")).to_contain_text("digits")  # serving on
    expect(page.locator("[data-testid=runs] tbody tr")).to_have_count(2)
    for curve in ("train_loss", "val_accuracy"):
        plot = page.locator(f"[data-testid=curve-{curve}] svg")
        expect(plot).to_have_attribute("data-points", "14")  # 6 + 8 steps of two runs
        expect(plot.locator("path.series")).to_have_count(2)
    page.locator("[data-testid=runs] tbody tr").first.click()  # one run fewer on the curves
    expect(page.locator("[data-testid=curve-train_loss] svg path.series")).to_have_count(1)
    page.locator("[data-testid=runs] tbody tr").first.click()
    page.screenshot(path=screenshots / "model.png", full_page=True)
    assert control.token not in page.content()


def test_overview_and_scale_from_the_endpoint_page(
    page: Page, control: RunningServer, screenshots: Path
) -> None:
    seed(control.registry)
    log_in(page, control)
    card = page.locator("[data-testid=endpoint-card][data-endpoint=digits]")
    expect(card).to_contain_text("v1 100%")
    page.screenshot(path=screenshots / "overview-no-replicas.png", full_page=True)
    card.locator("a.name").click()
    expect(page).to_have_url(control.url + "/ui/endpoints/digits")
    expect(page.locator("[data-testid=variants] tbody tr")).to_have_count(1)
    expect(page.locator("[data-testid=variants] tbody tr")).to_contain_text("92%")  # offline
    page.click("[data-action=scale]")
    page.fill("input[name=replicas]", "3")
    page.click("[data-testid=confirm]")
    expect(page.locator(".toast")).to_contain_text("digits scaled: 3 replicas")
    spec = control.registry.deployments.get("digits").spec
    assert spec.variants[0].replicas == 3
    events = control.registry.list_events(limit=5)
    assert events[-1].action == "deployment.updated"
    assert events[-1].actor == "api"


def test_a_forged_cross_site_post_is_refused_and_changes_nothing(
    page: Page, control: RunningServer
) -> None:
    """S7 in a real browser: logged in, the user visits another site whose page posts to the
    control plane, by a form and by fetch. Both are refused; the deployment stays as it was."""
    seed(control.registry)
    log_in(page, control)
    before = control.registry.deployments.get("digits").generation
    target = control.url + "/api/v1/deployments/digits/scale"
    evil = f"""<!doctype html><html><body>
      <form id="f" method="post" action="{target}" enctype="text/plain">
        <input name='{{"replicas": 9, "x": "' value='"}}'></form>
      <script>
        fetch("{target}", {{method: "POST", credentials: "include", mode: "no-cors",
          headers: {{"Content-Type": "text/plain"}}, body: '{{"replicas": 9}}'}})
          .catch(() => null).finally(() => document.getElementById("f").submit());
      </script></body></html>"""
    page.route(
        "http://evil.example/**", lambda route: route.fulfill(body=evil, content_type="text/html")
    )
    with page.expect_response(lambda r: r.url == target and r.request.method == "POST") as posted:
        page.goto("http://evil.example/win-a-prize")
    assert posted.value.status == 403
    expect(page.locator("body")).to_contain_text("cross-origin request refused")
    assert control.registry.deployments.get("digits").generation == before
    assert control.registry.deployments.get("digits").spec.variants[0].replicas == 1


def test_logout_ends_the_session_in_the_browser(page: Page, control: RunningServer) -> None:
    log_in(page, control, "/ui/events")
    expect(page.locator("[data-testid=events]")).to_be_visible()
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    assert not [c for c in page.context.cookies() if c["name"] == "ferryman_session"]
    page.goto(control.url + "/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui%2F$"))


def test_the_session_cookie_is_invisible_to_scripts(page: Page, control: RunningServer) -> None:
    log_in(page, control)
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "ferryman_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    assert page.evaluate("document.cookie") == ""


def test_pause_resume_promote_and_undo_from_the_rollout_card(
    page: Page, control: RunningServer, screenshots: Path
) -> None:
    """Every button of a rollout, each through the API with the session's CSRF token and
    each seen in the registry (no control loop runs here, so nothing moves by itself)."""
    seed(control.registry)
    started = httpx.post(
        control.url + "/api/v1/rollouts",
        json={"endpoint": "digits", "version": 2},
        headers={"authorization": f"Bearer {control.token}"},
    )
    assert started.status_code == 201, started.text
    rollout_id = started.json()["id"]
    log_in(page, control, f"/ui/rollouts/{rollout_id}")
    card = page.locator(f"[data-testid=rollout][data-rollout='{rollout_id}']")

    def press(action: str, status: str) -> None:
        card.locator(f"[data-action={action}]").click()
        page.click("[data-testid=confirm]")
        expect(card).to_have_attribute("data-status", status)
        assert control.registry.rollouts.get(rollout_id).status.value == status

    press("pause", "paused")
    press("resume", "progressing")
    press("promote", "promoted")
    assert control.registry.get_model("digits").aliases["production"] == 2
    expect(page.locator("[data-testid=timeline] li[data-action=promoted]")).to_be_visible()
    page.screenshot(path=screenshots / "rollout-promoted.png", full_page=True)
    press("rollback", "rolled_back")  # undo the promotion
    assert control.registry.get_model("digits").aliases["production"] == 1
    spec = control.registry.deployments.get("digits").spec
    assert [(v.version, v.weight) for v in spec.variants] == [(1, 100)]


def test_abort_asks_first_and_cancel_changes_nothing(page: Page, control: RunningServer) -> None:
    seed(control.registry)
    started = httpx.post(
        control.url + "/api/v1/rollouts",
        json={"endpoint": "digits", "version": 2},
        headers={"authorization": f"Bearer {control.token}"},
    )
    rollout_id = started.json()["id"]
    log_in(page, control, "/ui/endpoints/digits")
    card = page.locator(f"[data-testid=rollout][data-rollout='{rollout_id}']")
    card.locator("[data-action=abort]").click()
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("[role=dialog]")).to_have_count(0)
    assert control.registry.rollouts.get(rollout_id).status.value == "progressing"
    card.locator("[data-action=abort]").click()
    page.click("[data-testid=confirm]")
    expect(card).to_have_attribute("data-status", "aborted")
    assert control.registry.rollouts.get(rollout_id).status.value == "aborted"


def _monitor_records(registry: Registry) -> None:
    """What the monitor would have written for ``digits`` v1: five minutes of samples every
    10 s, an alert still firing and one resolved."""
    now = time.time()
    values = {"p99_ms": 12.0, "p50_ms": 3.0, "error_rate": 0.0, "client_error_rate": 0.25,
              "weight": 100.0, "replicas": 1.0, "replicas_desired": 1.0}  # fmt: skip
    samples = [
        MetricSample(
            time_s=now - age_s,
            endpoint="digits",
            variant="v1",
            values={**values, "qps": 20 + age_s / 30},
        )
        for age_s in range(300, -1, -10)
    ]
    registry.history.add(samples, retention_s=3600)
    change = AlertChange(
        rule="p99_latency", level=AlertLevel.WARNING, endpoint="digits", variant="v1",
        value=12.0, threshold=10.0, message="digits v1: p99 12 ms > 10 ms for 1 min",
    )  # fmt: skip
    old = change.model_copy(update={"rule": "error_rate", "level": AlertLevel.CRITICAL,
                                     "message": "digits v1: 8% errors > 5%"})  # fmt: skip
    registry.alerts.record([old], [], "monitor")
    registry.alerts.record([], [old], "monitor")
    registry.alerts.record([change], [], "monitor")


def test_the_monitors_figures_alerts_and_charts(
    page: Page, control: RunningServer, screenshots: Path
) -> None:
    """The overview and the endpoint page read the monitor's records as it writes them."""
    seed(control.registry)
    _monitor_records(control.registry)
    log_in(page, control)
    banner = page.locator("[data-testid=alerts-firing]")
    expect(banner).to_contain_text("1 alert firing")
    expect(banner).to_contain_text("digits v1: p99 12 ms > 10 ms for 1 min")
    card = page.locator("[data-testid=endpoint-card][data-endpoint=digits]")
    expect(card).to_contain_text("1 alert")
    expect(card.locator("[data-testid=qps-chart] svg")).to_have_attribute("data-points", "31")
    expect(card.locator("[data-testid=qps-chart] .legend")).to_contain_text("v1 20")
    expect(card.locator(".stats")).to_contain_text("12.0ms")  # the newest p99
    page.screenshot(path=screenshots / "overview-alert.png", full_page=True)
    card.locator("a.name").click()
    variants = page.locator("[data-testid=variants]")
    expect(variants.locator("thead")).to_contain_text("4xx5xx")  # refused and failed apart
    expect(variants.locator("tbody tr").first).to_contain_text("25%0%")
    expect(page.locator("[data-testid=chart-client_error_rate] svg")).to_have_attribute(
        "data-points", "31"
    )
    alerts = page.locator("[data-testid=alerts] tbody tr")
    expect(alerts).to_have_count(2)
    expect(alerts.first).to_contain_text("warning")
    expect(alerts.nth(1)).to_contain_text("resolved")
    latency = page.locator("[data-testid=chart-p99_ms] svg")
    expect(latency.locator("path.series")).to_have_count(2)  # p99 and the dashed p50
    expect(page.locator("[data-testid=chart-replicas] svg")).to_have_attribute("data-points", "62")
    # the last day comes in 240 s steps: 5 minutes of samples make 2 or 3 points a series
    page.get_by_role("button", name="24 h").click()
    replicas = page.locator("[data-testid=chart-replicas] svg")
    expect(replicas).to_have_attribute("data-points", re.compile(r"^[46]$"))
