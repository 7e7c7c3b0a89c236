"""The Containerfile, built and run for real: a replica in the image answers over HTTP.

No image registry is reachable here, so the base is made from Debian's packages with
``mmdebstrap`` and imported; ``buildah bud --isolation chroot`` builds the image on it, and
``buildah run --isolation chroot`` (host network; ``podman run`` cannot set rlimits on these
machines) runs ``ferryman serve`` of a tiny ONNX model, called on 127.0.0.1. The base image
is kept in the pytest cache and in buildah's storage, so a second run pays only the build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
# What the base needs to stand in for python:3.11-slim-bookworm: an interpreter with venv
# and CA certificates (pip fetches the dependencies in the builder stage).
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
MMDEBSTRAP = [
    "mmdebstrap", "--variant=minbase", f"--include={BASE_PACKAGES}",
    "--aptopt=APT::Install-Recommends false",
    "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*", "bookworm",
]  # fmt: skip
STARTUP_TIMEOUT_S = 60.0


def _run(*args: str, timeout_s: float = 600.0) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(args[:3])} … exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def _has_image(name: str) -> bool:
    found = subprocess.run(
        ["buildah", "inspect", "--type", "image", name], capture_output=True, check=False
    )
    return found.returncode == 0


@pytest.fixture(scope="module")
def base_image(request: pytest.FixtureRequest) -> str:
    """A Debian bookworm image with python3, made once and kept (pytest cache + storage)."""
    if os.geteuid() != 0:
        pytest.skip("NOT ROOT: the image is NOT built or run (buildah needs root here)")
    for tool in ("mmdebstrap", "buildah", "podman"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run scripts/system-deps.sh")
    recipe = hashlib.sha256(" ".join(MMDEBSTRAP).encode()).hexdigest()[:12]
    name = f"localhost/ferryman-test-base:bookworm-{recipe}"
    if _has_image(name):
        return name
    cache = request.config.cache
    assert cache is not None
    rootfs = cache.mkdir("ferryman-image") / f"rootfs-{recipe}.tar"
    if not rootfs.exists():
        partial = rootfs.with_suffix(".partial.tar")
        _run(*MMDEBSTRAP, str(partial))
        partial.rename(rootfs)
    _run("podman", "import", str(rootfs), name)
    return name


@pytest.fixture(scope="module")
def image(base_image: str) -> Iterator[str]:
    """The Containerfile built on the Debian base; removed afterwards (the base stays)."""
    name = f"localhost/ferryman-test:{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    # The host's CA store is mounted for the RUN steps only (pip behind a TLS-inspecting
    # proxy needs it); nothing of it lands in a layer.
    _run(
        "buildah", "bud", "--isolation", "chroot", "--layers=false",
        "--volume", "/etc/ssl/certs:/etc/ssl/certs:ro",
        "--build-arg", f"BASE={base_image}", "--tag", name,
        "--file", str(ROOT / "Containerfile"), str(ROOT),
    )  # fmt: skip
    size_bytes = json.loads(_run("podman", "image", "inspect", name))[0]["Size"]
    print(f"\nimage {name}: {size_bytes / 1e6:.0f} MB "
          f"(built in {time.monotonic() - started:.0f} s on {base_image})")  # fmt: skip
    try:
        yield name
    finally:
        subprocess.run(["buildah", "rmi", name], capture_output=True, check=False)


@pytest.fixture
def container(image: str) -> Iterator[str]:
    name = f"ferryman-test-{uuid.uuid4().hex[:12]}"
    _run("buildah", "from", "--name", name, image)
    try:
        yield name
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True, check=False)


def test_image_config_is_non_root_with_ferryman_entrypoint(image: str) -> None:
    config = json.loads(_run("buildah", "inspect", "--type", "image", image))["OCIv1"]["config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["ferryman"]


def test_runtime_stage_has_no_compiler_and_no_training_dependencies(
    container: str, tmp_path: Path
) -> None:
    # The answer goes through a mounted file: buildah run's stdout was once seen empty.
    probe = (
        "import importlib.util, shutil, json; json.dump("
        "[c for c in ('gcc', 'cc', 'c++', 'make') if shutil.which(c)] + "
        "[m for m in ('torch', 'sklearn', 'optuna', 'onnxruntime', 'fastapi', 'psycopg', "
        "'boto3') "
        "if importlib.util.find_spec(m)], open('/out/found.json', 'w'))"
    )
    tmp_path.chmod(0o777)
    _run("buildah", "run", "--isolation", "chroot", "--volume", f"{tmp_path}:/out", container,
         "--", "/opt/ferryman/bin/python", "-c", probe)  # fmt: skip
    found = json.loads((tmp_path / "found.json").read_text())
    # serving, control plane, PostgreSQL, artifacts on S3
    assert found == ["onnxruntime", "fastapi", "psycopg", "boto3"]


def test_serve_in_the_image_answers_over_http(
    container: str, tmp_path: Path, onnx_bytes: Callable[..., bytes], free_port: Callable[[], int]
) -> None:
    (tmp_path / "relu.onnx").write_bytes(onnx_bytes())
    tmp_path.chmod(0o755)
    port = free_port()
    server = subprocess.Popen(
        ["buildah", "run", "--isolation", "chroot", "--volume", f"{tmp_path}:/models:ro",
         container, "--", "ferryman", "serve", "/models/relu.onnx", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(f"{url}/v2/health/ready", server)
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                            "data": [1.0, -2.0, 3.0, -4.0]}]}  # fmt: skip
        answer = httpx.post(f"{url}/v2/models/relu/infer", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == [1.0, 0.0, 3.0, 0.0]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_ready(url: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.stdout.read() if server.stdout else ""
            pytest.fail(f"ferryman serve exited {server.returncode} in the image:\n{output}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"{url} not ready after {STARTUP_TIMEOUT_S:g} s")
