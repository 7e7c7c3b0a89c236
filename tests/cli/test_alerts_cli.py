"""``ferryman alerts`` over a real SQLite registry: alerts, rules and webhooks from the shell."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ferryman.config import load_settings
from ferryman.registry import AlertChange, AlertLevel, Registry

Run = Callable[..., tuple[int, str, str]]


def test_alerts_firing_and_all(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("alerts")
    assert (code, out.strip()) == (0, "Alerts firing: none")
    registry = Registry.open(load_settings(data_dir=tmp_path / "ferryman-data"))
    change = AlertChange(
        rule="accuracy", level=AlertLevel.CRITICAL, endpoint="digits", variant="v2",
        value=0.7, threshold=0.9, message="accuracy low",
    )  # fmt: skip
    registry.alerts.record([change], [], "monitor")
    registry.alerts.record([change.model_copy(update={"endpoint": "fraud"})], [], "monitor")
    registry.alerts.record([], [change.model_copy(update={"message": "back"})], "monitor")
    registry.close()
    code, out, _ = run("alerts", "list")
    assert "fraud/v2" in out
    assert "digits/v2" not in out
    code, out, _ = run("alerts", "list", "--all", "--json")
    assert [(a["endpoint"], a["state"]) for a in json.loads(out)] == [
        ("fraud", "firing"), ("digits", "resolved"),
    ]  # fmt: skip
    code, out, _ = run("alerts", "list", "--all", "--endpoint", "digits")
    assert "back" in out
    assert "fraud" not in out


def test_rules_set_override_and_remove(run: Run) -> None:
    code, out, _ = run("alerts", "rules")
    assert code == 0
    for name in ("p99-latency", "error-rate", "input-drift", "accuracy", "replica-restarts"):
        assert name in out
    assert "p99_ms > 200" in out
    code, out, err = run("alerts", "set-rule", "slow", "--series", "p99_ms", "--above", "500",
                         "--for", "60", "--level", "critical", "--endpoint", "digits")  # fmt: skip
    assert code == 0, err
    assert "slow" in out
    assert run("alerts", "set-rule", "accuracy", "--series", "accuracy", "--below", "0.8",
               "--min-samples", "100")[0] == 0  # fmt: skip
    rules = {r["name"]: r for r in json.loads(run("alerts", "rules", "--json")[1])}
    assert (rules["accuracy"]["min_samples"], rules["input-drift"]["min_samples"]) == (100, 200)
    assert (rules["slow"]["threshold"], rules["slow"]["level"], rules["slow"]["default"]) == (
        500, "critical", False,
    )  # fmt: skip
    assert (rules["accuracy"]["threshold"], rules["accuracy"]["overridden"]) == (0.8, True)
    assert run("alerts", "remove-rule", "accuracy")[0] == 0  # the default is back
    rules = {r["name"]: r for r in json.loads(run("alerts", "rules", "--json")[1])}
    assert (rules["accuracy"]["threshold"], rules["accuracy"]["min_samples"]) == (0.9, 50)
    code, _, err = run("alerts", "remove-rule", "accuracy")
    assert code == 1
    assert "cannot be removed; disable it" in err
    code, _, err = run("alerts", "set-rule", "x", "--series", "latency", "--above", "1")
    assert code == 1
    assert "use one of: qps" in err
    code, _, err = run("alerts", "set-rule", "x", "--series", "qps")
    assert code == 1
    assert "exactly one of --above" in err


def test_webhooks_take_the_secret_from_a_file_and_never_show_it(run: Run, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("canary-secret-0123456789\n")
    code, out, err = run("alerts", "set-webhook", "ops", "https://hooks.example.com/x",
                         "--secret-file", str(secret))  # fmt: skip
    assert code == 0, err
    code, out, _ = run("alerts", "webhooks")
    assert "https://hooks.example.com/x" in out
    assert run("alerts", "set-webhook", "ops", "https://hooks.example.com/y",
               "--keep-secret")[0] == 0  # fmt: skip
    code, out, _ = run("alerts", "webhooks", "--json")
    assert [w["url"] for w in json.loads(out)] == ["https://hooks.example.com/y"]
    assert "canary-secret" not in out + run("events", "--limit", "20")[1]
    code, _, err = run("alerts", "set-webhook", "new", "ftp://x/y", "--secret-file", str(secret))
    assert code == 1
    assert "http:// or https://" in err
    assert run("alerts", "remove-webhook", "ops")[0] == 0
    assert run("alerts", "remove-webhook", "ops")[0] == 1
