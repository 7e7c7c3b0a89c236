"""Supply-chain checks of scripts/test: bandit over src/, pip-audit over the installed environment.

- ``bandit -lll -r src``: no issue of high severity (exit 1 otherwise).
- ``pip-audit``: no known vulnerability that has a fixed version (exit 1 otherwise; those
  without a fix are listed). pip-audit needs a vulnerability database: PyPI's per-release
  JSON (``/pypi/NAME/VERSION/json``, its ``vulnerabilities``) or OSV (api.osv.dev). When
  neither answers — a mirror that serves packages but not that API, or no network — the
  audit is SKIPPED with a loud message saying which service failed, and only then; any
  other pip-audit failure fails the step.

    .venv/bin/python scripts/supply-chain.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from importlib.metadata import version
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 20


def main() -> int:
    return bandit() or pip_audit()


def bandit() -> int:
    found = subprocess.run([BIN / "bandit", "-lll", "-q", "-r", ROOT / "src"], check=False)
    print("bandit -lll src/:", "0 issues" if found.returncode == 0 else "ISSUES (above)")
    return found.returncode


def pip_audit() -> int:
    service = reachable_service()
    if service is None:
        return 0
    command = [BIN / "pip-audit", "--skip-editable", "--progress-spinner", "off",
               "--format", "json", "--vulnerability-service", service]  # fmt: skip
    audit = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        report = json.loads(audit.stdout)
    except ValueError:
        print(audit.stdout, audit.stderr, sep="\n")
        print("pip-audit failed without a report (above)")
        return 1
    audited = [d for d in report["dependencies"] if "skip_reason" not in d]
    fixable, unfixed = [], []
    for dependency in audited:
        for vulnerability in dependency["vulns"]:
            entry = f"{dependency['name']} {dependency['version']}: {vulnerability['id']}"
            if vulnerability["fix_versions"]:
                fixable.append(f"{entry} (fixed in {', '.join(vulnerability['fix_versions'])})")
            else:
                unfixed.append(entry)
    for entry in unfixed:
        print(f"pip-audit: known, no fix yet: {entry}")
    for entry in fixable:
        print(f"pip-audit: KNOWN VULNERABILITY WITH A FIX: {entry}")
    print(f"pip-audit ({service}): {len(audited)} packages audited, {len(fixable)} fixable "
          f"vulnerabilities, {len(unfixed)} without a fix")  # fmt: skip
    return 1 if fixable else 0


def reachable_service() -> str | None:
    """The vulnerability service that answers, PyPI's first; None (and a loud note) if none."""
    probe = f"https://pypi.org/pypi/pip/{version('pip')}/json"
    try:
        with urllib.request.urlopen(probe, timeout=TIMEOUT_S) as answer:  # noqa: S310
            if "vulnerabilities" in json.load(answer):
                return "pypi"
            pypi = "answered without a vulnerabilities field"
    except (OSError, ValueError) as exc:
        pypi = f"{type(exc).__name__}: {exc}"
    query = json.dumps({"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "20.0"})
    request = urllib.request.Request(  # noqa: S310 - a fixed https URL
        "https://api.osv.dev/v1/query", data=query.encode(),
        headers={"content-type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:  # noqa: S310
            if "vulns" in json.load(answer):
                return "osv"
            osv = "answered without vulns"
    except (OSError, ValueError) as exc:
        osv = f"{type(exc).__name__}: {exc}"
    banner = "!" * 78
    print(f"{banner}\npip-audit SKIPPED: no vulnerability database can be reached from here.\n"
          f"  PyPI ({probe}): {pypi}\n  OSV (https://api.osv.dev): {osv}\n"
          f"Nothing was audited; run scripts/test where one of them answers.\n{banner}")  # fmt: skip
    return None


if __name__ == "__main__":
    sys.exit(main())
