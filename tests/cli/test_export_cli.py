"""``ferryman export prometheus|grafana``: what it writes passes Prometheus' own checks, and
every metric it names is one Ferryman really exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ferryman.control.exports.prometheus import alert_name
from ferryman.control.monitor.alerts import DEFAULT_RULES
from ferryman.control.monitor.exposition import exposition
from ferryman.gateway.metrics import GatewayMetrics
from ferryman.registry import SERIES, MetricSample
from ferryman.serving.metrics import ReplicaIdentity, ReplicaMetrics

Run = Callable[..., tuple[int, str, str]]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="PROMTOOL MISSING: the Prometheus exports are NOT checked; install Debian "
    "'prometheus' (scripts/system-deps.sh does)",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip


def exported(run: Run, tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "prom"
    code, stdout, stderr = run("--data-dir", str(tmp_path / "data"), "export", "prometheus",
                               str(out), *extra)  # fmt: skip
    assert code == 0, stderr
    assert "promtool check config" in stdout
    return out


@needs_promtool
def test_promtool_accepts_the_config_and_the_rules(run: Run, tmp_path: Path) -> None:
    run("--data-dir", str(tmp_path / "data"), "alerts", "set-rule", "digits-slow", "--series",
        "p99_ms", "--above", "500", "--for", "90", "--endpoint", "digits")  # fmt: skip
    run("--data-dir", str(tmp_path / "data"), "alerts", "set-rule", "accuracy", "--series",
        "accuracy", "--below", "0.9", "--disable")  # fmt: skip
    out = exported(run, tmp_path, "--scrape-interval", "1")
    config = promtool("check", "config", str(out / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    assert "SUCCESS" in config.stdout
    checked = promtool("check", "rules", str(out / "ferryman-rules.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "5 rules found" in checked.stdout  # 5 defaults - accuracy disabled + digits-slow
    rules = (out / "ferryman-rules.yml").read_text()
    assert "FerrymanDigitsSlow" in rules
    assert '{endpoint=\\"digits\\"}' in rules
    assert "FerrymanAccuracy" not in rules
    text = (out / "prometheus.yml").read_text()
    assert 'scrape_interval: "1s"' in text
    assert str((tmp_path / "data" / "control-token").absolute()) in text
    assert (tmp_path / "data" / "prometheus-targets.json").read_text() == "[]\n"


def _input(series: str, values: str) -> dict[str, str]:
    return {"series": series, "values": values}


@needs_promtool
def test_the_rules_fire_as_ferrymans_own_alerts_do(run: Run, tmp_path: Path) -> None:
    """``promtool test rules`` over synthetic series: each default fires on what breaks it
    (p99 only after 2 minutes), and not on what does not."""
    out = exported(run, tmp_path)
    v2 = 'endpoint="digits",variant="v2"'
    bucket = "ferryman_gateway_request_duration_seconds_bucket"
    series = [
        _input(f'{bucket}{{{v2},le="0.25"}}', "0+0x40"),  # every answer in 250-500 ms
        _input(f'{bucket}{{{v2},le="0.5"}}', "0+10x40"),
        _input(f'{bucket}{{{v2},le="+Inf"}}', "0+10x40"),
        _input(f'ferryman_gateway_requests_total{{{v2},code="2xx"}}', "0+10x40"),
        _input(f'ferryman_gateway_requests_total{{{v2},code="5xx"}}', "0+1x40"),  # 1 in 11
        _input(f"ferryman_variant_input_drift_psi{{{v2}}}", "0.3x40"),
        _input(f"ferryman_variant_accuracy{{{v2}}}", "0.8x40"),
        _input('ferryman_variant_accuracy{endpoint="digits",variant="v1"}', "0.95x40"),
        _input(f"ferryman_variant_restarts_10m{{{v2}}}", "4x40"),
    ]
    values = {"p99_ms": "497.5", "error_rate": "0.09091", "input_drift_psi": "0.3",
              "accuracy": "0.8", "restarts_10m": "4"}  # fmt: skip
    checks: list[dict[str, object]] = [
        {"eval_time": "2m", "alertname": "FerrymanP99Latency", "exp_alerts": []}
    ]
    for rule in DEFAULT_RULES:
        bound = f"{rule.comparison} {rule.threshold:g}"
        expected = {
            "exp_labels": {"severity": rule.level.value, "rule": rule.name,
                           "endpoint": "digits", "variant": "v2"},
            "exp_annotations": {
                "summary": rule.description,
                "description": f"digits/v2: {rule.series} is {values[rule.series]} ({bound})",
            },
        }  # fmt: skip
        checks.append({"eval_time": "4m", "alertname": alert_name(rule.name),
                       "exp_alerts": [expected]})  # fmt: skip
    case = {"interval": "15s", "input_series": series, "alert_rule_test": checks}
    test = {"rule_files": ["ferryman-rules.yml"], "evaluation_interval": "15s", "tests": [case]}
    (out / "rules-test.yml").write_text(json.dumps(test))  # JSON is YAML
    result = promtool("test", "rules", str(out / "rules-test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def exposed_names() -> set[str]:
    """Every sample name the gateway, a replica and the control plane expose."""
    gateway = GatewayMetrics()
    gateway.answered("e", "v1", 200, 0.01)
    replica = ReplicaMetrics(ReplicaIdentity("m", "1", "onnx-fp32"))
    replica.prediction_counters(2)
    replica.count_request(200, 0.01)
    control = exposition(
        {("e", "v1"): MetricSample(time_s=0, endpoint="e", variant="v1",
                                   values=dict.fromkeys(SERIES, 1.0))},
        [], now_s=0, max_age_s=30,
    )  # fmt: skip
    texts = [gateway.exposition().decode(), replica.render().decode(), control.decode()]
    return {line.split("{")[0].split(" ")[0] for text in texts for line in text.splitlines()
            if line and not line.startswith("#")}  # fmt: skip


def metric_names_in(text: str) -> set[str]:
    return set(re.findall(r"\bferryman_[a-z0-9_]+", text)) - {"ferryman_rules"}


def test_the_rules_name_only_metrics_ferryman_exposes(run: Run, tmp_path: Path) -> None:
    out = exported(run, tmp_path)
    named = metric_names_in((out / "ferryman-rules.yml").read_text())
    assert named
    assert named <= exposed_names()


def test_the_grafana_dashboard_has_its_panels_on_real_metrics(run: Run, tmp_path: Path) -> None:
    code, _, stderr = run("export", "grafana", str(tmp_path / "grafana"))
    assert code == 0, stderr
    board = json.loads((tmp_path / "grafana" / "ferryman-dashboard.json").read_text())
    assert board["uid"] == "ferryman"
    assert isinstance(board["schemaVersion"], int)
    titles = [panel["title"] for panel in board["panels"]]
    for needed in ("Traffic split", "QPS", "Latency", "Errors", "Replicas", "Drift", "Quality"):
        assert any(title.startswith(needed) for title in titles), needed
    ids = [panel["id"] for panel in board["panels"]]
    assert len(set(ids)) == len(ids)
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        covered = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                   for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
        assert panel["type"] == "timeseries"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids)
        for target in panel["targets"]:
            assert metric_names_in(target["expr"]) <= exposed_names(), target["expr"]
            assert "$endpoint" in target["expr"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert "label_values(ferryman_gateway_requests_total, endpoint)" in json.dumps(
        variables["endpoint"]
    )


def test_a_bad_directory_or_interval_is_one_line(run: Run, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, stderr = run("--data-dir", str(tmp_path / "d"), "export", "grafana", str(blocker))
    assert code == 1
    assert stderr.startswith("error: cannot write into")
    code, _, stderr = run("--data-dir", str(tmp_path / "d"), "export", "prometheus",
                          str(tmp_path / "p"), "--scrape-interval", "0")  # fmt: skip
    assert code == 1
    assert "--scrape-interval 0" in stderr
