"""Cost figures from a history with known replica-seconds and prices, and what was saved.

The history is written to a real SQLite registry and read back the way the monitor's is. All
expected figures are worked out by hand in the comments (price 0.5 per replica-hour, samples
every 10 s, so gaps over 30 s are not counted).
"""

from __future__ import annotations

import doctest
import json
import math
import time
from pathlib import Path
from types import ModuleType

import pytest

from ferryman.capacity import savings, spend
from ferryman.capacity.cost import CostHistory, fleet_spend
from ferryman.capacity.spend import day_of
from ferryman.config import Settings
from ferryman.registry import (
    CapacityResult,
    DeploymentSpec,
    MetricSample,
    Registry,
    ServingConfig,
    VariantSpec,
    VariantStatus,
)
from tests.capacity.conftest import Run
from tests.serving.conftest import affine_model

CATALOGUE = '[[instance]]\nname = "box"\nvcpus = 2\nmemory_gib = 4\nprice_per_hour = 0.5\n'
PRICE = 0.5
INT8 = "v1-onnx-int8"


def midnight() -> float:
    """Midnight (UTC) that began yesterday: the history straddles the one after it."""
    return math.floor(time.time() / 86400) * 86400 - 86400


def sample(at: float, endpoint: str, variant: str, **values: float) -> MetricSample:
    return MetricSample(time_s=at, endpoint=endpoint, variant=variant, values=values)


def write_history(registry: Registry, affine: str) -> float:
    m = midnight()
    fp32 = VariantSpec(model=affine, version=1, weight=50)
    int8 = VariantSpec(model=affine, version=1, kind="onnx-int8", weight=50)
    registry.add_variant(affine, 1, "onnx-int8", affine_model(), "t", status=VariantStatus.PASSED)
    registry.deployments.put(DeploymentSpec(endpoint="shop", variants=(fp32, int8)), "t")
    held = [
        # v1: 2 replicas from m-20 to m (40 replica-s the day before), 3 from m to m+20 (60).
        *(sample(m + t, "shop", "v1", replicas=r, replicas_desired=r)
          for t, r in ((-20, 2), (-10, 2), (0, 3), (10, 3), (20, 3))),
        # 80 s without a sample: not counted. Then 1 replica for 10 s (10 replica-s), zero
        # by choice for 30 s (scale-to-zero), zero after a crash for 10 s (not a saving).
        *(sample(m + t, "shop", "v1", replicas=r, replicas_desired=d)
          for t, r, d in ((100, 1, 1), (110, 0, 0), (120, 0, 0), (130, 0, 0), (140, 0, 1),
                          (150, 1, 1))),
        # INT8: 1 replica for 10 s, then 3 for 10 s (40 replica-s); a sample's rate was
        # measured over the 10 s before it: 30 qps over the first span, 90 over the second.
        sample(m, "shop", INT8, replicas=1, replicas_desired=1, qps=5),
        sample(m + 10, "shop", INT8, replicas=3, replicas_desired=3, qps=30),
        sample(m + 20, "shop", INT8, replicas=3, replicas_desired=3, qps=90),
        # An endpoint no longer deployed: its cost still counts (10 replica-s).
        sample(m, "gone", "v2", replicas=1), sample(m + 10, "gone", "v2", replicas=1),
    ]  # fmt: skip
    registry.history.add(held, 30 * 86400)
    for variant, carried, target in (
        ("onnx", 20, 50),
        ("onnx-int8", 40, 50),
        ("onnx-int8", 999, 80),
    ):
        config = ServingConfig(
            variant=variant, max_batch_size=8, max_delay_ms=2, intra_op_threads=1
        )
        result = CapacityResult(
            config=config, p99_target_ms=target, max_qps=carried, stop_reason="", cpu_count=2
        )
        registry.capacity.put(affine, 1, result, "t")
    return m


def settings_for(data_dir: Path, catalogue: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        control={"monitor_interval_s": 10, "history_retention_s": 7 * 86400},
        cost={"instance": "box", "catalogue": catalogue},
    )


