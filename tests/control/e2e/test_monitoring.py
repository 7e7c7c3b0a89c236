"""The monitor in a live Ferryman, and a real Prometheus scraping it.

``ferryman up`` runs with a 1 s monitor interval; a replica serves endpoint ``m`` through
the gateway. The API then shows the endpoint's live status and history from the control
loop's own samples, and ``prometheus`` (the Debian binary) — started on a free port with
the config ``ferryman export prometheus`` writes — scrapes the gateway, the replica (found
through the file_sd JSON the loop keeps) and the control plane (with its token), and
answers queries on all three; the rollout controller's Prometheus traffic source reads the
same totals through it as a direct scrape of the gateway gives.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ferryman.control.metrics.promql import PrometheusTraffic
from ferryman.control.metrics.traffic import Traffic, traffic_by_variant
from ferryman.types import Slot
from tests.conftest import make_onnx
from tests.control.e2e.harness import BODY, Stack, wait_for
from tests.support import free_port

pytestmark = pytest.mark.e2e

PROMETHEUS = shutil.which("prometheus")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One live Ferryman for both tests (starting one takes most of their time)."""
    tmp_path = tmp_path_factory.mktemp("monitoring")
    model = tmp_path / "m.onnx"
    model.write_bytes(make_onnx())
    running = Stack(tmp_path / "data", extra_env={"FERRYMAN_CONTROL__MONITOR_INTERVAL_S": "1"})
    running.ferryman("register", str(model), "--model", "m")
    running.up()
    running.ferryman("deploy", "m")
    wait_for(lambda: len(running.ready_backends("m")) == 1, 60, "a ready replica")
    yield running
    running.down()


def api(stack: Stack, path: str, **params: str) -> httpx.Response:
    token = (stack.data_dir / "control-token").read_text().strip()
    return httpx.get(f"http://127.0.0.1:{stack.api_port}{path}", params=params,
                     headers={"authorization": f"Bearer {token}"}, timeout=5)  # fmt: skip


def serve_traffic(stack: Stack, requests: int = 20) -> None:
    with httpx.Client(timeout=5) as client:
        for _ in range(requests):
            assert (
                client.post(f"{stack.gateway}/v2/models/m/infer", content=BODY).status_code == 200
            )


def test_the_control_loop_samples_into_the_api(stack: Stack) -> None:
    def traffic_seen() -> bool:
        serve_traffic(stack, 5)
        [endpoint] = api(stack, "/api/v1/endpoints").json()
        variant = endpoint["variants"][0]
        return variant["replicas_ready"] == 1 and (variant["qps"] or 0) > 0

    wait_for(traffic_seen, 20, "a sample with traffic")
    [endpoint] = api(stack, "/api/v1/endpoints").json()
    assert endpoint["endpoint"] == "m"
    assert endpoint["alerts_firing"] == 0
    v1 = endpoint["variants"][0]
    assert (v1["name"], v1["weight"], v1["replicas_desired"]) == ("v1", 100, 1)
    assert v1["p99_ms"] is not None
    history = api(stack, "/api/v1/endpoints/m/history", since_s="60",
                  series="qps,replicas,rss_bytes,cpu_pct").json()  # fmt: skip
    assert history["resolution_s"] == 1
    found = {s["name"]: s["points"] for s in history["series"]}
    assert max(value for _, value in found["qps"]) > 0
    assert found["replicas"][-1][1] == 1
    assert found["rss_bytes"][-1][1] > 10e6  # a real process's resident memory

    # CPU is a rate: it needs two readings of the same process, so the first sample in which
    # a replica appears has its memory but no CPU yet (a loaded machine can make that sample
    # the first one with traffic). The next sample must carry it.
    def cpu_sampled() -> bool:
        history = api(stack, "/api/v1/endpoints/m/history", since_s="60",
                      series="cpu_pct").json()  # fmt: skip
        return any(s["name"] == "cpu_pct" and s["points"] for s in history["series"])

    wait_for(cpu_sampled, 10, "a CPU sample (CPU time from /proc)")


@pytest.mark.skipif(
    PROMETHEUS is None,
    reason="PROMETHEUS MISSING: the live scrape is NOT tested; install Debian 'prometheus'",
)
def test_a_real_prometheus_scrapes_ferryman(stack: Stack, tmp_path: Path) -> None:
    serve_traffic(stack)
    config_dir = tmp_path / "prometheus"
    stack.ferryman("export", "prometheus", str(config_dir), "--scrape-interval", "1")
    port = free_port()
    assert PROMETHEUS is not None
    server = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config_dir / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/v1/query"

    def query(expr: str) -> list[dict[str, object]]:
        try:
            answer = httpx.get(url, params={"query": expr}, timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return []
        return list(answer.get("data", {}).get("result", []))

    try:
        wait_for(lambda: bool(query('ferryman_gateway_requests_total{endpoint="m"}')), 30,
                 "Prometheus has the gateway's requests")  # fmt: skip
        [series] = query(
            'sum by (endpoint, variant) (ferryman_gateway_requests_total{endpoint="m"})'
        )
        assert series["metric"] == {"endpoint": "m", "variant": "v1"}
        assert float(series["value"][1]) >= 20  # type: ignore[index]
        wait_for(lambda: len(query('up{job=~"ferryman-.*"} == 1')) == 3, 30,
                 "all three jobs up (gateway, replica by file_sd, control plane)")  # fmt: skip
        [replica] = query('ferryman_requests_total{job="ferryman-replicas",code="200"}')
        labels = replica["metric"]
        assert (labels["endpoint"], labels["variant"], labels["model"]) == ("m", "v1", "m")  # type: ignore[index]
        wait_for(lambda: bool(query('ferryman_variant_replicas{endpoint="m"} == 1')), 30,
                 "the control plane's gauges")  # fmt: skip
        # control.prometheus_url: rollout analysis reads the same totals through Prometheus
        with httpx.Client(timeout=5) as http:
            through = PrometheusTraffic(f"http://127.0.0.1:{port}", http)

            def direct() -> dict[Slot, Traffic]:
                return traffic_by_variant(http.get(f"{stack.gateway}/metrics").text)

            wait_for(lambda: through() == direct(), 15, "Prometheus caught up with the gateway")
            traffic = through()
            assert traffic is not None
            assert traffic[("m", "v1")].requests >= 20
    finally:
        server.terminate()
        server.wait(timeout=10)
