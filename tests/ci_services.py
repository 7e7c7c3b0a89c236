"""A pytest plugin (loaded by tests/conftest.py): with ``CI=true``, a test skipped for lack
of PostgreSQL, Redis or root fails instead, so CI never passes on a weaker suite.

Locally those tests still skip, with a loud reason; ``.ci/run`` starts the servers first.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

MISSING_SERVICE = (
    "NO POSTGRESQL", "no Redis", "needs root",
    # the Debian programs scripts/system-deps.sh installs before every run
    "NO CHROMIUM", "NO libfaketime", "PROMETHEUS MISSING", "PROMTOOL MISSING",
    "slowhttptest is not installed", "WRK MISSING",
)  # fmt: skip
"""Words in the skip reasons of tests that need a service or program CI must have."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or os.environ.get("CI", "").lower() != "true":
        return
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(words in reason for words in MISSING_SERVICE):
        report.outcome = "failed"
        report.longrepr = f"CI=true and a service is missing, so this fails: {reason}"
