"""How a replica spreads its model over its cores: calls at once times intra-op threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ferryman.config import ServingSettings
from ferryman.serving.cpus import ModelThreads, fit, usable_cpus


@pytest.mark.parametrize(
    ("calls", "threads", "expected"),
    [
        (0, 0, ModelThreads(4, 1)),  # the default: one single-threaded call per core
        (0, 2, ModelThreads(2, 2)),  # threads given: calls fill the rest of the cores
        (0, 8, ModelThreads(1, 8)),  # more threads than cores: still one call
        (2, 0, ModelThreads(2, 2)),  # calls given: threads fill the rest
        (3, 5, ModelThreads(3, 5)),  # both given: as given
    ],
)
def test_fit_fills_the_cores_and_keeps_what_was_set(
    calls: int, threads: int, expected: ModelThreads
) -> None:
    settings = ServingSettings(model_calls=calls, intra_op_threads=threads)
    assert fit(settings, cpus=4) == expected


@pytest.mark.parametrize(
    ("cpu_max", "cap"),
    [("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000\n", 1), ("garbage", None)],
)
def test_a_cgroup_quota_caps_the_usable_cores(
    tmp_path: Path, cpu_max: str, cap: int | None
) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(path) == (affinity if cap is None else min(affinity, cap))


def test_without_a_cgroup_file_the_affinity_counts(tmp_path: Path) -> None:
    assert usable_cpus(tmp_path / "absent") == len(os.sched_getaffinity(0))
