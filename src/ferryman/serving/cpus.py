"""How a replica spreads its model over the CPU cores it is given.

By default a replica runs one model call per core at once, each with one ONNX Runtime
intra-op thread: calls on the same session in parallel (ONNX Runtime releases the GIL while
it runs), one set of weights in memory. Measured on ResNet-18 (bench/serving/replica.py),
parallel single-threaded calls beat one call on every core's thread, most of all on a busy
machine, where one descheduled intra-op thread stalls every other at its next barrier; and
the event loop's own work (HTTP, JSON decoding) overlaps the calls instead of waiting
between them. A fast model runs on the event loop itself, one call at a time, whatever this
says (see :mod:`ferryman.serving.batching`).

``serving.intra_op_threads`` and ``serving.model_calls`` override the default; either one
alone is fitted to the other, so that calls times threads is the core count.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from ferryman.config import ServingSettings

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


class ModelThreads(NamedTuple):
    """How many model calls run at once and how many intra-op threads each one uses."""

    calls: int
    intra_op_threads: int


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota
    (a container's ``--cpus``, a Kubernetes CPU limit), rounded up."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return max(cpus, 1)
    if quota == "max" or not (quota.isdigit() and period.isdigit()) or int(period) == 0:
        return max(cpus, 1)
    return max(1, min(cpus, -(-int(quota) // int(period))))


def fit(settings: ServingSettings, cpus: int | None = None) -> ModelThreads:
    """The replica's model calls at once and threads per call (see the module's note)."""
    cores = usable_cpus() if cpus is None else cpus
    calls, threads = settings.model_calls, settings.intra_op_threads
    if calls and threads:
        return ModelThreads(calls, threads)
    if threads:
        return ModelThreads(max(1, cores // threads), threads)
    if calls:
        return ModelThreads(calls, max(1, cores // calls))
    return ModelThreads(cores, 1)
