"""Fixtures of the dashboard tests: a real control plane, seeded data and headless Chromium.

The browser is Debian's Chromium driven by Playwright (never ``playwright install``); tests
that need it are skipped, loudly, where /usr/bin/chromium is missing (scripts/system-deps.sh
installs it). Screenshots go to ``$FERRYMAN_SCREENSHOTS_DIR`` or a temporary directory; the
path is printed in the test summary.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ferryman.config import load_settings
from ferryman.registry import (
    DeploymentSpec,
    Registry,
    RunStatus,
    VariantSpec,
    VariantStatus,
    build_metadata,
)
from tests.conftest import make_onnx
from tests.control.api.conftest import RunningServer, start_server

CHROMIUM = Path("/usr/bin/chromium")
DASHBOARD_ORIGIN = "http://127.0.0.1:"  # every control plane of these tests
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def control(tmp_path: Path) -> Iterator[RunningServer]:
    server, thread, running = start_server(load_settings(data_dir=tmp_path / "data"))
    yield running
    server.should_exit = True
    thread.join(timeout=10)
    running.registry.close()


@contextmanager
def log_in(url: str, token: str) -> Iterator[httpx.Client]:
    """An HTTP client holding a dashboard session cookie, as a browser would."""
    with httpx.Client(base_url=url, follow_redirects=False) as client:
        answer = client.post("/ui/login", data={"token": token})
        assert answer.status_code == 303, answer.text
        yield client


def csrf_of(client: httpx.Client) -> str:
    """The CSRF token the dashboard page hands its JavaScript."""
    page = client.get("/ui/").text
    found = re.search(r'name="ferryman-csrf" content="([^"]*)"', page)
    assert found is not None
    return found.group(1)


def seed(registry: Registry) -> None:
    """Model ``digits``: two runs with training curves, v1 and v2 with gated variants, v1 in
    production and deployed on endpoint ``digits``."""
    for number, (epochs, slope) in enumerate([(6, 0.8), (8, 1.0)], start=1):
        run = registry.runs.create("digits", "test", model="digits", params={"epochs": epochs})
        for step in range(1, epochs + 1):
            loss = 2.3 / (1 + slope * step)
            registry.runs.log_metrics(
                run.id, step, {"train_loss": loss, "val_accuracy": 0.99 - loss / 4}
            )
        registry.runs.finish(run.id, RunStatus.SUCCEEDED, "test")
        version = registry.register(
            "digits",
            make_onnx(seed_value=float(number)),
            "test",
            build_metadata(metrics={"accuracy": 0.9 + number / 50}, parent_run=run.id),
        )
        for kind, accuracy in (("onnx-fp32", 0.93 + number / 100), ("onnx-int8", 0.925)):
            gate = {
                "kind": kind, "accuracy": accuracy, "baseline_accuracy": 0.93 + number / 100,
                "max_abs_diff": 1e-6, "size_bytes": 1000, "latency_ms_b1": 0.12,
                "latency_ms_b32": 0.9, "passed": True, "reason": "within 1 pp of fp32",
            }  # fmt: skip
            registry.add_variant(
                "digits", version.version, kind, make_onnx(seed_value=number + 0.5), "test",
                gate=gate, status=VariantStatus.PASSED,
            )  # fmt: skip
    registry.set_alias("digits", "production", 1, "test")
    spec = DeploymentSpec(endpoint="digits", variants=(VariantSpec(model="digits", version=1),))
    registry.deployments.put(spec, "test")


@pytest.fixture(scope="session")
def screenshots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("FERRYMAN_SCREENSHOTS_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"dashboard screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module. Playwright's sync API holds an asyncio loop as the
    main thread's running loop while it is open, which breaks every later test that runs
    an event loop of its own (anyio's); a module scope closes it before other tests run."""
    if not CHROMIUM.exists():
        pytest.skip(f"NO CHROMIUM at {CHROMIUM} - the dashboard is NOT tested in a browser")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    opened = context.new_page()
    errors: list[tuple[str, str]] = []
    opened.on("pageerror", lambda error: errors.append((opened.url, str(error))))
    opened.on(
        "console", lambda m: errors.append((opened.url, m.text)) if m.type == "error" else None
    )
    yield opened
    context.close()
    # A refused request (401 wrong token, 403 forged) is logged by the browser itself and
    # checked by the tests, and a forging test's own page may fail; what must never appear
    # is an error of the dashboard's code.
    own = [
        text
        for url, text in errors
        if url.startswith(DASHBOARD_ORIGIN) and not text.startswith("Failed to load resource")
    ]
    assert own == [], f"the dashboard's JavaScript failed: {own}"
