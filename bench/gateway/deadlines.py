"""Issue 13's gateway benchmark: the gateway path with liveness and per-try deadlines against
the gateway before those changes, digits, wrk concurrency 64, one run.

Three gateways in front of one replica (``ferryman serve`` on the digits-sized MLP of
run.py), each from its own checkout, all ``ferryman gateway`` processes:

* before: the commit before the liveness change (``a02e78e^``): one gateway process, a
  request deadline only;
* after: the commit of the per-try deadline (``15e1035``), as the local runtime runs it: two
  processes sharing the port (the serving one and its standby), the per-try deadline on,
  and a health request with a 1 s deadline every 0.5 s (the control plane's liveness);
* today: this checkout, run the same way as "after".

The old commits are checked out into temporary ``git worktree``s, removed at the end. The
rounds interleave the three, and after them the before/after pair is loaded at once (half
the concurrency each), which whatever else runs on the machine disturbs far less. Target:
after/before (and today/before) throughput >= 0.97.

    .venv/bin/python bench/gateway/deadlines.py [--duration-s 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from run import (
    ROOT,
    Result,
    cpu_s,
    free_port,
    load_path,
    median,
    running,
    start_replica,
    wait_ready,
)

BEFORE = "a02e78e^"
"""The commit before "A gateway that is never the single point of failure" (liveness)."""
AFTER = "15e1035"
""""Gateway: a per-try deadline (gateway.try_timeout_s ...)": both changes in."""
PROBE_EVERY_S, PROBE_TIMEOUT_S = 0.5, 1.0
"""The control plane's liveness: reconcile_interval_s and gateway_probe_timeout_s."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds; median shown.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed; install it with: apt-get install -y wrk")
    console = Console()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:  # worktrees go first
        work = Path(tmp)
        trees = {
            "before": stack.enter_context(worktree(BEFORE, work / "before")),
            "after": stack.enter_context(worktree(AFTER, work / "after")),
            "today": ROOT,
        }
        replica, kind, replica_pid = start_replica(stack, work, None)
        routes = work / "routes.json"
        routes.write_text(ROUTES.replace("REPLICA", replica))
        paths: dict[str, tuple[str, list[int]]] = {}
        for label, tree in trees.items():
            shared = label != "before"
            url, pids = start_gateways(stack, tree, routes, work / f"data-{label}", shared)
            paths[label] = (url, pids)
            wait_ready(url)
            if shared:
                stack.enter_context(probing(url))
            load_path(url, 1, 2)  # warm the pools and the model
        console.print(f"replica: {kind}; {os.cpu_count()} cores")
        rounds: dict[str, list[Result]] = {label: [] for label in paths}
        with console.status("interleaved rounds") as status:
            for number in range(args.rounds):
                for label, (url, pids) in paths.items():
                    status.update(f"round {number + 1} of {args.rounds}: {label}")
                    rounds[label].append(measure(url, args, label, [replica_pid, *pids]))
            status.update("before and after loaded at once")
            together = at_once(paths["before"][0], paths["after"][0], args)
    results = {label: median(runs) for label, runs in rounds.items()}
    show(console, results, rounds, together, args)


ROUTES = """{"generation": 1, "endpoints": {"digits": {"endpoint": "digits", "variants": [
  {"name": "v1", "model": "digits", "version": 1, "weight": 100, "backends": ["REPLICA"]}]}}}"""


@contextmanager
def worktree(commit: str, path: Path) -> Iterator[Path]:
    """``commit`` checked out at ``path`` for the run, removed afterwards."""
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", str(path), commit],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=False)
        subprocess.run([*git, "worktree", "prune"], check=False)


