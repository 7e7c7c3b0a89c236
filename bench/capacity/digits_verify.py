"""The capacity table of the built-in digits model (fp32 vs INT8, batching on and off) on this
machine, then ``recommend --verify``: how close the recommended configuration came to its
promise when deployed and loaded through the gateway.

Run from the repository root (a fresh data dir in a temporary folder, free ports, everything
stopped at the end):

    python bench/capacity/digits_verify.py --qps 40 --p99-ms 100 --verify-seconds 60
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qps", type=float, default=40.0)
    parser.add_argument("--p99-ms", type=float, default=100.0)
    parser.add_argument("--verify-seconds", type=float, default=60.0)
    parser.add_argument("--step-s", type=float, default=2.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ferryman-bench-capacity-"))
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRYMAN_")}
    env |= {
        "FERRYMAN_DATA_DIR": str(root / "data"),
        "FERRYMAN_STATE_DIR": str(root / "state"),
        "FERRYMAN_CONTROL__PORT": str(api_port),
        "FERRYMAN_GATEWAY__PORT": str(free_port()),
        "COLUMNS": "160",
    }
    ferryman = [sys.executable, "-m", "ferryman"]

    def run(*command: str, check: bool = True) -> int:
        print("$ ferryman " + " ".join(command), flush=True)
        done = subprocess.run([*ferryman, *command], env=env, check=check, timeout=1800)
        return done.returncode

    up = None
    try:
        run("train", "digits", "--param", "epochs=2")
        grid = ("--variant", "onnx-fp32", "--variant", "onnx-int8", "--batch", "1", "--batch",
                "16", "--delay-ms", "2", "--threads", "1")  # fmt: skip
        run("capacity", "digits@1", *grid, "--p99-ms", f"{args.p99_ms:g}",
            "--step-s", f"{args.step_s:g}", "--refine", "1")  # fmt: skip
        with (root / "up.log").open("ab") as log:
            up = subprocess.Popen([*ferryman, "up"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        run("deploy", "digits")
        code = run("recommend", "digits", "--qps", f"{args.qps:g}", "--p99-ms",
                   f"{args.p99_ms:g}", "--verify", "--verify-seconds", f"{args.verify_seconds:g}",
                   check=False)  # fmt: skip
        print("promise kept" if code == 0 else f"promise broken (exit {code})", flush=True)
    finally:
        if up is not None:
            subprocess.run([*ferryman, "down"], env=env, check=False, timeout=120)
            if up.poll() is None:
                os.killpg(up.pid, signal.SIGTERM)
                up.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
