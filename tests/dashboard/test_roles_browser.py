"""Scoped tokens in real headless Chromium: a viewer logs in, reads, and sees no button
that would change anything; an operator sees them (issue 14)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from ferryman.registry import TokenRole
from tests.control.api.conftest import RunningServer
from tests.dashboard.conftest import seed


def log_in_with(page: Page, control: RunningServer, token: str) -> None:
    page.goto(control.url + "/ui/endpoints/digits")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.fill("#token", token)
    page.click("button[type=submit]")
    expect(page).to_have_url(control.url + "/ui/endpoints/digits")


def test_a_viewer_sees_no_actions_and_an_operator_does(
    page: Page, control: RunningServer, screenshots: Path
) -> None:
    seed(control.registry)
    viewer = control.registry.tokens.create("watcher", TokenRole.VIEWER, "test").token
    operator = control.registry.tokens.create("oncall", TokenRole.OPERATOR, "test").token

    log_in_with(page, control, viewer)
    expect(page.locator("[data-testid=variants] tbody tr")).to_have_count(1)
    expect(page.locator("[data-action=scale]")).to_be_hidden()
    expect(page.locator("#logout")).to_be_visible()
    page.screenshot(path=screenshots / "endpoint-viewer.png", full_page=True)
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/ui/login"))

    log_in_with(page, control, operator)
    expect(page.locator("[data-action=scale]")).to_be_visible()