def start_gateways(
    stack: ExitStack, tree: Path, routes: Path, data: Path, shared: bool
) -> tuple[str, list[int]]:
    """``ferryman gateway`` from ``tree``'s sources: one, or two sharing the port."""
    port = free_port()
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRYMAN_")}
    env |= {"PYTHONPATH": str(tree / "src"), "FERRYMAN_DATA_DIR": str(data)}
    command = [sys.executable, "-m", "ferryman", "gateway", "--port", str(port)]
    command += ["--routes-file", str(routes)]
    if shared:  # as the local runtime starts them, with the per-try deadline set
        env["FERRYMAN_GATEWAY__TRY_TIMEOUT_S"] = "5"
        command.append("--shared-port")
    pids = [stack.enter_context(running(command, env)).pid]
    if shared:
        time.sleep(1.0)  # the oldest serves: the standby starts second
        pids.append(stack.enter_context(running(command, env)).pid)
    return f"http://127.0.0.1:{port}", pids


@contextmanager
def probing(url: str) -> Iterator[None]:
    """The control plane's liveness check: GET /-/healthz with a deadline, every 0.5 s."""
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client() as client:
            while not stop.wait(PROBE_EVERY_S):
                with suppress(httpx.HTTPError):
                    client.get(f"{url}/-/healthz", timeout=PROBE_TIMEOUT_S)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def measure(url: str, args: argparse.Namespace, label: str, pids: list[int]) -> Result:
    """One wrk run, with the CPU time the replica and the gateways spent per request."""
    before = [cpu_s(pid) for pid in pids]
    result = load_path(url, args.duration_s, args.concurrency, label)
    spent = [cpu_s(pid) - start for pid, start in zip(pids, before, strict=True)]
    count = max(result.requests_per_s * args.duration_s, 1)
    result.replica_cpu_us = 1e6 * spent[0] / count
    result.gateway_cpu_us = 1e6 * sum(spent[1:]) / count
    return result


def at_once(before_url: str, after_url: str, args: argparse.Namespace) -> list[float]:
    """after/before throughput with both under wrk at the same time, half the concurrency
    each (sorted ratios, one per round)."""
    half = max(args.concurrency // 2, 1)
    ratios = []
    for _ in range(args.rounds):
        with ThreadPoolExecutor(2) as pool:
            old = pool.submit(load_path, before_url, args.duration_s, half, "before")
            new = pool.submit(load_path, after_url, args.duration_s, half, "after")
            ratios.append(new.result().requests_per_s / old.result().requests_per_s)
    return sorted(ratios)


def show(
    console: Console,
    results: dict[str, Result],
    rounds: dict[str, list[Result]],
    together: list[float],
    args: argparse.Namespace,
) -> None:
    table = Table(
        title=f"gateway before/after liveness + per-try deadlines, digits, c{args.concurrency}, "
        f"median of {args.rounds} interleaved rounds of {args.duration_s} s"
    )
    for column in ("gateway", "commit", "req/s", "p50 ms", "p99 ms", "errors", "vs before",
                   "gateway µs/req"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("gateway", "commit") else "right")
    commits = {"before": BEFORE, "after": AFTER, "today": "HEAD"}
    base = results["before"].requests_per_s
    for label, result in results.items():
        table.add_row(
            label, commits[label], f"{result.requests_per_s:,.0f}", f"{result.p50_ms:.2f}",
            f"{result.p99_ms:.2f}", str(result.errors), f"{result.requests_per_s / base:.3f}",
            f"{result.gateway_cpu_us:.0f}",
        )  # fmt: skip
    console.print(table)
    for label in ("after", "today"):
        pairs = sorted(
            b.requests_per_s / a.requests_per_s
            for a, b in zip(rounds["before"], rounds[label], strict=True)
        )
        console.print(
            f"{label}/before, round by round: median {pairs[len(pairs) // 2]:.3f} "
            f"(from {pairs[0]:.3f} to {pairs[-1]:.3f}); target >= 0.97"
        )
    console.print(
        f"after/before, both loaded at once (c{args.concurrency // 2} each): median "
        f"{together[len(together) // 2]:.3f} (from {together[0]:.3f} to {together[-1]:.3f})"
    )


if __name__ == "__main__":
    main()
