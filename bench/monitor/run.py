"""Monitor benchmark: what 24 hours of 10-second history cost, in memory and in the registry.

For N variants it fills the in-memory rings and the registry with a full day of samples
(every series present), then measures, side by side in one run: the memory the rings hold,
one tick's write (N samples + pruning, one transaction), a history query of the whole day
(all series) from memory and from the registry — what ``GET /endpoints/{e}/history``
does — and a restart's reload of the day. SQLite by default; pass a PostgreSQL URL to
measure that instead.

    .venv/bin/python bench/monitor/run.py [--variants 4] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ferryman.artifacts import LocalArtifactStore
from ferryman.control.monitor.history import History, StoredHistory
from ferryman.registry import SERIES, Database, MetricSample, Registry

DAY_S = 24 * 3600
RESOLUTION_S = 10.0


def day_of_samples(variants: int, end_s: float) -> list[list[MetricSample]]:
    ticks = []
    for tick in range(int(DAY_S / RESOLUTION_S)):
        at = end_s - DAY_S + tick * RESOLUTION_S
        ticks.append([
            MetricSample(time_s=at, endpoint="digits", variant=f"v{v + 1}",
                         values={name: float(tick % 97) for name in SERIES})
            for v in range(variants)
        ])  # fmt: skip
    return ticks


def timed_ms(work: Callable[[], object], repeats: int) -> float:
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        durations.append((time.perf_counter() - started) * 1000)
    return statistics.median(durations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    console = Console()
    now = time.time()
    ticks = day_of_samples(args.variants, now)

    tracemalloc.start()
    memory = History(DAY_S, RESOLUTION_S)
    for samples in ticks:
        memory.add(samples)
    ring_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'registry.db'}"
        database = Database(url)
        database.migrate()
        registry = Registry(database, LocalArtifactStore(Path(tmp) / "artifacts"))
        with console.status("writing a day of samples to the registry"):
            flat = [sample for samples in ticks for sample in samples]
            for start in range(0, len(flat), 5000):
                registry.history.add(flat[start : start + 5000], DAY_S)
        stored = StoredHistory(registry.history)

        def reload() -> None:
            History(DAY_S, RESOLUTION_S).add(registry.history.since(now - DAY_S))

        def recent() -> None:
            memory.points("digits", now - 3600, ["qps", "p99_ms"])

        step = [s.model_copy(update={"time_s": now + 10}) for s in ticks[-1]]
        rows = [
            ("in-memory rings, 24 h", f"{ring_bytes / 2**20:.1f} MiB", "tracemalloc"),
            ("one tick: write + prune (registry)",
             f"{timed_ms(lambda: registry.history.add(step, DAY_S), 5):.1f} ms", "median of 5"),
            ("history query, 24 h, all series: memory",
             f"{timed_ms(lambda: memory.points('digits', now - DAY_S, list(SERIES)), 5):.0f} ms",
             "median of 5"),
            ("history query, 24 h, all series: registry",
             f"{timed_ms(lambda: stored.points('digits', now - DAY_S, list(SERIES)), 3):.0f} ms",
             "median of 3"),
            ("history query, 1 h, 2 series: memory",
             f"{timed_ms(recent, 5):.1f} ms",
             "median of 5"),
            ("restart: reload 24 h from the registry",
             f"{timed_ms(reload, 1):.0f} ms",
             "once"),
        ]  # fmt: skip
        database.dispose()
    engine = "PostgreSQL" if args.database_url else "SQLite"
    title = (f"Monitor history: {args.variants} variants, {len(ticks)} samples each, "
             f"{len(SERIES)} series ({engine})")  # fmt: skip
    table = Table("measure", "value", "how", title=title)
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
