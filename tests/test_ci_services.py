"""With CI=true a test skipped for lack of PostgreSQL, Redis, root or a Debian program that
scripts/system-deps.sh installs fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SKIPPING = """
import pytest

def test_needs_postgres():
    pytest.skip("NO POSTGRESQL at postgresql://127.0.0.1:5432/test - NOT tested")

def test_needs_a_browser():
    pytest.skip("NO CHROMIUM at /usr/bin/chromium - the dashboard is NOT tested in a browser")

def test_is_slow():
    pytest.skip("a soak test: run it with -m soak")
"""


@pytest.mark.parametrize(("ci", "code", "summary"), [
    ("true", 1, "2 failed, 1 skipped"),
    ("", 0, "3 skipped"),
])  # fmt: skip
def test_a_missing_service_fails_under_ci_and_skips_elsewhere(
    tmp_path: Path, ci: str, code: int, summary: str
) -> None:
    test_file = tmp_path / "test_skipping.py"
    test_file.write_text(SKIPPING)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.ci_services", "-p", "no:cacheprovider",
         "-p", "no:xdist", "--rootdir", str(tmp_path), "-c", os.devnull, str(test_file)],
        cwd=ROOT, env={**os.environ, "CI": ci}, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == code, done.stdout + done.stderr
    assert summary in done.stdout, done.stdout
