"""``ferryman export kubernetes DIR``: the registry's deployments become the replicas."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

Run = Callable[..., tuple[int, str, str]]
KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="KUBECTL MISSING: the export is NOT built")
def test_export_renders_the_deployed_endpoint(
    run: Run, tmp_path: Path, onnx_bytes: Callable[..., bytes]
) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    (tmp_path / "m.onnx").write_bytes(onnx_bytes())
    assert run(*data, "register", str(tmp_path / "m.onnx"), "--model", "m")[0] == 0
    code, _, err = run(*data, "deploy", "m:1", "--endpoint", "shop", "--min", "1", "--max", "5")
    assert code == 0, err
    out = tmp_path / "k8s"
    image = "registry.example.com/ferryman:0.1.0"
    code, stdout, err = run(*data, "export", "kubernetes", str(out), "--image", image,
                            "--route", "httproute", "--pod-network", "10.244.0.0/16",
                            "--pod-network", "fd00:10::/56")  # fmt: skip
    assert code == 0, err
    assert "kubectl apply -k" in stdout
    assert KUBECTL is not None
    built = subprocess.run([KUBECTL, "kustomize", str(out / "overlays" / "deployments")],
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert built.returncode == 0, built.stderr
    items = [item for item in yaml.safe_load_all(built.stdout) if item]
    scaler = next(o for o in items if o["kind"] == "HorizontalPodAutoscaler"
                  and o["metadata"]["name"] == "ferryman-shop-v1")  # fmt: skip
    assert (scaler["spec"]["minReplicas"], scaler["spec"]["maxReplicas"]) == (1, 5)
    assert "HTTPRoute" in {o["kind"] for o in items}
    # The KubeRay flavour's gateways accept replicas on the cluster's pod networks only.
    patch = yaml.safe_load((out / "overlays" / "kuberay" / "control-plane-ray.yaml").read_text())
    env = {e["name"]: e["value"] for e in patch["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FERRYMAN_GATEWAY__BACKEND_HOSTS"] == '["10.244.0.0/16", "fd00:10::/56"]'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image", "ferryman:latest"], "'latest' moves under running pods"),
        (["--image", "ferryman"], "has no tag"),
        (["--namespace", "Bad_NS"], "namespace 'Bad_NS' is not allowed"),
        (["--host", "ml.example.com/x"], "host 'ml.example.com/x' is not a DNS name"),
        (["--pod-network", "10.244.0.0/33"], "pod network '10.244.0.0/33' is not a network"),
    ],
)
def test_export_refuses_bad_values_with_the_fix(
    run: Run, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "k8s"
    code, _, err = run("--data-dir", str(tmp_path / "data"), "export", "kubernetes", str(out),
                       *args)  # fmt: skip
    assert code == 1
    assert message in err
    assert not out.exists()
