"""Peak memory of the control plane while it takes one large model upload.

Starts the control plane (uvicorn, as ``ferryman serve`` runs it) in a child process on a
free loopback port with its own data dir, streams one ONNX model of ``--size-mb`` to
``POST /api/v1/models/NAME/versions`` from this process, and prints the child's resident
memory before and after (``VmRSS``, and ``VmHWM``, its peak) with the upload's status.

    python bench/control/upload_rss.py --size-mb 300
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from onnx import TensorProto, helper, numpy_helper

CHUNK_BYTES = 1 << 20


def serve(data_dir: Path, port_file: Path) -> None:
    """The child: a control plane on a free port, its port written to ``port_file``."""
    import uvicorn  # noqa: PLC0415 - only the child serves

    from ferryman.config import ControlSettings, load_settings  # noqa: PLC0415
    from ferryman.control.api.app import create_app  # noqa: PLC0415
    from ferryman.control.api.security import load_or_create_token  # noqa: PLC0415
    from ferryman.registry import Registry  # noqa: PLC0415

    settings = load_settings(data_dir=data_dir, control=ControlSettings())
    registry = Registry.open(settings)
    app = create_app(settings, registry, load_or_create_token(data_dir).value)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))

    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port_file.write_text(str(server.servers[0].sockets[0].getsockname()[1]))
    thread.join()


def write_model(path: Path, size_mb: int) -> int:
    """An ONNX model ``y = x + w`` whose weight ``w`` holds about ``size_mb`` MiB."""
    count = size_mb * 1024 * 1024 // 4
    weight = numpy_helper.from_array(np.ones(count, dtype=np.float32), name="w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [count])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [count])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path.stat().st_size


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0])
    return fields


def chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def upload(url: str, token: str, model: Path, name: str) -> int:
    answer = httpx.post(
        f"{url}/api/v1/models/{name}/versions",
        content=chunks(model),
        headers={"authorization": f"Bearer {token}", "content-length": str(model.stat().st_size)},
        timeout=600,
    )
    return answer.status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--uploads", type=int, default=1, help="concurrent uploads of the model")
    parser.add_argument("--serve", nargs=2, metavar=("DATA_DIR", "PORT_FILE"), help="internal")
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]))
        return
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model = root / "big.onnx"
        size = write_model(model, args.size_mb)
        port_file = root / "port"
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(root / "data"), str(port_file)],
            env=os.environ,
        )
        try:
            deadline = time.monotonic() + 60
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline or child.poll() is not None:
                    raise SystemExit("the control plane did not start")
                time.sleep(0.1)
            url = f"http://127.0.0.1:{port_file.read_text()}"
            token = (root / "data" / "control-token").read_text().strip()
            before = memory_kib(child.pid)
            with ThreadPoolExecutor(args.uploads) as pool:
                statuses = list(
                    pool.map(lambda n: upload(url, token, model, f"big{n}"), range(args.uploads))
                )
            after = memory_kib(child.pid)
        finally:
            child.terminate()
            child.wait(30)
    mib = 1024
    print(f"{args.uploads} upload(s) of {size / 2**20:.0f} MiB at once: HTTP {statuses}")
    print(f"before: VmRSS {before['VmRSS'] / mib:.0f} MiB, VmHWM {before['VmHWM'] / mib:.0f} MiB")
    print(
        f"after:  VmRSS {after['VmRSS'] / mib:.0f} MiB (anon {after['RssAnon'] / mib:.0f}, "
        f"file {after['RssFile'] / mib:.0f}), peak VmHWM {after['VmHWM'] / mib:.0f} MiB"
    )
    print(f"peak growth during the upload: {(after['VmHWM'] - before['VmRSS']) / mib:.0f} MiB")


if __name__ == "__main__":
    main()