def check(report: CostHistory, m: float) -> None:
    before, after = day_of(m - 1), day_of(m)
    days = {(d.day, d.endpoint, d.variant): d for d in report.days}
    assert set(days) == {(before, "shop", "v1"), (after, "shop", "v1"), (after, "shop", INT8),
                         (after, "gone", "v2")}  # fmt: skip
    assert days[before, "shop", "v1"].replica_seconds == 40
    v1 = days[after, "shop", "v1"]
    assert (v1.replica_seconds, v1.counted_s, v1.zero_s) == (70, 70, 30)
    assert v1.cost == pytest.approx(70 / 3600 * PRICE)
    assert days[after, "shop", INT8].replica_seconds == 40
    assert report.total_cost == pytest.approx((40 + 70 + 40 + 10) / 3600 * PRICE)
    assert report.max_gap_s == 30

    saved = {(s.endpoint, s.variant): s for s in report.savings}
    assert saved["shop", "v1"].scale_to_zero_saved == pytest.approx(30 / 3600 * PRICE)
    assert saved["shop", "v1"].int8_saved is None
    # fp32 carries 20 qps a replica, INT8 40 (both at p99 ≤ 50 ms; the 80 ms result has no
    # fp32 match): 30 qps needs 2 vs 1, 90 qps 5 vs 3, so 10 x 1 + 10 x 2 = 30 replica-s.
    assert saved["shop", INT8].int8_saved == pytest.approx(30 / 3600 * PRICE)
    assert "30 replica-seconds fewer" in saved["shop", INT8].int8_note
    assert saved["gone", "v2"].int8_note.startswith("the variant is no longer deployed")


def test_cost_per_variant_and_day_from_a_stored_history(
    registry: Registry, affine: str, data_dir: Path, tmp_path: Path
) -> None:
    m = write_history(registry, affine)
    (tmp_path / "prices.toml").write_text(CATALOGUE)
    settings = settings_for(data_dir, tmp_path / "prices.toml")
    check(fleet_spend(registry, settings, time.time(), days=3), m)

    # One day back: only today's (after midnight m) figures.
    today = fleet_spend(registry, settings, m + 3600, days=1)
    assert {d.day for d in today.days} == {day_of(m)}
    only_shop = fleet_spend(registry, settings, time.time(), days=3, endpoint="shop")
    assert {d.endpoint for d in only_shop.days} == {"shop"}


def test_int8_saving_is_unknown_without_an_fp32_capacity(
    registry: Registry, affine: str, data_dir: Path, tmp_path: Path
) -> None:
    registry.add_variant(affine, 1, "onnx-int8", affine_model(), "t", status=VariantStatus.PASSED)
    int8 = VariantSpec(model=affine, version=1, kind="onnx-int8")
    registry.deployments.put(DeploymentSpec(endpoint="shop", variants=(int8,)), "t")
    config = ServingConfig(variant="onnx-int8", max_batch_size=1, max_delay_ms=0,
                           intra_op_threads=1)  # fmt: skip
    result = CapacityResult(
        config=config, p99_target_ms=50, max_qps=40, stop_reason="", cpu_count=2
    )
    registry.capacity.put(affine, 1, result, "t")
    now = time.time()
    registry.history.add(
        [sample(now - 20, "shop", INT8, replicas=1, qps=5),
         sample(now - 10, "shop", INT8, replicas=1, qps=5)], 30 * 86400
    )  # fmt: skip
    (tmp_path / "prices.toml").write_text(CATALOGUE)
    report = fleet_spend(registry, settings_for(data_dir, tmp_path / "prices.toml"), now, days=1)
    (saved,) = report.savings
    assert saved.int8_saved is None
    assert saved.int8_note.startswith("unknown: no capacity result for fp32")
    assert report.total_cost == pytest.approx(10 / 3600 * PRICE)


def test_cost_command_prints_days_and_savings(
    run: Run,
    registry: Registry,
    affine: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = write_history(registry, affine)
    code, _, err = run("cost")
    assert code == 0
    assert "set FERRYMAN_COST__INSTANCE" in err

    (tmp_path / "prices.toml").write_text(CATALOGUE)
    monkeypatch.setenv("FERRYMAN_COST__CATALOGUE", str(tmp_path / "prices.toml"))
    monkeypatch.setenv("FERRYMAN_COST__INSTANCE", "box")
    monkeypatch.setenv("FERRYMAN_CONTROL__HISTORY_RETENTION_S", str(7 * 86400))
    code, out, err = run("cost", "--days", "3", "--json")
    assert code == 0, err
    check(CostHistory.model_validate(json.loads(out)), m)

    code, out, err = run("cost", "shop", "--days", "3")
    assert code == 0, err
    assert "Cost per day at 0.5/h per replica" in out
    assert day_of(m) in out
    assert "v1-onnx-int8" in out
    assert "fp32 carries 20 qps a replica, INT8 40" in out
    assert "gone" not in out

    code, _, err = run("cost", "--days", "0")
    assert code != 0
    assert "--days" in err


@pytest.mark.parametrize("module", [spend, savings])
def test_the_worked_examples_in_the_docstrings_hold(module: ModuleType) -> None:
    outcome = doctest.testmod(module)
    assert outcome.attempted > 0
    assert outcome.failed == 0
