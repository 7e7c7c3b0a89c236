"""Blue-green decisions: warm the new pool, switch at once, bake, then promote or switch back.

Two pure functions, one per phase. :func:`warm` waits until the candidate's pool is ready —
it never switches to a pool that is not (A/B tests and shadows warm the same way before
they split or mirror) — and rolls back, having served nothing, a pool
whose replicas fail to load or that is not ready within the warm-up timeout (RELIABILITY
F2). :func:`bake` judges each window while the old pool is kept at 0%: a failed gate
switches back (after ``threshold`` failed windows, or at once when the candidate refuses
its clients); after ``bake_s`` it promotes only if the whole bake passed —
inconclusive holds, never promotes (Z5). Durations come in measured on the monotonic
clock (F9).
"""

from __future__ import annotations

from dataclasses import dataclass

from ferryman.control.rollouts.gates import Action, Analysis, Decision, Verdict
from ferryman.control.rollouts.plans import BlueGreenPlan


@dataclass(frozen=True)
class Pool:
    """The candidate's replicas: how many are wanted, ready, and failed since last ready."""

    wanted: int
    ready: int = 0
    failures: int = 0

    def figures(self) -> dict[str, int]:
        return {"wanted": self.wanted, "ready": self.ready, "failures": self.failures}


def warm(timeout_s: float, pool: Pool, waited_s: float) -> Decision:
    """STEP once the whole pool is ready (blue-green switches, an A/B test splits, a shadow
    mirrors); ROLLBACK a pool that fails or is not ready within ``timeout_s``; else HOLD."""
    if pool.failures:
        return Decision(
            Action.ROLLBACK, 0,
            f"the new pool failed to load ({pool.failures} failed replicas); it served nothing",
        )  # fmt: skip
    if pool.ready >= pool.wanted:
        return Decision(Action.STEP, 100, f"new pool ready ({pool.ready} replicas)")
    if waited_s >= timeout_s:
        return Decision(
            Action.ROLLBACK, 0,
            f"the new pool was not ready after {timeout_s:g} s ({pool.ready}/"
            f"{pool.wanted} replicas); it served nothing",
        )  # fmt: skip
    return Decision(Action.HOLD, 0, f"warming: {pool.ready}/{pool.wanted} replicas ready")


def bake(
    plan: BlueGreenPlan,
    baked_s: float,
    window: Analysis,
    whole: Analysis | None,
    failed_checks: int,
) -> tuple[Decision, int]:
    """The action after one window of the bake, and the failed checks to carry on.

    ``whole`` is the analysis of the bake so far; it decides once ``bake_s`` has passed.
    """
    if window.verdict is Verdict.FAIL:
        failed = failed_checks + 1
        why = "; ".join(window.reasons)
        if failed >= plan.threshold or window.breaks_clients:
            return Decision(Action.ROLLBACK, 0, f"switched back: {why}"), failed
        return Decision(Action.HOLD, 100, f"failed check {failed}/{plan.threshold}: {why}"), failed
    if baked_s < plan.bake_s:
        seen = "gates met" if window.verdict is Verdict.PASS else window.reasons[0]
        reason = f"baking: {baked_s:.0f}/{plan.bake_s:g} s, {seen}"
        return Decision(Action.HOLD, 100, reason), failed_checks
    if whole is None or whole.verdict is Verdict.INCONCLUSIVE:
        why = whole.reasons[0] if whole else "no metrics over the bake"
        return Decision(Action.HOLD, 100, f"inconclusive over the bake: {why}"), failed_checks
    if whole.verdict is Verdict.FAIL:
        reason = f"switched back: over the bake, {'; '.join(whole.reasons)}"
        return Decision(Action.ROLLBACK, 0, reason), failed_checks + 1
    reason = f"baked {baked_s:.0f} s at 100%: {whole.requests:.0f} requests, gates met"
    return Decision(Action.PROMOTE, 100, reason), failed_checks
